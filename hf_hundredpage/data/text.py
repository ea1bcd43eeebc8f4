"""Text corpora for pretraining and evaluation: ``train`` / ``validation`` splits of one text column (book §3.7),
and the byte count that bits-per-byte divides by (§2.6)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from .sources import EMBEDDED_CORPUS, check_columns, load_source, validation_split_name


logger = logging.getLogger(__name__)


def count_utf8_bytes(texts: str | Iterable[str]) -> int:
    """Number of UTF-8 bytes in ``texts`` (a string or an iterable of strings), separators not counted.

    Bits-per-byte (§2.6) divides the summed negative log-likelihood in bits by this number, which makes models
    with different tokenizers comparable.
    """
    if isinstance(texts, str):
        return len(texts.encode("utf-8"))
    return sum(len(text.encode("utf-8")) for text in texts)


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
    raw = load_source(dataset_name, dataset_config, streaming=streaming)
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
        alias = validation_split_name(raw)
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
        check_columns(split, [text_column], name, "pass --text_column / text_column= with one of them")
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
    if not streaming and len(splits["train"]) == 0:
        raise ValueError(f"'{dataset_name}' has no text in its train split: pass a dataset with at least one document")
    ordered = {name: splits[name] for name in ("train", "validation", "test") if name in splits}
    return (IterableDatasetDict if streaming else DatasetDict)(ordered)


def _has_text(texts: list[str | None]) -> list[bool]:
    return [text is not None and not text.isspace() and text != "" for text in texts]


