"""Labelled text datasets for classification (book §5.6): ``train`` / ``validation`` / ``test`` splits of ``text``
and ``label`` ids with one label map taken from the train split, and the prompt-completion form of the book's
label-generation classifier (notebook ``emotion_GPT2_as_text_generator``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .sources import load_source, validation_split_name


logger = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATE = "Predict the emotion of the text.\nText: {text}\nEmotion:"
_MAX_LISTED = 5


def _label_keys(split: Dataset, label_column: str, train_feature: Any) -> list:
    """The split's labels as the keys of the train label map: class names for ``ClassLabel``s, else raw values."""
    feature = split.features[label_column]
    values = list(split[label_column])
    if isinstance(feature, ClassLabel):
        return [None if value is None or value < 0 else feature.int2str(value) for value in values]  # -1: no label
    if isinstance(train_feature, ClassLabel):  # plain ids (or names) against a train split with class names
        return [
            train_feature.int2str(value) if isinstance(value, int) and 0 <= value < train_feature.num_classes else value
            for value in values
        ]
    return values


def _preview(values: Iterable) -> str:
    values = sorted(values, key=repr)
    more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
    return ", ".join(repr(value) for value in values[:_MAX_LISTED]) + more


def _carve(train: Dataset, fraction: float, seed: int, what: str, dataset_name: str) -> tuple[Dataset, Dataset]:
    """Split ``fraction`` of ``train`` off (stratified by label when every class has at least two rows)."""
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column="label")
    except ValueError:  # a class with a single row, or fewer held-out rows than classes
        try:
            parts = train.train_test_split(test_size=fraction, seed=seed)
        except ValueError as err:
            raise ValueError(
                f"'{dataset_name}' has {len(train)} train rows: too few to carve a {what} split of {fraction:.0%}."
            ) from err
    logger.warning(
        f"'{dataset_name}' has no {what} split: carved {len(parts['test'])} of {len(train)} train rows "
        f"({fraction:.0%}, seed {seed}) as {what}."
    )
    return parts["train"], parts["test"]


def _subsample(split: Dataset, limit: int | None, seed: int) -> Dataset:
    if limit is None or limit >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(limit))


def load_classification_dataset(
    dataset_name: str,
    dataset_config: str | None = None,
    *,
    text_column: str = "text",
    label_column: str = "label",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> tuple[DatasetDict, dict[int, str], dict[str, int]]:
    """Load a labelled text dataset as ``train`` / ``validation`` / ``test`` splits of ``text`` and ``label`` ids.

    The label map comes from the train split alone, as the book's notebooks build it (§5.6): the ``ClassLabel``
    names in their order when the column has them (``dair-ai/emotion``: sadness, joy, love, ...), else the
    distinct values sorted (strings alphabetically, numbers numerically). Every label of the validation and test
    splits must be one of them.

    Args:
        dataset_name: ``builtin:emotions`` (`make_text_classification_dataset`, offline), a Hub dataset id, a local
            directory (``train*`` / ``validation*`` / ``test*`` files) or one local ``.csv``, ``.jsonl``, ``.json``
            or ``.parquet`` file.
        dataset_config: the Hub configuration name (``"split"`` for ``dair-ai/emotion``).
        text_column: the column holding the text.
        label_column: the column holding the label: class names (strings), integers, or a ``ClassLabel``.
        validation_fraction: share of the train rows carved out as ``validation`` when the source has no
            validation / valid / val / dev split (seeded, stratified by label when possible).
        test_fraction: the same for a missing ``test`` split (carved first).
        seed: seed of the carving and of the subsampling.
        max_train_samples: keep at most this many train rows (a seeded random subset), after the label map is built.
        max_eval_samples: the same for validation and test.

    Returns:
        ``(dataset, id2label, label2id)``: a ``DatasetDict`` whose splits have exactly the columns ``text`` and
        ``label`` (a ``ClassLabel`` with the names in id order), ``{id: name}`` and ``{name: id}``.

    Raises:
        ValueError: the source cannot be loaded, has no train split, lacks a column, has rows without a label, has
            fewer than two classes, or has a validation/test label that the train split does not have.
    """
    if text_column == label_column:
        raise ValueError(f"text_column and label_column are both {text_column!r}: pass two different columns.")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ValueError(f"{name}={fraction} must be between 0 and 1 (exclusive).")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be below 1 to leave rows for training.")

    try:
        raw = load_source(dataset_name, dataset_config)
    except ValueError as err:  # the loader's advice is about any dataset: give the classification one
        reason = str(err).split("; pass ", 1)[0]
        raise ValueError(
            f"{reason}; pass 'builtin:emotions' (built in, offline), a local .csv/.jsonl/.json/.parquet file or a "
            "directory of train*/validation*/test* files with a text and a label column, or a Hub dataset id that is "
            "cached or reachable."
        ) from None
    if "train" not in raw:
        raise ValueError(f"'{dataset_name}' has no train split (splits: {list(raw)}): the label map is built from it.")
    splits = {"train": raw["train"]}
    validation = validation_split_name(raw)
    if validation is not None:
        splits["validation"] = raw[validation]
    if "test" in raw:
        splits["test"] = raw["test"]
    for split_name, split in splits.items():
        missing = [column for column in (text_column, label_column) if column not in split.column_names]
        if missing:
            raise ValueError(
                f"the {split_name} split of '{dataset_name}' has no column {missing[0]!r} (columns: "
                f"{split.column_names}): pass --text_column / --label_column with the right names."
            )

    train_feature = splits["train"].features[label_column]
    if isinstance(train_feature, ClassLabel):
        names = list(train_feature.names)
        key_to_id = {name: index for index, name in enumerate(names)}
    else:
        values = sorted(value for value in splits["train"].unique(label_column) if value is not None)
        names = [str(value) for value in values]
        if len(set(names)) != len(names):
            raise ValueError(f"labels {values} of '{dataset_name}' collide once written as names: use distinct labels.")
        key_to_id = {value: index for index, value in enumerate(values)}
    if len(names) < 2:
        raise ValueError(
            f"the train split of '{dataset_name}' has {len(names)} label(s) {names}: a classifier needs two or more."
        )
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})

    for split_name, split in list(splits.items()):
        keys = _label_keys(split, label_column, train_feature)
        unlabelled = sum(key is None for key in keys)
        if unlabelled:
            raise ValueError(
                f"the {split_name} split of '{dataset_name}' has {unlabelled} rows without a label (missing or -1): "
                "drop them, or use a dataset whose evaluation splits are labelled."
            )
        unknown = set(keys) - set(key_to_id)
        if unknown:
            raise ValueError(
                f"the {split_name} split of '{dataset_name}' has label(s) {_preview(unknown)} that the train split "
                f"does not have ({_preview(key_to_id)}): fix or drop those rows, or merge them into the train split."
            )
        texts = list(split[text_column])
        keep = [i for i, text in enumerate(texts) if isinstance(text, str) and text.strip()]
        if len(keep) < len(texts):
            logger.warning(f"dropped {len(texts) - len(keep)} rows with empty text from the {split_name} split.")
        splits[split_name] = Dataset.from_dict(
            {"text": [texts[i] for i in keep], "label": [key_to_id[keys[i]] for i in keep]}, features=features
        )

    train = splits["train"]
    if "test" not in splits:
        train, splits["test"] = _carve(train, test_fraction, seed, "test", dataset_name)
    if "validation" not in splits:
        share = validation_fraction if "test" in raw else validation_fraction / (1 - test_fraction)
        train, splits["validation"] = _carve(train, share, seed, "validation", dataset_name)
    dataset = DatasetDict({
        "train": _subsample(train, max_train_samples, seed),
        "validation": _subsample(splits["validation"], max_eval_samples, seed),
        "test": _subsample(splits["test"], max_eval_samples, seed),
    })
    id2label = dict(enumerate(names))
    return dataset, id2label, {name: index for index, name in id2label.items()}


