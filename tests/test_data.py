"""Tests of `hf_hundredpage.data`: the embedded corpus, loading, packing and sentence mode."""

from __future__ import annotations

import gzip
import json
import logging
import time
from pathlib import Path

import datasets
import pandas as pd
import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict
from transformers import AutoTokenizer

from hf_hundredpage.data import (
    EMBEDDED_CORPUS,
    count_utf8_bytes,
    default_tokenizer_path,
    embedded_corpus_files,
    load_text_dataset,
    pack_dataset,
    pad_collator,
    sentence_dataset,
    split_into_sentences,
)


DOCS = [
    "The first document is short.",
    "A second one, with numbers like 1999 and 42, follows.",
    "Third: unicode — café, naïve, 東京.",
    "Fourth document.",
    "Fifth and last document of the toy corpus.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_tokenizer_path())


@pytest.fixture(scope="module")
def corpus():
    return load_text_dataset()


def _reference_stream(texts, tokenizer, add_eos=True, add_bos=True) -> list[int]:
    """The corpus as one token stream, one `encode` call per document (independent of any batching):
    BOS document EOS, BOS document EOS, ..."""
    stream: list[int] = []
    for text in texts:
        if add_bos:
            stream.append(tokenizer.bos_token_id)
        stream += tokenizer.encode(text, add_special_tokens=False)
        if add_eos:
            stream.append(tokenizer.eos_token_id)
    return stream


def _flat(blocks) -> list[int]:
    return [token for block in blocks for token in block]


# ---------------------------------------------------------------------------------------------------------------
# Embedded corpus
# ---------------------------------------------------------------------------------------------------------------


def test_embedded_corpus_ships_both_splits_with_licence():
    files = embedded_corpus_files()
    assert set(files) == {"train", "validation"}
    lines = {}
    for split, path in files.items():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines[split] = f.read().splitlines()
    train_bytes, validation_bytes = count_utf8_bytes(lines["train"]), count_utf8_bytes(lines["validation"])
    assert train_bytes >= 2_000_000
    assert 0.03 < validation_bytes / (train_bytes + validation_bytes) < 0.1
    assert not set(lines["train"]) & set(lines["validation"])  # split by article: no shared paragraph
    assert all(line.strip() and "[[" not in line and "{{" not in line for line in lines["train"])
    licence = (Path(files["train"]).parent / "LICENSE_AND_ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in licence and "en.wikipedia.org" in licence
    # Every file that must ship matches the package-data patterns of pyproject.toml.
    shipped = {p.name for p in Path(files["train"]).parent.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert all(Path(name).suffix in {".gz", ".md", ".py", ".json", ".jinja"} for name in shipped), shipped


def test_load_embedded_corpus(corpus):
    assert isinstance(corpus, DatasetDict)
    assert list(corpus) == ["train", "validation"]
    assert corpus["train"].column_names == ["text"]
    assert corpus["train"].num_rows > 4000 and corpus["validation"].num_rows > 200
    assert load_text_dataset(EMBEDDED_CORPUS)["validation"][0] == corpus["validation"][0]


def test_count_utf8_bytes_hand_computed():
    assert count_utf8_bytes("aé€😀") == 1 + 2 + 3 + 4
    assert count_utf8_bytes(["ab", "", "é"]) == 4
    assert count_utf8_bytes([]) == 0


# ---------------------------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [7, 64, 1000])
def test_pack_dataset_equals_the_truncated_stream(tokenizer, corpus, block_size):
    # 2,500 documents: the cached map sees three batches, and blocks straddle the batch boundaries.
    docs = corpus["train"].select(range(2500))
    packed = pack_dataset(docs, tokenizer, block_size)
    stream = _reference_stream(docs[:]["text"], tokenizer)
    assert len(packed) == len(stream) // block_size
    assert all(len(ids) == block_size for ids in packed["input_ids"])
    assert _flat(packed["input_ids"]) == stream[: len(packed) * block_size]
    assert packed["labels"][:] == packed["input_ids"][:]
    assert all(mask == [1] * block_size for mask in packed["attention_mask"])


def test_pack_dataset_is_independent_of_num_proc_and_uses_the_cache(tokenizer, corpus):
    docs = corpus["validation"]
    once = pack_dataset(docs, tokenizer, 50)
    start = time.perf_counter()
    twice = pack_dataset(docs, tokenizer, 50)
    assert time.perf_counter() - start < 1.0  # both passes are read back from the Arrow cache
    assert twice.cache_files and twice.cache_files == once.cache_files
    in_two = pack_dataset(docs.select(range(200)), tokenizer, 50, num_proc=2)
    assert in_two["input_ids"][:] == pack_dataset(docs.select(range(200)), tokenizer, 50)["input_ids"][:]


def test_pack_dataset_toy_example_by_hand(tokenizer):
    docs = Dataset.from_dict({"text": DOCS, "id": list(range(len(DOCS)))})
    without_eos = pack_dataset(docs, tokenizer, 5, add_eos=False, add_bos=False)
    stream = _reference_stream(DOCS, tokenizer, add_eos=False, add_bos=False)
    assert _flat(without_eos["input_ids"]) == stream[: len(stream) // 5 * 5]
    assert tokenizer.eos_token_id not in _flat(without_eos["input_ids"])
    assert tokenizer.bos_token_id not in _flat(without_eos["input_ids"])
    with_eos = pack_dataset(docs, tokenizer, 5)
    flat = _flat(with_eos["input_ids"])
    assert flat.count(tokenizer.eos_token_id) >= len(DOCS) - 1
    assert flat[0] == tokenizer.bos_token_id and flat.count(tokenizer.bos_token_id) >= len(DOCS) - 1
    # every EOS inside the stream is followed by the next document's BOS
    assert all(flat[i + 1] == tokenizer.bos_token_id for i, t in enumerate(flat[:-1]) if t == tokenizer.eos_token_id)
    assert with_eos.column_names == ["input_ids", "labels", "attention_mask"]


def test_pack_dataset_streaming_matches_map_style(tokenizer, corpus):
    streamed = load_text_dataset(streaming=True)
    assert isinstance(streamed, IterableDatasetDict)
    packed = pack_dataset(streamed["validation"], tokenizer, 128)
    assert isinstance(packed, IterableDataset)
    rows = list(packed)
    assert all(len(row["input_ids"]) == 128 and row["labels"] == row["input_ids"] for row in rows)
    map_style = pack_dataset(corpus["validation"], tokenizer, 128)
    assert _flat(r["input_ids"] for r in rows) == _flat(map_style["input_ids"])


def test_pack_dataset_dict_and_errors(tokenizer):
    dd = DatasetDict({"train": Dataset.from_dict({"text": DOCS}), "validation": Dataset.from_dict({"text": DOCS[:2]})})
    packed = pack_dataset(dd, tokenizer, 4)
    assert set(packed) == {"train", "validation"} and all(len(ids) == 4 for ids in packed["validation"]["input_ids"])
    with pytest.raises(ValueError, match="fewer than one block"):
        pack_dataset(dd["validation"], tokenizer, 10_000)
    with pytest.raises(ValueError, match=r"columns \['body'\]"):
        pack_dataset(Dataset.from_dict({"body": DOCS}), tokenizer, 4)
    with pytest.raises(ValueError, match="block_size"):
        pack_dataset(dd["train"], tokenizer, 0)


# ---------------------------------------------------------------------------------------------------------------
# Loading local files, directories and the Hub
# ---------------------------------------------------------------------------------------------------------------

ROWS = [{"text": f"Document number {i} says something.", "label": i % 3} for i in range(40)]


def _write(path: Path, rows=ROWS) -> Path:
    frame = pd.DataFrame(rows)
    if path.name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(path)
    return path


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json", "rows.csv", "rows.parquet"])
def test_load_single_structured_file_carves_validation(tmp_path, name, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_hundredpage.data.text"):
        dd = load_text_dataset(str(_write(tmp_path / name)), seed=0)
    assert list(dd) == ["train", "validation"]
    assert (dd["train"].num_rows, dd["validation"].num_rows) == (38, 2)
    assert sorted(dd["train"]["text"][:] + dd["validation"]["text"][:]) == sorted(r["text"] for r in ROWS)
    assert "no validation split" in caplog.text
    assert load_text_dataset(str(tmp_path / name), seed=0)["validation"]["text"][:] == dd["validation"]["text"][:]


def test_load_txt_drops_blank_lines_and_reads_gzip(tmp_path):
    lines = [f"Line {i} of a plain text file." for i in range(30)]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n\n".join(lines) + "\n   \n", encoding="utf-8")
    dd = load_text_dataset(str(plain))
    assert dd["train"].num_rows + dd["validation"].num_rows == 30
    packed = tmp_path / "packed.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    dd = load_text_dataset(str(packed))
    assert sorted(dd["train"]["text"][:] + dd["validation"]["text"][:]) == sorted(lines)


def test_load_directory_infers_splits(tmp_path):
    _write(tmp_path / "train.jsonl", ROWS[:30])
    _write(tmp_path / "validation.jsonl", ROWS[30:35])
    _write(tmp_path / "test.jsonl", ROWS[35:])
    dd = load_text_dataset(str(tmp_path))
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 30, "validation": 5, "test": 5}
    assert dd["validation"][0]["text"] == ROWS[30]["text"]


def test_split_names_map_our_splits_to_the_sources(tmp_path):
    _write(tmp_path / "train.csv", ROWS[:30])
    _write(tmp_path / "test.csv", ROWS[30:])
    dd = load_text_dataset(str(tmp_path), split_names={"validation": "test"})
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 30, "validation": 10}
    with pytest.raises(ValueError, match="splits are"):
        load_text_dataset(str(tmp_path), split_names={"validation": "dev"})


def test_load_streaming_local_file(tmp_path):
    path = _write(tmp_path / "rows.jsonl")
    dd = load_text_dataset(str(path), streaming=True, validation_fraction=0.1)
    assert isinstance(dd, IterableDatasetDict)
    validation = [row["text"] for row in dd["validation"]]
    train = [row["text"] for row in dd["train"]]
    assert validation == [ROWS[i]["text"] for i in range(0, 40, 10)]
    assert len(train) == 36 and not set(train) & set(validation)


def test_missing_text_column_names_the_existing_ones(tmp_path):
    path = _write(tmp_path / "rows.jsonl", [{"body": "x y z", "label": 1}] * 4)
    with pytest.raises(ValueError, match=r"'text' not found.*\['body', 'label'\]"):
        load_text_dataset(str(path))
    assert load_text_dataset(str(path), text_column="body")["train"].column_names == ["body", "label"]


def test_missing_or_unsupported_paths_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="No such file or directory"):
        load_text_dataset(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError, match="No such file or directory"):
        load_text_dataset("./not/here")
    odd = tmp_path / "data.xml"
    odd.write_text("<a/>")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_text_dataset(str(odd))


@pytest.mark.timeout(60)
def test_offline_hub_id_gives_one_clear_error_quickly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="Could not load 'someone/does-not-exist'.*hundredpage-wiki"):
        load_text_dataset("someone/does-not-exist")
    assert time.perf_counter() - start < 10
    # The offline switch is restored for the rest of the process.
    import huggingface_hub.constants

    assert datasets.config.HF_HUB_OFFLINE == huggingface_hub.constants.HF_HUB_OFFLINE


# ---------------------------------------------------------------------------------------------------------------
# Sentence mode
# ---------------------------------------------------------------------------------------------------------------


def test_split_into_sentences_handles_abbreviations_and_quotes():
    text = 'Mr. Smith met J. R. R. Tolkien in 1950. "Was it fun?" she asked. Yes! It was, e.g. at dinner. Done'
    assert split_into_sentences(text) == [
        "Mr. Smith met J. R. R. Tolkien in 1950.",
        '"Was it fun?" she asked.',
        "Yes!",
        "It was, e.g. at dinner.",
        "Done",
    ]


def test_sentence_dataset_replaces_digits_truncates_and_masks_padding(tokenizer):
    ds = Dataset.from_dict({"text": ["In 1990 there were 12 cats. The 3 dogs barked at 4.50 pm!", "Ok."]})
    rows = sentence_dataset(ds, tokenizer, max_length=64)
    decoded = [tokenizer.decode(ids) for ids in rows["input_ids"]]
    assert decoded == ["In ### there were ### cats.", "The ### dogs barked at ###.### pm!", "Ok."]
    assert rows["labels"][:] == rows["input_ids"][:]

    kept_digits = sentence_dataset(ds, tokenizer, max_length=64, replace_digits=False, split_sentences=False)
    assert [tokenizer.decode(ids) for ids in kept_digits["input_ids"]] == ds["text"][:]

    short = sentence_dataset(ds, tokenizer, max_length=3)
    assert short["input_ids"][:] == [ids[:3] for ids in rows["input_ids"]]
    assert sentence_dataset(Dataset.from_dict({"text": ["A", "Hello world."]}), tokenizer, 8).num_rows == 1

    batch = pad_collator(tokenizer)([rows[0], rows[1], rows[2]])
    lengths = [len(ids) for ids in rows["input_ids"]]
    width = max(lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, width)
    for row, n in enumerate(lengths):
        assert batch["input_ids"][row, :n].tolist() == rows["input_ids"][row]
        assert batch["input_ids"][row, n:].tolist() == [tokenizer.pad_token_id] * (width - n)
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["labels"][row].tolist() == rows["input_ids"][row] + [-100] * (width - n)


def test_pad_collator_masks_by_length_when_pad_is_eos(tokenizer):
    eos = tokenizer.eos_token_id
    tok = AutoTokenizer.from_pretrained(default_tokenizer_path(), pad_token="<|eos|>", padding_side="left")
    assert tok.pad_token_id == eos
    batch = pad_collator(tok, pad_to_multiple_of=4)([{"input_ids": [5, 6, eos]}, {"input_ids": [7, 8, 9, 10, eos]}])
    assert batch["input_ids"].tolist() == [[eos] * 5 + [5, 6, eos], [eos] * 3 + [7, 8, 9, 10, eos]]
    # The real EOS that ends each row stays a target; only the padding is -100.
    assert batch["labels"].tolist() == [[-100] * 5 + [5, 6, eos], [-100] * 3 + [7, 8, 9, 10, eos]]
    assert batch["attention_mask"].dtype == torch.long and batch["attention_mask"].sum().item() == 8


def test_sentence_dataset_streaming(tokenizer):
    ds = Dataset.from_dict({"text": DOCS}).to_iterable_dataset()
    rows = list(sentence_dataset(ds, tokenizer, max_length=32))
    assert len(rows) == len(DOCS)
    assert tokenizer.decode(rows[1]["input_ids"]) == "A second one, with numbers like ### and ###, follows."
