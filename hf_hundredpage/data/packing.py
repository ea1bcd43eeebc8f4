"""Turning text into what a causal LM trains on (book §3.7, §3.8): packed blocks of exactly ``block_size`` tokens
(the pretraining layout of ch. 4) or the notebooks' one sentence per row."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value

from .sources import check_columns, column_names


_BLOCK_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "labels": List(Value("int32")),
        "attention_mask": List(Value("int8")),
    }
)


def _check_text_column(ds, text_column: str, split: str = "train") -> None:
    check_columns(ds, [text_column], split, "pass --text_column / text_column= with one of them")


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


def lm_dataset(raw, tokenizer, block_size: int, *, packing: bool = True, text_column: str = "text"):
    """The pretraining data and its collator: packed blocks (`pack_dataset`, `default_data_collator`) or the
    notebooks' one sentence per row (`sentence_dataset`, `pad_collator`)."""
    if packing:
        from transformers import default_data_collator

        return pack_dataset(raw, tokenizer, block_size, text_column=text_column), default_data_collator
    from .collators import pad_collator

    return sentence_dataset(raw, tokenizer, block_size, text_column=text_column), pad_collator(tokenizer)


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
        remove_columns=column_names(ds),
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
