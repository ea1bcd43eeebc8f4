"""Datasets for the book's language models: the embedded corpus, loading, packing and sentence mode.

See `hf_hundredpage.data.pipeline` for the details; everything public is re-exported here.
"""

from .pipeline import (
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


__all__ = [
    "EMBEDDED_CORPUS",
    "count_utf8_bytes",
    "default_tokenizer_path",
    "embedded_corpus_files",
    "load_text_dataset",
    "pack_dataset",
    "pad_collator",
    "sentence_dataset",
    "split_into_sentences",
]
