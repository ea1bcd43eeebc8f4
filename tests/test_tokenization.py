"""Tests of `hf_hundredpage.tokenization`: byte-level BPE training (book §2.3), the chat template, the CLI."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from hf_hundredpage import cli
from hf_hundredpage.data import default_tokenizer_path, embedded_corpus_files
from hf_hundredpage.tokenization import CHAT_TEMPLATE, SPECIAL_TOKENS, train_bpe_tokenizer


UNICODE_SAMPLES = [
    "Hello, world!",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\r\nand\n\n\nblank lines",
    "Ünïcödé: naïve café, Straße, Ångström, ἀναρχία, Москва",
    "日本語のテキストと中文文本, 한국어",
    "emoji 🤗🚀 and a ZWJ family 👩‍👩‍👧 and flags 🇫🇷",
    "combining e\u0301 vs precomposed é, NBSP\u00a0here, right-to-left עברית العربية",
    "code: def f(x):\n    return x ** 2  # comment",
    "almost special <|bos and <|im_end|> and <|eos>",
    "",
]

CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "It is 4."},
    {"role": "user", "content": "And 3 + 3?"},
    {"role": "assistant", "content": "Six, obviously."},
]


def _corpus_lines(n: int) -> list[str]:
    with gzip.open(embedded_corpus_files()["train"], "rt", encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return _corpus_lines(400)


@pytest.fixture(scope="module")
def tokenizer(texts):
    return train_bpe_tokenizer(texts, vocab_size=1000, min_frequency=2)


def test_round_trip_is_exact_for_any_unicode(tokenizer):
    for text in UNICODE_SAMPLES:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids) == text
    # The shipped default tokenizer has the same guarantee.
    default = AutoTokenizer.from_pretrained(default_tokenizer_path())
    for text in UNICODE_SAMPLES:
        assert default.decode(default(text)["input_ids"]) == text


def test_special_tokens_have_fixed_ids_and_are_not_added_by_encode(tokenizer):
    assert tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|bos|>", 0)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|eos|>", 1)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|pad|>", 2)
    assert (tokenizer.unk_token, tokenizer.unk_token_id) == ("<|unk|>", 3)
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") == 4
    ids = tokenizer("The cat sat.")["input_ids"]
    assert not set(ids) & {0, 1, 2, 3, 4}
    # A special token written in the text is one id, and decodes back.
    ids = tokenizer("end<|eos|>")["input_ids"]
    assert ids[-1] == 1 and tokenizer.decode(ids) == "end<|eos|>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "end"


def test_vocabulary_size_and_byte_alphabet(tokenizer):
    assert len(tokenizer) == 1000
    vocab = tokenizer.get_vocab()
    # Byte-level: all 256 byte symbols are in the vocabulary, so no text needs <|unk|>.
    from tokenizers import pre_tokenizers

    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(vocab)
    assert tokenizer.unk_token_id not in tokenizer("unseen 字 ☃ \x00 bytes")["input_ids"]


def _reference_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Textbook BPE encoding (book §2.3): repeatedly merge the adjacent pair learned earliest."""
    symbols = list(word)
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, float("inf")), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        rank, i = min(pairs)
        if rank == float("inf"):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def test_encoding_matches_a_reference_bpe(tokenizer, texts):
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    ranks = {tuple(m.split(" ") if isinstance(m, str) else m): r for r, m in enumerate(merges)}
    pre_tokenize = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str
    for text in texts[-20:] + UNICODE_SAMPLES[:-2]:
        expected = [piece for word, _ in pre_tokenize(text) for piece in _reference_bpe(word, ranks)]
        assert tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) == expected


def test_merges_compress_text(tokenizer, texts):
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(ids) for ids in tokenizer(texts)["input_ids"])
    assert n_bytes / n_tokens > 2.5  # raw bytes would be exactly 1.0


def test_accepts_lists_generators_datasets_and_files(tmp_path, texts, tokenizer):
    expected = tokenizer.get_vocab()
    plain = tmp_path / "corpus.txt"
    plain.write_text("\n".join(texts) + "\n", encoding="utf-8")
    packed = tmp_path / "corpus.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    sources = [
        (t for t in texts),
        Dataset.from_dict({"body": texts}),
        plain,
        [packed],
    ]
    for source in sources:
        trained = train_bpe_tokenizer(source, vocab_size=1000, text_column="body")
        assert trained.get_vocab() == expected


def test_bad_inputs_raise_value_errors(texts):
    with pytest.raises(ValueError, match="single string"):
        train_bpe_tokenizer("just one string")
    with pytest.raises(ValueError, match="too small"):
        train_bpe_tokenizer(texts, vocab_size=100)
    with pytest.raises(ValueError, match="columns"):
        train_bpe_tokenizer(Dataset.from_dict({"content": texts}))
    with pytest.raises(FileNotFoundError, match="existing"):
        train_bpe_tokenizer([Path("/nonexistent/file.txt")])


