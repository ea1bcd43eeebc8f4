"""Tests of perplexity / bits-per-byte evaluation (book §2.6) against direct reference computations."""

import importlib.util
import json
import math

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from hf_hundredpage.evaluation import (
    bits_per_byte,
    evaluate_causal_lm,
    evaluate_ngram,
    fit_ngram_baseline,
    format_comparison_table,
    perplexity,
)
from hf_hundredpage.evaluation.ngram import NGramLanguageModel
from hf_hundredpage.metrics import available_metrics, load_metric


SENTENCES = [
    "the cat sat on the mat .",
    "the dog sat on the log .",
    "a cat and a dog met on the mat .",
    "the naïve cat saw the dog and ran .",
    "the dog ran to the log and sat .",
]
TEXTS = [
    "the cat sat on the log .",
    "the naïve dog met a cat on the mat and the cat ran .",
    "",
    "a dog .",
    " ".join(SENTENCES * 2),  # 86 tokens: longer than every window below
]


def _word_level_tokenizer(with_bos: bool) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["<pad>", "<s>", "<unk>"]))
    special = {"bos_token": "<s>"} if with_bos else {}
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", **special)


@pytest.fixture(scope="module")
def tokenizer():
    return _word_level_tokenizer(with_bos=True)


@pytest.fixture(scope="module")
def tokenizer_without_bos():
    return _word_level_tokenizer(with_bos=False)


def _llama(vocab_size: int, max_position_embeddings: int = 64) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.5,  # large weights: predictions depend strongly on the context
    )
    return LlamaForCausalLM(config).eval()


def _gpt2(vocab_size: int, n_positions: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=n_positions, initializer_range=0.5
    )
    return GPT2LMHeadModel(config).eval()


