"""A built-in instruction dataset (book §5.3) for offline demos and tests, and loading of instruction datasets.

`make_instruction_dataset` generates, deterministically from a seed, short instructions with exactly one right
answer, so that a tiny model learns them in seconds and greedy decoding can be scored by exact match:

==============  ==============================================  ==================
family          instruction                                     answer
==============  ==============================================  ==================
``copy``        ``Repeat after me: red sun king``               ``red sun king``
``uppercase``   ``Write in capitals: red sun``                  ``RED SUN``
``reverse``     ``Reverse the words: red sun king``             ``king sun red``
``sort``        ``Sort the numbers: 5 2 9``                     ``2 5 9``
``add``         ``What is 3 plus 4?``                           ``7``
``next_day``    ``What comes after Tuesday?``                   ``Wednesday``
``next_month``  ``What comes after March?``                     ``April``
==============  ==============================================  ==================

The list families (copy, uppercase, reverse, sort) draw fresh lists: no validation or test instruction appears in
the training split, so their scores measure generalisation. The closed families (add, next_day, next_month) have
at most 100 distinct questions, which repeat across splits: their scores measure memorisation.

Every row also has a ``task`` column (the family). Two formats, TRL's dataset types:

``format="messages"`` (conversational language modelling, used with the tokenizer's chat template)::

    {"messages": [{"role": "user", "content": "Reverse the words: red sun king"},
                  {"role": "assistant", "content": "king sun red"}], "task": "reverse"}

``format="prompt-completion"`` (plain text; TRL appends the EOS token to the completion)::

    {"prompt": "Reverse the words: red sun king\\nAnswer:", "completion": " king sun red", "task": "reverse"}

`save_instruction_dataset` writes ``train.jsonl`` / ``validation.jsonl`` / ``test.jsonl`` in these formats, so a
folder (or any such file of your own) can be passed as ``dataset_name`` (`hf_hundredpage.data.instructions`).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from datasets import Dataset, DatasetDict


BUILTIN_INSTRUCTIONS = "builtin:instructions"
FORMATS = ("messages", "prompt-completion")
WORDS = (
    "red", "green", "black", "white", "dog", "fish", "sun", "star", "tree", "rock", "sea", "sky",
    "king", "city", "river", "road", "book", "gold",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)

_SPLIT_FILES = {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}


def _words(rng: random.Random) -> list[str]:
    return rng.sample(WORDS, rng.randint(2, 3))


def _copy(rng: random.Random) -> tuple[str, str]:
    words = _words(rng)
    return f"Repeat after me: {' '.join(words)}", " ".join(words)


def _uppercase(rng: random.Random) -> tuple[str, str]:
    words = _words(rng)
    return f"Write in capitals: {' '.join(words)}", " ".join(words).upper()


def _reverse(rng: random.Random) -> tuple[str, str]:
    words = _words(rng)
    return f"Reverse the words: {' '.join(words)}", " ".join(reversed(words))


def _sort(rng: random.Random) -> tuple[str, str]:
    numbers = [rng.randint(0, 9) for _ in range(rng.randint(3, 4))]
    return f"Sort the numbers: {' '.join(map(str, numbers))}", " ".join(map(str, sorted(numbers)))


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"What is {a} plus {b}?", str(a + b)


def _next_in(sequence: Sequence[str]) -> Callable[[random.Random], tuple[str, str]]:
    def make(rng: random.Random) -> tuple[str, str]:
        i = rng.randrange(len(sequence))
        return f"What comes after {sequence[i]}?", sequence[(i + 1) % len(sequence)]

    return make


# family -> (generator, open: True when the family has far more questions than a dataset draws)
TASK_FAMILIES: dict[str, tuple[Callable[[random.Random], tuple[str, str]], bool]] = {
    "copy": (_copy, True),
    "uppercase": (_uppercase, True),
    "reverse": (_reverse, True),
    "sort": (_sort, True),
    "add": (_add, False),
    "next_day": (_next_in(DAYS), False),
    "next_month": (_next_in(MONTHS), False),
}


def _as_row(question: str, answer: str, task: str, format: str) -> dict:
    if format == "messages":
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], "task": task}
    return {"prompt": f"{question}\nAnswer:", "completion": f" {answer}", "task": task}


def make_instruction_dataset(
    n: int = 1200,
    seed: int = 0,
    format: str = "messages",
    *,
    tasks: Sequence[str] | None = None,
    validation_size: float = 0.1,
    test_size: float = 0.1,
) -> DatasetDict:
    """Generate the built-in instruction dataset (see the module docstring for the tasks and formats).

    Args:
        n: examples over the three splits.
        seed: the dataset is a pure function of its arguments.
        format: ``"messages"`` or ``"prompt-completion"``.
        tasks: the families to draw from (default: all of `TASK_FAMILIES`), in equal shares in every split.
        validation_size, test_size: shares of `n` in the validation and test splits (at least one example each).

    Returns:
        A `DatasetDict` with ``train``, ``validation`` and ``test`` splits.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    tasks = list(tasks) if tasks else list(TASK_FAMILIES)
    unknown = [t for t in tasks if t not in TASK_FAMILIES]
    if unknown:
        raise ValueError(f"unknown instruction tasks {unknown}: choose among {list(TASK_FAMILIES)}")
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(f"validation_size={validation_size} and test_size={test_size} must be in (0, 1) and sum below 1")
    n_test, n_validation = max(1, round(n * test_size)), max(1, round(n * validation_size))
    n_train = n - n_test - n_validation
    if n_train < 1:
        raise ValueError(f"n={n} is too small for three splits: pass n >= 3")

    rng = random.Random(seed)
    held_out: set[str] = set()  # instructions of the open families kept out of train
    splits = {}
    for split, count in (("test", n_test), ("validation", n_validation), ("train", n_train)):
        rows = []
        for i in range(count):
            task = tasks[i % len(tasks)]
            generate, is_open = TASK_FAMILIES[task]
            for _ in range(1000):
                question, answer = generate(rng)
                if not is_open:
                    break
                if split == "train" and question not in held_out:
                    break
                if split != "train" and question not in held_out:
                    held_out.add(question)
                    break
            else:  # pragma: no cover - the open families have thousands of questions
                raise ValueError(f"could not draw enough distinct {task!r} instructions: lower n")
            rows.append(_as_row(question, answer, task, format))
        rng.shuffle(rows)
        splits[split] = Dataset.from_list(rows)
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})


def save_instruction_dataset(output_dir: str | os.PathLike, **kwargs) -> dict[str, Path]:
    """Write `make_instruction_dataset(**kwargs)` as ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` in
    `output_dir` (one JSON object per line, the formats of the module docstring); return the split -> file map."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = make_instruction_dataset(**kwargs)
    paths = {}
    for split, name in _SPLIT_FILES.items():
        paths[split] = output_dir / name
        with open(paths[split], "w", encoding="utf-8") as f:
            for row in dataset[split]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return paths