def to_prompt_completion(
    dataset: Dataset | DatasetDict,
    id2label: Mapping[int, str],
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
) -> Dataset | DatasetDict:
    """Rows of ``text`` / ``label`` id as TRL prompt-completion rows: ``prompt`` is the template filled with the
    text, ``completion`` is ``" " + label name`` (the space keeps the label a word of its own after ``Emotion:``).

    ``SFTTrainer`` trains on the completion tokens only (``completion_only_loss``) and appends EOS to them, so the
    fine-tuned model writes the label and stops.
    """
    if "{text}" not in prompt_template:
        raise ValueError(f"prompt_template {prompt_template!r} has no '{{text}}' placeholder for the text.")
    names = {int(index): name for index, name in id2label.items()}

    def convert(batch):
        unknown = sorted({label for label in batch["label"] if label not in names})
        if unknown:
            raise ValueError(f"label id(s) {unknown} are not in id2label {names}: pass the map of this dataset.")
        return {
            "prompt": [prompt_template.replace("{text}", text) for text in batch["text"]],
            "completion": [" " + names[label] for label in batch["label"]],
        }

    columns = dataset.column_names
    columns = next(iter(columns.values())) if isinstance(columns, dict) else columns
    missing = {"text", "label"} - set(columns)
    if missing:
        raise ValueError(f"dataset has no {sorted(missing)} column(s): load it with load_classification_dataset().")
    return dataset.map(convert, batched=True, remove_columns=columns)


def tokenize_texts(dataset: DatasetDict, tokenizer, max_length: int | None) -> DatasetDict:
    """The head route's inputs: ``text`` tokenized (truncated to `max_length`), ``label`` kept."""
    return dataset.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
                       batched=True, remove_columns=["text"])


def describe_labels(label_names: list[str], prompt_template: str | None = None, adapter_head: bool = False) -> str:
    """The model card's "Labels" section: the label ids, and how to use them (the prompt a label-generation
    classifier completes; how to load an adapter whose base has no classification head)."""
    text = f"Label ids: {', '.join(f'{i} = `{name}`' for i, name in enumerate(label_names))}."
    if prompt_template is not None:
        text += f" The model writes the label name after this prompt:\n\n```\n{prompt_template}\n```"
    elif adapter_head:
        text += (f" The adapter's base has no classification head: load it with `num_labels={len(label_names)}` "
                 "(and these `id2label` / `label2id`) before `PeftModel.from_pretrained`.")
    return text