def _document_ids(tokenizer, text):
    """The evaluated tokens, built independently: BOS (when the tokenizer has one) + the text's tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids


def _total_nll(result):
    return result["loss"] * result["n_tokens"]


# --------------------------------------------------------------------------------------- arithmetic


def test_bits_per_byte_and_perplexity_by_hand():
    # 12 ln 2 nats = 12 bits over 4 bytes = 3 bits per byte.
    assert bits_per_byte(12 * math.log(2), 4) == pytest.approx(3.0, rel=1e-15)
    # 10 nats = 10 / 0.6931471805599453 = 14.426950408889634 bits; over 5 bytes: 2.885390081777927.
    assert bits_per_byte(10.0, 5) == pytest.approx(2.885390081777927, rel=1e-15)
    # 6 nats over 3 tokens: 2 nats per token, perplexity e^2 = 7.38905609893065.
    assert perplexity(6.0, 3) == pytest.approx(7.38905609893065, rel=1e-15)
    assert perplexity(0.0, 10) == 1.0
    with pytest.raises(ValueError, match="n_bytes must be positive"):
        bits_per_byte(1.0, 0)
    with pytest.raises(ValueError, match="n_tokens must be positive"):
        perplexity(1.0, 0)


# ------------------------------------------------------------------------------------- causal LMs


def test_documents_that_fit_the_window_match_one_forward_each(tokenizer):
    model = _llama(len(tokenizer)).train()  # evaluate_causal_lm switches to eval mode and back
    texts = TEXTS[:4]
    result = evaluate_causal_lm(model, tokenizer, texts, batch_size=3)
    assert model.training

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([_document_ids(tokenizer, text)])
            if ids.shape[1] < 2:
                continue  # "" is just the BOS: nothing to score
            logits = model(ids).logits[0]
            total += F.cross_entropy(logits[:-1], ids[0, 1:], reduction="sum").item()
            count += ids.shape[1] - 1
    assert result["n_tokens"] == count == 7 + 14 + 3
    assert _total_nll(result) == pytest.approx(total, rel=1e-5)
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)
    # "naïve" is 6 UTF-8 bytes but 5 characters: n_bytes counts bytes.
    assert result["n_bytes"] == sum(len(text.encode("utf-8")) for text in texts) == sum(map(len, texts)) + 1
    assert result["bits_per_byte"] == pytest.approx(total / math.log(2) / result["n_bytes"], rel=1e-5)


@pytest.mark.parametrize(
    "build_model, max_length, stride",
    [
        pytest.param(lambda v: _llama(v), 8, 3, id="llama-window8-stride3"),
        pytest.param(lambda v: _llama(v), 10, 9, id="llama-window10-stride9"),
        pytest.param(lambda v: _gpt2(v, n_positions=16), None, None, id="gpt2-default-window16-stride8"),
    ],
)
def test_sliding_window_matches_per_token_reference(tokenizer, build_model, max_length, stride):
    model = build_model(len(tokenizer))
    window = max_length or model.config.max_position_embeddings
    step = stride or window // 2
    documents = [_document_ids(tokenizer, text) for text in TEXTS]
    assert max(map(len, documents)) > 4 * window

    # Reference: token p (p >= 1) is scored once, by the first window that contains it. Windows start at
    # k * step and hold `window` tokens, so that window is k = 0 when p < window, else the smallest k with
    # k * step + window > p. Its left context is ids[k * step : p].
    total, count = 0.0, 0
    with torch.no_grad():
        for ids in documents:
            for p in range(1, len(ids)):
                k = 0 if p < window else (p - window) // step + 1
                context = ids[k * step : p]
                assert len(context) >= min(p, window - step)
                logits = model(torch.tensor([context])).logits[0, -1]
                total -= torch.log_softmax(logits.double(), dim=-1)[ids[p]].item()
                count += 1

    for batch_size in (1, 4):  # right padding inside a batch must not change anything
        result = evaluate_causal_lm(
            model, tokenizer, TEXTS, max_length=max_length, stride=stride, batch_size=batch_size
        )
        assert result["n_tokens"] == count
        assert _total_nll(result) == pytest.approx(total, rel=1e-5)
    assert result["loss"] > 0.5  # the model is not trivially certain: the comparison above is meaningful


def test_tokenizer_without_bos_scores_tokens_after_the_first(tokenizer_without_bos):
    tok = tokenizer_without_bos
    model = _llama(len(tok))
    texts = TEXTS[:2] + ["cat"]  # a one-token document has nothing to score
    result = evaluate_causal_lm(model, tok, texts)
    total = 0.0
    with torch.no_grad():
        for text in texts[:2]:
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            total += F.cross_entropy(model(ids).logits[0, :-1], ids[0, 1:], reduction="sum").item()
    assert result["n_tokens"] == (7 - 1) + (14 - 1)
    assert _total_nll(result) == pytest.approx(total, rel=1e-5)

    ngram = fit_ngram_baseline(tok, SENTENCES, order=2)
    ngram_result = evaluate_ngram(ngram, tok, texts)
    assert ngram_result["n_tokens"] == result["n_tokens"]
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    manual = -sum(ngram.log_prob(ids[:i], ids[i]) for i in range(1, len(ids)))  # first token: context only
    ids = tok(texts[1], add_special_tokens=False)["input_ids"]
    manual -= sum(ngram.log_prob(ids[:i], ids[i]) for i in range(1, len(ids)))
    assert _total_nll(ngram_result) == pytest.approx(manual, rel=1e-12)


def test_bad_arguments_raise_value_error(tokenizer):
    model = _llama(len(tokenizer), max_position_embeddings=16)
    with pytest.raises(ValueError, match="not a single string"):
        evaluate_causal_lm(model, tokenizer, "the cat sat")
    with pytest.raises(ValueError, match="stride must be in"):
        evaluate_causal_lm(model, tokenizer, TEXTS, max_length=8, stride=8)
    with pytest.raises(ValueError, match="no tokens to score"):
        evaluate_causal_lm(model, tokenizer, ["", ""])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_causal_lm(model, tokenizer, TEXTS, batch_size=0)


# ---------------------------------------------------------------------------------------- n-gram


def test_evaluate_ngram_matches_manual_sum_of_log_probs(tokenizer):
    ngram = fit_ngram_baseline(tokenizer, SENTENCES, order=3)
    assert ngram.vocab_size == len(tokenizer)
    result = evaluate_ngram(ngram, tokenizer, TEXTS)

    # The BOS is replaced by the n-gram's start context: every token after it is scored from the start.
    total, count = 0.0, 0
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        total -= sum(ngram.log_prob(ids[:i], token) for i, token in enumerate(ids))
        count += len(ids)
    assert result["n_tokens"] == count
    assert _total_nll(result) == pytest.approx(total, rel=1e-12)
    assert result["bits_per_byte"] == pytest.approx(total / math.log(2) / sum(len(t.encode()) for t in TEXTS))

    # Same scored tokens and bytes as the causal-LM evaluation, so the rows of a table are comparable.
    model_result = evaluate_causal_lm(_llama(len(tokenizer)), tokenizer, TEXTS, max_length=16, stride=8)
    assert (model_result["n_tokens"], model_result["n_bytes"]) == (result["n_tokens"], result["n_bytes"])
    # The baseline, fitted on text close to the evaluation texts, beats an untrained transformer.
    assert result["loss"] < model_result["loss"]

    too_small = NGramLanguageModel(order=2, vocab_size=3).fit([[0, 1, 2]])
    with pytest.raises(ValueError, match="fit it with fit_ngram_baseline"):
        evaluate_ngram(too_small, tokenizer, TEXTS)


def test_format_comparison_table():
    rows = {
        "tiny-llama": {"loss": 3.2189, "perplexity": 24.9999, "bits_per_byte": 1.23456, "n_tokens": 12345},
        "3-gram Kneser-Ney": {"loss": 4.0, "perplexity": 54.598, "bits_per_byte": 1.5, "n_tokens": 12345},
    }
    lines = format_comparison_table(rows).splitlines()
    assert lines[0].split() == ["model", "loss", "perplexity", "bits/byte", "tokens"]
    assert lines[2].split() == ["tiny-llama", "3.2189", "25.00", "1.2346", "12,345"]
    assert lines[3].split() == ["3-gram", "Kneser-Ney", "4.0000", "54.60", "1.5000", "12,345"]
    assert len({len(line) for line in lines}) == 1  # aligned: every line has the same width
    with pytest.raises(ValueError, match="lacks perplexity"):
        format_comparison_table({"x": {"loss": 1.0, "bits_per_byte": 1.0, "n_tokens": 1}})


# -------------------------------------------------------------------------------- evaluate metrics


def test_local_metrics_load_offline_and_compute(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert available_metrics() == ["bits_per_byte", "perplexity_from_nll"]
    bpb = load_metric("bits_per_byte")
    # Documents of 2 and 1 nats, 3 and 1 bytes: 3 nats / ln 2 / 4 bytes = 1.0820212806667227 bits per byte.
    assert bpb.compute(nll=[2.0, 1.0], n_bytes=[3, 1])["bits_per_byte"] == pytest.approx(1.0820212806667227)
    assert bpb.compute(nll=[5.0], n_bytes=[7])["bits_per_byte"] == pytest.approx(bits_per_byte(5.0, 7), rel=1e-15)

    ppl = load_metric("perplexity_from_nll")
    ppl.add_batch(nll=[3.0], n_tokens=[3])
    ppl.add_batch(nll=[1.0, 2.0], n_tokens=[1, 4])
    # 6 nats over 8 tokens: loss 0.75, perplexity e^0.75 = 2.117000016612675.
    assert ppl.compute() == pytest.approx({"loss": 0.75, "perplexity": 2.117000016612675})
    with pytest.raises(ValueError, match="no local metric named 'accuracy'"):
        load_metric("accuracy")


# ------------------------------------------------------------------------------------------- CLI


@pytest.mark.skipif(
    importlib.util.find_spec("hf_hundredpage.data") is None,
    reason="hf_hundredpage.data (load_text_dataset) is not written yet; the CLI loads its datasets through it",
)
def test_cli_prints_comparison_table(tmp_path, tokenizer, capsys):
    from hf_hundredpage.cli import main

    model_dir = tmp_path / "tiny-llama"
    _llama(len(tokenizer), max_position_embeddings=16).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data_file = tmp_path / "corpus.jsonl"
    data_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in SENTENCES + TEXTS * 3))

    args = [str(model_dir), "--dataset_name", str(data_file), "--stride", "4", "--ngram_order", "2"]
    assert main(["evaluate", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["model", "loss"])
    assert lines[header + 2].split()[0] == "tiny-llama"
    assert lines[header + 3].split()[:2] == ["2-gram", "Kneser-Ney"]
    # Both rows score the same tokens of the validation split the data module carved out of the file.
    assert lines[header + 2].split()[-1] == lines[header + 3].split()[-1] != "0"

    assert main(["evaluate", str(tmp_path / "missing"), "--dataset_name", str(data_file)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", *args, "--split", "test"]) == 2
    assert "has no split 'test'" in capsys.readouterr().err


@pytest.mark.skipif(
    importlib.util.find_spec("hf_hundredpage.data") is None,
    reason="hf_hundredpage.data (load_text_dataset, the embedded corpus) is not written yet",
)
def test_cli_defaults_to_the_embedded_corpus(tmp_path, capsys):
    from transformers import AutoTokenizer

    from hf_hundredpage.cli import main
    from hf_hundredpage.data import default_tokenizer_path

    model_dir = tmp_path / "embedded-tiny"
    corpus_tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    _llama(len(corpus_tokenizer), max_position_embeddings=32).save_pretrained(model_dir)
    corpus_tokenizer.save_pretrained(model_dir)
    assert main(["evaluate", str(model_dir), "--max_documents", "3", "--stride", "16"]) == 0
    out = capsys.readouterr().out
    assert "hundredpage-wiki [validation]: 3 documents; n-gram fitted on 3 train documents" in out
    assert "embedded-tiny" in out and "3-gram Kneser-Ney" in out
