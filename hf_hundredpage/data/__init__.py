"""Datasets for the book's language models.

* `sources`: the one loader (embedded corpus, ``builtin:`` datasets, local file or folder, URL, Hub id);
* `text`, `instructions`, `classification`, `preferences`: the splits and columns each kind of recipe trains on;
* `packing`, `collators`: token blocks, the notebooks' sentence mode, padding;
* `builtin/`: datasets generated offline; `corpus/`: the embedded Wikipedia corpus and its tokenizer.
"""

from .collators import pad_collator
from .packing import lm_dataset, pack_dataset, sentence_dataset, split_into_sentences
from .sources import EMBEDDED_CORPUS, default_tokenizer_path, embedded_corpus_files, load_source
from .text import count_utf8_bytes, load_text_dataset


__all__ = [
    "EMBEDDED_CORPUS",
    "count_utf8_bytes",
    "default_tokenizer_path",
    "embedded_corpus_files",
    "load_source",
    "lm_dataset",
    "load_text_dataset",
    "pack_dataset",
    "pad_collator",
    "sentence_dataset",
    "split_into_sentences",
]
