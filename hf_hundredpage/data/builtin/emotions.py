"""``builtin:emotions``: a small synthetic emotion dataset for offline classification demos and tests (book §5.6)."""

from __future__ import annotations

import random

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value


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
