"""Text datasets for language-model training: loading, packing, sentence mode (book §2.3, §3, §4).

Three steps turn text into what a causal language model trains on:

1. `load_text_dataset` gives a ``DatasetDict`` with ``train`` and ``validation`` splits from the embedded
   ``hundredpage-wiki`` corpus, a Hub dataset, a local directory or a single local file.
2. `pack_dataset` tokenizes every document, joins them with EOS and cuts the token stream into blocks of exactly
   ``block_size`` tokens (the pretraining layout of ch. 4: no padding, every token is a target).
3. `sentence_dataset` is the alternative used by the book's notebooks (ch. 3 RNN, ch. 4 decoder): one sentence
   per row, numbers replaced by ``###``, truncated, padded per batch by `pad_collator` with padded labels set
   to -100.

`count_utf8_bytes` gives the denominator of bits-per-byte (§2.6), the tokenizer-independent form of perplexity.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import (
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    IterableDatasetDict,
    List,
    Value,
    load_dataset,
)


logger = logging.getLogger(__name__)

EMBEDDED_CORPUS = "hundredpage-wiki"
_CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

# File suffix -> `datasets` packaged builder. Compressed variants (e.g. ``.jsonl.gz``) are read transparently.
_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"}
_VALIDATION_ALIASES = ("validation", "valid", "val", "dev")
_WHAT_TO_PASS = (
    f"pass '{EMBEDDED_CORPUS}' (the embedded corpus), a local .txt/.jsonl/.json/.csv/.parquet file, a local "
    "directory of train*/validation* files, or a Hub dataset id that is cached or reachable"
)
_BLOCK_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "attention_mask": List(Value("int8")),
    }
)


# --------------------------------------------------------------------------------------------------------------
# The embedded corpus
# --------------------------------------------------------------------------------------------------------------


def embedded_corpus_files() -> dict[str, str]:
    """Paths of the embedded ``hundredpage-wiki`` corpus, ``{"train": ..., "validation": ...}``.

    ~2.6 MB of English Wikipedia prose (CC BY-SA 3.0, see ``corpus/LICENSE_AND_ATTRIBUTION.md``), one paragraph
    per line, gzip-compressed; rebuilt by ``python -m hf_hundredpage.data.corpus.build_corpus``.
    """
    files = {split: _CORPUS_DIR / f"{split}.txt.gz" for split in ("train", "validation")}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"Embedded corpus file {path} is missing; rebuild it with "
                "`python -m hf_hundredpage.data.corpus.build_corpus` or reinstall hf_hundredpage."
            )
    return {split: str(path) for split, path in files.items()}


def default_tokenizer_path() -> str:
    """Folder of the default tokenizer: byte-level BPE, vocabulary 8192, trained on the embedded corpus (§2.3)."""
    path = _CORPUS_DIR / "tokenizer"
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"Default tokenizer missing from {path}; rebuild it with "
            "`python -m hf_hundredpage.data.corpus.build_corpus` or reinstall hf_hundredpage."
        )
    return str(path)


def count_utf8_bytes(texts: str | Iterable[str]) -> int:
    """Number of UTF-8 bytes in ``texts`` (a string or an iterable of strings), separators not counted.

    Bits-per-byte (§2.6) divides the summed negative log-likelihood in bits by this number, which makes models
    with different tokenizers comparable.
    """
    if isinstance(texts, str):
        return len(texts.encode("utf-8"))
    return sum(len(text.encode("utf-8")) for text in texts)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def _builder_for(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return _BUILDERS.get(suffixes[-1]) if suffixes else None


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or name.count("/") > 1
        or _builder_for(Path(name)) is not None
    )


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def _hub_offline_from_env():
    """Honour ``HF_HUB_OFFLINE=1`` even when it was set after `datasets`/`huggingface_hub` were imported.

    Both libraries read the variable once at import; without this a process that sets it later (a notebook, a
    test) would still retry the network for ~20 s before failing.
    """
    import datasets.config
    import huggingface_hub.constants

    if datasets.config.HF_HUB_OFFLINE or not (_env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE")):
        yield
        return
    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _load_raw(dataset_name: str, dataset_config: str | None, streaming: bool):
    if dataset_name == EMBEDDED_CORPUS:
        return load_dataset("text", data_files=embedded_corpus_files(), streaming=streaming)

    path = Path(dataset_name).expanduser()
    if path.is_file():
        builder = _builder_for(path)
        if builder is None:
            raise ValueError(
                f"Cannot read {path}: unsupported file type; use .txt, .jsonl, .json, .csv or .parquet "
                "(optionally .gz-compressed)."
            )
        return load_dataset(builder, data_files={"train": str(path)}, streaming=streaming)
    if path.is_dir():
        try:
            return load_dataset(str(path), dataset_config, streaming=streaming)
        except Exception as err:  # EmptyDatasetError, DataFilesNotFoundError, mixed formats ...
            reason = (str(err).splitlines() or [""])[0]
            raise ValueError(
                f"Cannot load the directory {path} ({type(err).__name__}: {reason}); it should hold "
                "train*/validation* .txt/.jsonl/.csv/.parquet files of one format."
            ) from err
    if _looks_like_path(dataset_name):
        raise ValueError(f"No such file or directory: {dataset_name}; {_WHAT_TO_PASS}.")

    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with _hub_offline_from_env():
            return load_dataset(dataset_name, dataset_config, streaming=streaming)
    except (ConnectionError, DatasetNotFoundError, FileNotFoundError, HfHubHTTPError) as err:
        raise ValueError(
            f"Could not load '{dataset_name}' from the Hugging Face Hub ({type(err).__name__}: the Hub is "
            f"unreachable, offline mode is on, or the id does not exist); {_WHAT_TO_PASS}."
        ) from err


def _column_names(ds: Dataset | IterableDataset) -> list[str]:
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)  # streaming JSON has no schema until the first row is read
    return list(first) if first is not None else []


def _check_text_column(ds: Dataset | IterableDataset, text_column: str, split: str = "train") -> None:
    columns = _column_names(ds)
    if text_column not in columns:
        raise ValueError(
            f"Text column '{text_column}' not found in the {split} split; it has columns {columns}. "
            "Pass --text_column / text_column= with one of them."
        )


def load_text_dataset(
    dataset_name: str = EMBEDDED_CORPUS,
    dataset_config: str | None = None,
    *,
    text_column: str = "text",
    streaming: bool = False,
    split_names: Mapping[str, str] | None = None,
    validation_fraction: float = 0.05,
    seed: int = 42,
) -> DatasetDict | IterableDatasetDict:
    """Load a text corpus as ``train`` / ``validation`` (and ``test`` when the source has one) splits.

    Args:
        dataset_name: ``"hundredpage-wiki"`` (the embedded corpus, default); a Hub dataset id; a local directory
            (splits inferred by `datasets` from file names: ``train*``, ``validation*``/``valid*``/``dev*``,
            ``test*``); or one local ``.txt`` (one document per line), ``.jsonl``, ``.json``, ``.csv`` or
            ``.parquet`` file, optionally compressed.
        dataset_config: the Hub configuration name (e.g. ``"wikitext-103-raw-v1"``).
        text_column: the column that holds the text; an error names the existing columns if it is missing.
        streaming: return an ``IterableDatasetDict`` that reads lazily instead of an Arrow-cached ``DatasetDict``.
        split_names: map our split names to the source's, e.g. ``{"validation": "test"}``. Without it,
            ``validation`` is taken from a split named validation/valid/val/dev.
        validation_fraction: when the source has no validation split, this share of ``train`` is carved out
            (seeded shuffle; when streaming, every ``round(1 / validation_fraction)``-th row).
        seed: seed of that carving.

    Rows whose text is empty or only whitespace (blank lines of .txt files) are dropped.

    Raises:
        ValueError: the source cannot be found or reached (one line saying what to pass instead), has no
            train split, or lacks ``text_column``.
    """
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction={validation_fraction} must be between 0 and 1 (exclusive).")
    raw = _load_raw(dataset_name, dataset_config, streaming)
    if isinstance(raw, (Dataset, IterableDataset)):
        raw = (IterableDatasetDict if streaming else DatasetDict)({"train": raw})

    wanted = dict(split_names or {})
    unknown = sorted(set(wanted) - {"train", "validation", "test"})
    if unknown:
        raise ValueError(f"split_names keys must be train/validation/test, got {unknown}.")
    for ours, theirs in wanted.items():
        if theirs not in raw:
            raise ValueError(f"split_names maps '{ours}' to '{theirs}', but the splits are {list(raw)}.")
    wanted.setdefault("train", "train")
    if "validation" not in wanted:
        alias = next((name for name in _VALIDATION_ALIASES if name in raw), None)
        if alias is not None:
            wanted["validation"] = alias
    if "test" not in wanted and "test" in raw and wanted.get("validation") != "test":
        wanted["test"] = "test"
    if wanted["train"] not in raw:
        raise ValueError(
            f"'{dataset_name}' has no train split (splits: {list(raw)}); name it with split_names={{'train': ...}}."
        )

    splits = {ours: raw[theirs] for ours, theirs in wanted.items()}
    for name, split in splits.items():
        _check_text_column(split, text_column, name)
        splits[name] = split.filter(_has_text, input_columns=[text_column], batched=True)

    if "validation" not in splits:
        train = splits["train"]
        if streaming:
            every = max(2, round(1 / validation_fraction))
            splits["validation"] = train.filter(lambda _, i: i % every == 0, with_indices=True)
            splits["train"] = train.filter(lambda _, i: i % every != 0, with_indices=True)
            logger.warning(
                f"'{dataset_name}' has no validation split: using every {every}-th train row as validation."
            )
        else:
            if len(train) < 2:
                raise ValueError(f"'{dataset_name}' has {len(train)} row(s): too few to carve a validation split.")
            carved = train.train_test_split(test_size=validation_fraction, seed=seed, shuffle=True)
            splits["train"], splits["validation"] = carved["train"], carved["test"]
            logger.warning(
                f"'{dataset_name}' has no validation split: carved {len(carved['test'])} of {len(train)} train rows "
                f"({validation_fraction:.0%}, seed {seed}) as validation."
            )
    ordered = {name: splits[name] for name in ("train", "validation", "test") if name in splits}
    return (IterableDatasetDict if streaming else DatasetDict)(ordered)


def _has_text(texts: list[str | None]) -> list[bool]:
    return [text is not None and not text.isspace() and text != "" for text in texts]


# --------------------------------------------------------------------------------------------------------------
# Packing (pretraining layout)
# --------------------------------------------------------------------------------------------------------------


def _tokenize_documents(
    texts: list[str], *, tokenizer, eos_token_id: int | None, bos_token_id: int | None = None
) -> dict[str, list[list[int]]]:
    input_ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    head = [] if bos_token_id is None else [bos_token_id]
    tail = [] if eos_token_id is None else [eos_token_id]
    return {"input_ids": [head + ids + tail for ids in input_ids]}


def _block_columns(blocks: np.ndarray) -> dict[str, np.ndarray]:
    return {"input_ids": blocks, "labels": blocks.copy(), "attention_mask": np.ones_like(blocks, dtype=np.int8)}


def _cut_blocks(
    batch, indices: list[int], *, documents: Dataset, offsets: np.ndarray, block_size: int, num_blocks: int
) -> dict[str, np.ndarray]:
    """Emit the blocks whose first token falls inside this batch of documents.

    Block ``k`` covers tokens ``[k * block_size, (k + 1) * block_size)`` of the whole corpus stream, so it may end
    in documents after the batch: those are read from ``documents`` (memory-mapped Arrow, zero copy). This keeps
    the result identical to cutting the concatenated corpus, whatever the batch size or ``num_proc``.
    """
    first, stop = indices[0], indices[-1] + 1
    start_block = -(-int(offsets[first]) // block_size)
    end_block = min(-(-int(offsets[stop]) // block_size), num_blocks)
    if start_block >= end_block:
        empty = np.zeros((0, block_size), dtype=np.int32)
        return _block_columns(empty)
    lo, hi = start_block * block_size, end_block * block_size
    doc_lo = int(np.searchsorted(offsets, lo, side="right")) - 1
    doc_hi = int(np.searchsorted(offsets, hi, side="left"))
    ids = documents.with_format("arrow")[doc_lo:doc_hi]["input_ids"].combine_chunks().flatten()
    window = ids.to_numpy(zero_copy_only=False)[lo - offsets[doc_lo] : hi - offsets[doc_lo]]
    return _block_columns(window.astype(np.int32).reshape(-1, block_size))


def _stream_blocks(
    source: IterableDataset, tokenizer, block_size: int, text_column: str, eos_token_id, bos_token_id=None
):
    buffer: list[int] = []
    for batch in source.iter(batch_size=1000):
        documents = _tokenize_documents(
            batch[text_column], tokenizer=tokenizer, eos_token_id=eos_token_id, bos_token_id=bos_token_id
        )
        for ids in documents["input_ids"]:
            buffer.extend(ids)
        usable = len(buffer) - len(buffer) % block_size
        for start in range(0, usable, block_size):
            block = buffer[start : start + block_size]
            yield {"input_ids": block, "labels": list(block), "attention_mask": [1] * block_size}
        buffer = buffer[usable:]


def pack_dataset(
    ds: Dataset | IterableDataset | DatasetDict | IterableDatasetDict,
    tokenizer,
    block_size: int,
    *,
    text_column: str = "text",
    num_proc: int | None = None,
    add_eos: bool = True,
    add_bos: bool = True,
) -> Dataset | IterableDataset | DatasetDict | IterableDatasetDict:
    """Tokenize, concatenate and cut into blocks of exactly ``block_size`` tokens (the pretraining layout, ch. 4).

    Documents are tokenized without special tokens and joined with ``tokenizer.eos_token_id`` after each one
    (``add_eos``), so the model learns where a text ends; ``tokenizer.bos_token_id``, when the tokenizer has one,
    starts each document (``add_bos``), so that the model sees documents begin exactly as
    `hf_hundredpage.evaluation` and generation present them. The stream is cut into consecutive blocks; the final
    partial block is dropped. The concatenation of all blocks equals the concatenated corpus truncated to a
    multiple of ``block_size`` exactly (no per-batch remainder is lost). Each row has ``input_ids``, ``labels``
    (equal to ``input_ids``: the model shifts them) and ``attention_mask`` (all ones).

    A `Dataset` is processed with two cached ``datasets.map(batched=True)`` passes (tokenize, then cut), so
    re-running is instant; an `IterableDataset` is packed lazily while iterating; a ``DatasetDict`` split by
    split.

    Raises:
        ValueError: ``block_size`` < 1, no EOS token while ``add_eos``, ``text_column`` missing, or fewer tokens
            than one block.
    """
    if block_size < 1:
        raise ValueError(f"block_size={block_size} must be a positive number of tokens.")
    eos_token_id = tokenizer.eos_token_id if add_eos else None
    bos_token_id = tokenizer.bos_token_id if add_bos else None
    if add_eos and eos_token_id is None:
        raise ValueError("The tokenizer has no eos_token to separate documents; set one or pass add_eos=False.")
    if isinstance(ds, (DatasetDict, IterableDatasetDict)):
        kwargs = dict(text_column=text_column, num_proc=num_proc, add_eos=add_eos, add_bos=add_bos)
        return type(ds)({name: pack_dataset(split, tokenizer, block_size, **kwargs) for name, split in ds.items()})

    if isinstance(ds, IterableDataset):
        _check_text_column(ds, text_column)
        return IterableDataset.from_generator(
            _stream_blocks,
            features=_BLOCK_FEATURES,
            gen_kwargs={
                "source": ds,
                "tokenizer": tokenizer,
                "block_size": block_size,
                "text_column": text_column,
                "eos_token_id": eos_token_id,
                "bos_token_id": bos_token_id,
            },
        )
    if not isinstance(ds, Dataset):
        raise ValueError(f"pack_dataset expects a datasets Dataset/IterableDataset, got {type(ds).__name__}.")
    _check_text_column(ds, text_column)

    documents = ds.map(
        _tokenize_documents,
        batched=True,
        input_columns=[text_column],
        remove_columns=ds.column_names,
        fn_kwargs={"tokenizer": tokenizer, "eos_token_id": eos_token_id, "bos_token_id": bos_token_id},
        num_proc=num_proc,
        desc="Tokenizing",
    )
    lengths = pc.list_value_length(documents.with_format("arrow")["input_ids"]).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    num_blocks = int(offsets[-1]) // block_size
    if num_blocks == 0:
        raise ValueError(
            f"The dataset has {int(offsets[-1])} tokens, fewer than one block of {block_size}; "
            "use a smaller block_size or more text."
        )
    return documents.with_format("arrow").map(
        _cut_blocks,
        batched=True,
        with_indices=True,
        remove_columns=documents.column_names,
        features=_BLOCK_FEATURES,
        fn_kwargs={"documents": documents, "offsets": offsets, "block_size": block_size, "num_blocks": num_blocks},
        num_proc=num_proc,
        desc=f"Packing into blocks of {block_size}",
    ).with_format(None)


# --------------------------------------------------------------------------------------------------------------
# Sentence mode (the book notebooks' layout)
# --------------------------------------------------------------------------------------------------------------

_CANDIDATE_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf", "no", "vol",
    "fig", "gen", "gov", "sen", "rep", "rev", "col", "lt", "sgt", "capt", "u.s", "u.k", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "c", "ca", "inc", "ltd", "co",
}  # fmt: skip
_DIGITS = re.compile(r"\d+")


def split_into_sentences(text: str) -> list[str]:
    """Split prose into sentences: at ``.``, ``!`` or ``?`` (plus closing quotes/brackets) followed by a space
    and a capital letter or digit, except after common abbreviations (``Mr.``, ``e.g.``, ``U.S.``) and initials
    (``J. R. R. Tolkien``). A heuristic, like the pre-split corpora of the book's notebooks."""
    sentences, start = [], 0
    for match in _CANDIDATE_BOUNDARY.finditer(text):
        word = text[start : match.start()].rsplit(None, 1)[-1] if text[start : match.start()].strip() else ""
        word = word.lstrip("\"'“‘([").lower()
        if text[match.start()] == "." and (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _sentence_rows(texts, *, tokenizer, max_length, split_sentences, replace_digits):
    sentences = [s for text in texts for s in (split_into_sentences(text) if split_sentences else [text.strip()])]
    if replace_digits:
        sentences = [_DIGITS.sub("###", s) for s in sentences]
    encoded = tokenizer(sentences, truncation=True, max_length=max_length, verbose=False)["input_ids"]
    kept = [ids for ids in encoded if len(ids) >= 2]  # a row needs one input and one target token
    return {
        "input_ids": kept,
        "attention_mask": [[1] * len(ids) for ids in kept],
        "labels": [list(ids) for ids in kept],
    }


def sentence_dataset(
    ds: Dataset | IterableDataset | DatasetDict | IterableDatasetDict,
    tokenizer,
    max_length: int,
    *,
    text_column: str = "text",
    split_sentences: bool = True,
    replace_digits: bool = True,
    num_proc: int | None = None,
):
    """One tokenized sentence per row, as in the book's notebooks (ch. 3 RNN and ch. 4 decoder on news text).

    Each text is split into sentences (`split_into_sentences`), every run of digits becomes ``###`` (the
    notebooks' ``re.sub(r"\\d+", "###", s)``, which keeps numbers from flooding a small vocabulary), and the
    sentence is tokenized and truncated to ``max_length`` tokens; rows shorter than 2 tokens are dropped. Rows are
    left unpadded (``input_ids``, ``attention_mask``, ``labels`` = ``input_ids``); batch them with
    `pad_collator`, which pads and sets the labels of padding to -100.
    """
    if max_length < 2:
        raise ValueError(f"max_length={max_length} must be at least 2 (one input and one target token).")
    if isinstance(ds, (DatasetDict, IterableDatasetDict)):
        kwargs = dict(
            text_column=text_column, split_sentences=split_sentences, replace_digits=replace_digits, num_proc=num_proc
        )
        return type(ds)({name: sentence_dataset(split, tokenizer, max_length, **kwargs) for name, split in ds.items()})
    if not isinstance(ds, (Dataset, IterableDataset)):
        raise ValueError(f"sentence_dataset expects a datasets Dataset/IterableDataset, got {type(ds).__name__}.")
    _check_text_column(ds, text_column)
    map_kwargs: dict[str, Any] = dict(
        batched=True,
        input_columns=[text_column],
        remove_columns=_column_names(ds),
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "split_sentences": split_sentences,
            "replace_digits": replace_digits,
        },
    )
    if isinstance(ds, Dataset):
        map_kwargs.update(num_proc=num_proc, desc="Splitting into sentences")
    return ds.map(_sentence_rows, **map_kwargs)


def pad_collator(tokenizer, pad_to_multiple_of: int | None = None) -> Callable[[list[dict]], dict]:
    """A collator for unpadded rows (e.g. from `sentence_dataset`): pads ``input_ids`` with the pad token and
    ``attention_mask`` with 0 on ``tokenizer.padding_side``, and sets the padded ``labels`` to -100 so that padding
    is never a target (rows without ``labels`` get ``labels`` = ``input_ids``). Padding is located by length,
    not by token id, so it stays correct when the pad token equals EOS.
    """
    import torch

    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad_token; set one (e.g. tokenizer.pad_token = tokenizer.eos_token).")
    pad_id, left = tokenizer.pad_token_id, tokenizer.padding_side == "left"

    def collate(features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        width = max(len(f["input_ids"]) for f in features)
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(features), width), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), width), dtype=torch.long),
            "labels": torch.full((len(features), width), -100, dtype=torch.long),
        }
        for row, feature in enumerate(features):
            ids = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            labels = torch.as_tensor(feature.get("labels", feature["input_ids"]), dtype=torch.long)
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            batch["input_ids"][row, span] = ids
            batch["attention_mask"][row, span] = 1
            batch["labels"][row, span] = labels
        return batch

    return collate