def test_chat_template_renders_chatml_with_eos_terminators(tokenizer):
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou answer briefly.<|eos|>\n"
        "<|im_start|>user\nWhat is 2 + 2?<|eos|>\n"
        "<|im_start|>assistant\nIt is 4.<|eos|>\n"
        "<|im_start|>user\nAnd 3 + 3?<|eos|>\n"
        "<|im_start|>assistant\nSix, obviously.<|eos|>\n"
    )
    prompt = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou answer briefly.<|eos|>\n"
        "<|im_start|>user\nWhat is 2 + 2?<|eos|>\n"
        "<|im_start|>assistant\n"
    )
    assert tokenizer.chat_template == CHAT_TEMPLATE


def test_assistant_mask_covers_exactly_the_replies_and_their_eos(tokenizer):
    out = tokenizer.apply_chat_template(CONVERSATION, return_assistant_tokens_mask=True, return_dict=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask)
    # Expected mask, built independently by tokenizing the rendered pieces one after the other.
    pieces = [
        ("<|im_start|>system\nYou answer briefly.<|eos|>\n<|im_start|>user\nWhat is 2 + 2?<|eos|>\n", 0),
        ("<|im_start|>assistant\n", 0),
        ("It is 4.<|eos|>", 1),
        ("\n<|im_start|>user\nAnd 3 + 3?<|eos|>\n<|im_start|>assistant\n", 0),
        ("Six, obviously.<|eos|>", 1),
        ("\n", 0),
    ]
    expected_ids, expected_mask = [], []
    for text, flag in pieces:
        piece_ids = tokenizer(text)["input_ids"]
        expected_ids += piece_ids
        expected_mask += [flag] * len(piece_ids)
    assert ids == expected_ids
    assert mask == expected_mask
    assert tokenizer.decode([i for i, m in zip(ids, mask) if m]) == "It is 4.<|eos|>Six, obviously.<|eos|>"


def test_template_is_what_trl_assistant_only_loss_needs(tokenizer):
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_trl_sft_trains_only_on_assistant_replies(tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=128, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )  # fmt: skip
    args = SFTConfig(
        output_dir=str(tmp_path), assistant_only_loss=True, max_steps=1, per_device_train_batch_size=2,
        use_cpu=True, bf16=False, report_to=[], save_strategy="no", max_length=128,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=LlamaForCausalLM(config),
        args=args,
        train_dataset=Dataset.from_dict({"messages": [CONVERSATION] * 2}),
        processing_class=tokenizer,
    )
    labels = trainer.data_collator([trainer.train_dataset[0]])["labels"][0].tolist()
    targets = [token for token in labels if token != -100]
    assert tokenizer.decode(targets) == "It is 4.<|eos|>Six, obviously.<|eos|>"
    assert trainer.train().training_loss > 0


def test_save_pretrained_reloads_with_autotokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.chat_template == CHAT_TEMPLATE
    assert reloaded.model_max_length == tokenizer.model_max_length
    assert (reloaded.bos_token_id, reloaded.eos_token_id, reloaded.pad_token_id) == (0, 1, 2)
    for text in UNICODE_SAMPLES:
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
        assert reloaded.decode(reloaded(text)["input_ids"]) == text
    assert reloaded.apply_chat_template(CONVERSATION, tokenize=False) == tokenizer.apply_chat_template(
        CONVERSATION, tokenize=False
    )


def test_default_tokenizer_is_8192_byte_bpe_with_the_chat_template():
    default = AutoTokenizer.from_pretrained(default_tokenizer_path())
    assert len(default) == 8192
    assert default.convert_tokens_to_ids(SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    assert default.chat_template == CHAT_TEMPLATE


def test_cli_train_tokenizer_end_to_end(tmp_path, capsys):
    data = tmp_path / "lines.txt"
    data.write_text("\n".join(_corpus_lines(300)) + "\n", encoding="utf-8")
    out = tmp_path / "tok"
    argv = ["train-tokenizer", "--dataset_name", str(data), "--vocab_size", "600", "--output_dir", str(out)]

    assert cli.main(argv) == 0
    summary = capsys.readouterr().out
    assert "validation bytes/token" in summary
    reloaded = AutoTokenizer.from_pretrained(out)
    assert len(reloaded) == 600
    assert reloaded.chat_template == CHAT_TEMPLATE
    assert reloaded.decode(reloaded("Round trip ✓")["input_ids"]) == "Round trip ✓"

    # A non-empty output directory is refused without --overwrite_output_dir ...
    assert cli.main(argv) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    # ... and accepted with it.
    assert cli.main([*argv[:-2], "--vocab_size", "700", "--output_dir", str(out), "--overwrite_output_dir"]) == 0
    assert len(AutoTokenizer.from_pretrained(out)) == 700


def test_cli_reports_a_missing_dataset_on_one_line(tmp_path, capsys):
    argv = ["train-tokenizer", "--dataset_name", str(tmp_path / "missing.txt"), "--output_dir", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "No such file or directory" in err and len(err.splitlines()) == 1
