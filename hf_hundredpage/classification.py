"""Text classification with language models (book §5.6) and the bag-of-words baseline they must beat (book §2.1).

A decoder language model becomes a classifier in one of two ways, both in the book's chapter 5 notebooks:

* **a classification head** (notebook ``emotion_GPT2_as_classifier``): the hidden state of the last real token goes
  through a linear ``score`` layer with one output per class (`AutoModelForSequenceClassification`);
* **text generation** (notebook ``emotion_GPT2_as_text_generator``): the model is fine-tuned on
  prompt / completion pairs whose completion is the label name, and a prediction is what greedy decoding writes
  (`to_prompt_completion`, `exact_match_accuracy`).

Either model is only worth its cost if it beats a logistic regression on word counts (§2.1, notebook
``emotion_classifier_LR``) and the majority class; `BagOfWordsBaseline` and `majority_class_metrics` give those
numbers on the same splits. `load_classification_dataset` reads the data (Hub id, local folder or file, or the
offline synthetic ``builtin:emotions`` of `make_text_classification_dataset`) into ``text`` / ``label`` columns
with one label map taken from the train split.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .data.pipeline import _VALIDATION_ALIASES, _load_raw


logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
DEFAULT_PROMPT_TEMPLATE = "Predict the emotion of the text.\nText: {text}\nEmotion:"
_MAX_LISTED = 5

# --------------------------------------------------------------------------------------------------------------
# A synthetic emotion dataset (offline tests and demos)
# --------------------------------------------------------------------------------------------------------------

# Each class is signalled by one of its keywords; everything else in a sentence is shared by all classes.
EMOTION_KEYWORDS: dict[str, tuple[str, ...]] = {
    "anger": ("furious", "annoyed", "irritated", "outraged", "livid", "angry", "resentful"),
    "fear": ("terrified", "scared", "anxious", "nervous", "frightened", "afraid", "worried"),
    "joy": ("delighted", "thrilled", "happy", "cheerful", "glad", "overjoyed", "grateful"),
    "sadness": ("heartbroken", "gloomy", "miserable", "sad", "lonely", "hopeless", "devastated"),
}
# Imbalanced like the book's emotions data, so the majority class is a baseline worth reporting.
_EMOTION_WEIGHTS = {"anger": 0.2, "fear": 0.15, "joy": 0.35, "sadness": 0.3}
_TEMPLATES = (  # like the book's data ("i feel ..."), the keyword is mostly near the end, sometimes far from it
    "i feel {keyword}",
    "i feel so {keyword} about {topic}",
    "{subject} was {keyword}",
    "{topic} left me feeling {keyword}",
    "after {event} i was {keyword}",
    "honestly i am {keyword} today",
    "i have been {keyword} since {event}",
    "{subject} looked {keyword} when we talked about {topic}",
)
_SUBJECTS = ("my sister", "my neighbour", "the teacher", "our manager", "my best friend", "the old man", "my son")
_TOPICS = ("the new job", "the weather", "my exam results", "the trip", "the news", "the meeting", "dinner",
           "the game", "the rent", "our garden")
_EVENTS = ("the phone call", "the storm", "the party", "the interview", "the long drive", "the match",
           "the letter", "the holidays", "the move")


def make_text_classification_dataset(
    n: int = 1000,
    seed: int = 0,
    *,
    noise: float = 0.05,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> DatasetDict:
    """A small emotion-like dataset whose label is set by a keyword, with label noise (``builtin:emotions``).

    Sentences are lower-case templates (like the book's emotions data) filled with a subject, a topic or an event
    and exactly one keyword of the class (``"i feel furious about the rent"`` -> ``anger``). Classes are imbalanced
    (joy 35 %, sadness 30 %, anger 20 %, fear 15 %), so always answering ``joy`` scores about 0.35, and a share
    ``noise`` of the rows gets a random other label, so no classifier can exceed about ``1 - noise``.

    Args:
        n: total number of rows, over all splits.
        seed: seed of the generator; the same seed gives the same dataset.
        noise: probability that a row's label is replaced by a different, random one.
        validation_fraction: share of the rows in the ``validation`` split.
        test_fraction: share of the rows in the ``test`` split.

    Returns:
        A ``DatasetDict`` with ``train`` / ``validation`` / ``test`` splits of ``text`` (string) and ``label``
        (``ClassLabel`` with the names ``anger``, ``fear``, ``joy``, ``sadness``).
    """
    if not 0 <= noise < 1:
        raise ValueError(f"noise={noise} must be in [0, 1).")
    if validation_fraction <= 0 or test_fraction <= 0 or validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction and test_fraction must be positive and sum to less than 1.")
    n_validation, n_test = round(n * validation_fraction), round(n * test_fraction)
    if min(n_validation, n_test, n - n_validation - n_test) < 1:
        raise ValueError(f"n={n} is too small to fill train, validation and test: pass n >= 30.")

    rng = random.Random(seed)
    names = sorted(EMOTION_KEYWORDS)
    texts, labels = [], []
    for _ in range(n):
        emotion = rng.choices(names, weights=[_EMOTION_WEIGHTS[name] for name in names])[0]
        template = rng.choice(_TEMPLATES)
        texts.append(template.format(
            keyword=rng.choice(EMOTION_KEYWORDS[emotion]), subject=rng.choice(_SUBJECTS),
            topic=rng.choice(_TOPICS), event=rng.choice(_EVENTS),
        ))
        if rng.random() < noise:
            emotion = rng.choice([name for name in names if name != emotion])
        labels.append(names.index(emotion))

    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    bounds = {"train": (0, n - n_validation - n_test), "validation": (n - n_validation - n_test, n - n_test),
              "test": (n - n_test, n)}
    return DatasetDict({
        split: Dataset.from_dict({"text": texts[start:end], "label": labels[start:end]}, features=features)
        for split, (start, end) in bounds.items()
    })


# Built-in datasets are fixed (one seed), like a Hub dataset: the recipe's seed changes training, not the data.
BUILTIN_DATASETS: dict[str, Callable[[], DatasetDict]] = {
    "emotions": make_text_classification_dataset,
}


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def _load_source(dataset_name: str, dataset_config: str | None) -> DatasetDict:
    if dataset_name.startswith(BUILTIN_PREFIX):
        name = dataset_name[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_DATASETS:
            raise ValueError(
                f"unknown built-in dataset {dataset_name!r}: use one of "
                f"{[BUILTIN_PREFIX + key for key in BUILTIN_DATASETS]}."
            )
        return BUILTIN_DATASETS[name]()
    try:
        raw = _load_raw(dataset_name, dataset_config, streaming=False)
    except ValueError as err:  # the loader's advice is about language-model corpora: give the classification one
        reason = str(err).split("; pass ", 1)[0]
        raise ValueError(
            f"{reason}; pass '{BUILTIN_PREFIX}emotions' (built in, offline), a local .csv/.jsonl/.json/.parquet file or "
            "a directory of train*/validation*/test* files with a text and a label column, or a Hub dataset id that "
            "is cached or reachable."
        ) from err
    return DatasetDict({"train": raw}) if isinstance(raw, Dataset) else raw


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

    raw = _load_source(dataset_name, dataset_config)
    if "train" not in raw:
        raise ValueError(f"'{dataset_name}' has no train split (splits: {list(raw)}): the label map is built from it.")
    splits = {"train": raw["train"]}
    validation = next((name for name in _VALIDATION_ALIASES if name in raw), None)
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


# --------------------------------------------------------------------------------------------------------------
# Metrics and baselines (§2.1)
# --------------------------------------------------------------------------------------------------------------


def classification_metrics(
    y_true: Sequence, y_pred: Sequence, prefix: str = "eval_", labels: Sequence | None = None
) -> dict[str, float]:
    """Accuracy and macro-averaged F1 (scikit-learn) as ``{prefix}accuracy`` and ``{prefix}macro_f1``.

    Macro F1 averages the per-class F1 with equal weights, so a model that ignores a rare class is penalised even
    when its accuracy is high. ``labels`` restricts that average to these classes (predictions outside them, such
    as a generated answer that is no label at all, then only count as errors).
    """
    from sklearn.metrics import accuracy_score, f1_score

    y_true, y_pred = list(y_true), list(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}: pass one prediction per label.")
    if not y_true:
        raise ValueError("no labels to score: pass a non-empty evaluation split.")
    return {
        f"{prefix}accuracy": float(accuracy_score(y_true, y_pred)),
        f"{prefix}macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }


def compute_classification_metrics(eval_pred) -> dict[str, float]:
    """``compute_metrics`` for `transformers.Trainer`: accuracy and macro F1 of the arg-max of the logits."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    return classification_metrics(labels, np.argmax(logits, axis=-1), prefix="")


def majority_class_metrics(train_labels: Sequence, eval_labels: Sequence, prefix: str = "eval_") -> dict[str, float]:
    """Metrics of always predicting the most frequent train label (ties go to the smallest label)."""
    counts = Counter(train_labels)
    if not counts:
        raise ValueError("no train labels: the majority class needs a non-empty train split.")
    top = max(counts.values())
    majority = min(label for label, count in counts.items() if count == top)
    return classification_metrics(eval_labels, [majority] * len(eval_labels), prefix=prefix)


class BagOfWordsBaseline:
    """Logistic regression on bag-of-words features (book §2.1, notebook ``emotion_classifier_LR``).

    The defaults are the notebook's first model: the 10,000 most frequent words as binary indicators
    (``CountVectorizer(max_features=10_000, binary=True)``) and ``LogisticRegression(max_iter=1000)``.
    ``vectorizer="tfidf"`` weighs words by TF-IDF instead; ``ngram_range=(1, 2)`` adds bigrams (the notebook's
    "better hyperparameters").

    ```python
    >>> baseline = BagOfWordsBaseline().fit(train["text"], train["label"])
    >>> baseline.evaluate(test["text"], test["label"])
    {'eval_accuracy': 0.93, 'eval_macro_f1': 0.92}
    ```
    """

    def __init__(
        self,
        *,
        vectorizer: str = "count",
        max_features: int | None = 10_000,
        ngram_range: tuple[int, int] = (1, 1),
        binary: bool = True,
        C: float = 1.0,
        max_iter: int = 1000,
        random_state: int = 42,
    ):
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        vectorizers = {"count": CountVectorizer, "tfidf": TfidfVectorizer}
        if vectorizer not in vectorizers:
            raise ValueError(f"vectorizer={vectorizer!r} is not supported: use 'count' or 'tfidf'.")
        self.pipeline = make_pipeline(
            vectorizers[vectorizer](max_features=max_features, ngram_range=tuple(ngram_range), binary=binary),
            LogisticRegression(C=C, max_iter=max_iter, random_state=random_state),
        )

    def fit(self, texts: Iterable[str], labels: Iterable) -> BagOfWordsBaseline:
        self.pipeline.fit(list(texts), list(labels))
        return self

    def predict(self, texts: Iterable[str]) -> np.ndarray:
        return self.pipeline.predict(list(texts))

    def evaluate(self, texts: Iterable[str], labels: Sequence, prefix: str = "eval_") -> dict[str, float]:
        return classification_metrics(labels, self.predict(texts), prefix=prefix)


# --------------------------------------------------------------------------------------------------------------
# Classification as text generation (notebook emotion_GPT2_as_text_generator)
# --------------------------------------------------------------------------------------------------------------


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


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""


@torch.no_grad()
def generate_labels(
    model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 8, batch_size: int = 16
) -> list[str]:
    """Greedy completions of ``prompts``, cut to their first line and stripped: the predicted label names.

    Prompts are batched with left padding (the pad token is EOS when the tokenizer has none, as for GPT-2) and
    tokenized as `SFTTrainer` tokenizes them for training, so the model sees the same tokens at both times.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1.")
    was_training = model.training
    model.eval()
    padding_side, pad_token = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    predictions: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True).to(model.device)
            output = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            predictions += [_first_line(text) for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side, tokenizer.pad_token = padding_side, pad_token
        model.train(was_training)
    return predictions


def exact_match_accuracy(
    model, tokenizer, prompts: Sequence[str], labels: Sequence[str], *, max_new_tokens: int = 8, batch_size: int = 16
) -> float:
    """Share of prompts whose greedy completion (first line, stripped) is exactly the label name (stripped).

    This is the accuracy of the book's text-generation classifier (§5.6): an answer that is not a label name, or
    that adds words to it, counts as wrong.
    """
    if len(prompts) != len(labels):
        raise ValueError(f"{len(prompts)} prompts but {len(labels)} labels: pass one label per prompt.")
    if not prompts:
        raise ValueError("no prompts to score: pass a non-empty evaluation split.")
    predictions = generate_labels(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return sum(prediction == label.strip() for prediction, label in zip(predictions, labels)) / len(labels)


__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_PROMPT_TEMPLATE",
    "EMOTION_KEYWORDS",
    "BagOfWordsBaseline",
    "classification_metrics",
    "compute_classification_metrics",
    "exact_match_accuracy",
    "generate_labels",
    "load_classification_dataset",
    "majority_class_metrics",
    "make_text_classification_dataset",
    "to_prompt_completion",
]
