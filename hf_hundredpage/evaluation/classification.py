"""Scoring classifiers (book §5.6) against the baselines they must beat: the bag-of-words logistic regression of
§2.1 (notebook ``emotion_classifier_LR``) and the majority class, all on the same splits; and the greedy label
generation of the book's text-generation classifier."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ..generation import greedy_complete


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


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""


def generate_labels(
    model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 8, batch_size: int = 16
) -> list[str]:
    """Greedy completions of ``prompts``, cut to their first line and stripped: the predicted label names.

    Prompts are tokenized as `SFTTrainer` tokenizes them for training, so the model sees the same tokens at both
    times, and completed by `greedy_complete` until EOS (batched by length, no padding).
    """
    ids = [tokenizer(prompt).input_ids for prompt in prompts]
    stop = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    completions = greedy_complete(model, ids, max_new_tokens=max_new_tokens, stop_ids=stop,
                                  pad_token_id=tokenizer.pad_token_id, batch_size=batch_size)
    return [_first_line(tokenizer.decode(tokens, skip_special_tokens=True)) for tokens, _ in completions]


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


def baseline_report(
    scores: dict[str, float], dataset, *, method: str, model_type: str, bow: BagOfWordsBaseline
) -> tuple[dict[str, float], list[tuple[str, str]], str]:
    """The classifier's test scores beside its baselines, fitted on the same train split and scored on the same test
    split: the bag-of-words logistic regression (§2.1) and the majority class.

    Returns:
        ``(metrics, rows, markdown)``: the ``eval_*`` / ``validation_*`` scores with ``bow_eval_*`` and
        ``majority_eval_*`` added; (name, metric prefix) rows for a results table; the card's markdown table.
    """
    test_labels = list(dataset["test"]["label"])
    bow.fit(list(dataset["train"]["text"]), list(dataset["train"]["label"]))
    metrics = {
        **{k: v for k, v in scores.items()
           if k.startswith(("eval_", "validation_")) and not k.endswith(("_runtime", "per_second"))},
        **bow.evaluate(list(dataset["test"]["text"]), test_labels, prefix="bow_eval_"),
        **majority_class_metrics(list(dataset["train"]["label"]), test_labels, prefix="majority_eval_"),
    }
    rows = [(f"{model_type} ({method})", "eval_"), ("bag-of-words LR", "bow_eval_"), ("majority class", "majority_eval_")]
    markdown = "\n".join(["Scores on the test split; the baselines are fitted on the same train split.", "",
                          "| model | accuracy | macro F1 |", "|---|---|---|"]
                         + [f"| {name} | {metrics[p + 'accuracy']:.4f} | {metrics[p + 'macro_f1']:.4f} |" for name, p in rows])
    return metrics, rows, markdown
