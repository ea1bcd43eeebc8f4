"""``builtin:arithmetic``: multi-step integer word problems with a checkable answer, for reasoning (book §6.5).

Every problem starts from a count and applies a few operations in order; the gold answer is the final count::

    Mia has 12 coins. She finds 5 more. She gives away 3. How many coins does Mia have now?
    <reasoning>
    12 + 5 = 17
    17 - 3 = 14
    </reasoning>
    <answer>
    14
    </answer>

For program-aided reasoning (PAL) the same problem's target is a short Python program that computes the answer one
operation per line and prints it, in a fenced block (what `hf_hundredpage.reasoning.strategies.pal` primes and runs in
the sandbox)::

    ```python
    x = 12
    x = x + 5
    x = x - 3
    print(x)
    ```

The chain of thought is the book's format (its GRPO.py asks for ``<reasoning>…</reasoning><answer>…</answer>``): one
line per operation, then the answer. Counts never go negative; ``multiply`` scales by 2 or 3 ("doubles",
"triples"). Difficulty is the number of operations (`min_steps`..`max_steps`) and the size of the operands
(`max_operand`).

Splits are disjoint by construction: a problem's split is a hash of its structure (start value and operations), so
the same arithmetic is never in two splits, whatever the seed, the wording or the configuration. SFT data made with
one seed and GRPO data made with another never share a test problem with the other's train split.

Configurations (``dataset_config``), TRL's dataset types:

========================  ==========================================================================================
``grpo`` (default)        ``{"prompt": str, "answer": int}``: standard prompts for GRPO
``grpo-conversational``   ``prompt`` as turns (the book's system prompt asking for the format, then the problem)
``sft``                   ``{"prompt", "completion"}`` strings: the chain of thought as the completion (SFT warm start)
``sft-messages``          ``{"messages": [system, user, assistant]}`` (conversational language modelling)
``pal``                   ``{"prompt", "completion"}`` strings: the same prompts as ``sft``, the PAL program as the
                          completion (SFT a model to write programs)
``pal-messages``          ``{"messages": [system, user, assistant]}``: the system prompt is the ``pal`` strategy's
                          (`PAL_SYSTEM_PROMPT`), the assistant turn the PAL program
========================  ==========================================================================================

Every row also has ``answer`` (int), ``start`` (int) and ``steps`` (the operations in order, ``["+ 5", "- 3"]``), so
the gold answer can be recomputed (`apply_steps`). The standard prompts of ``grpo`` and ``sft`` are the same text,
so a model finetuned on ``sft`` continues a ``grpo`` prompt with its chain of thought, and one finetuned on ``pal``
continues it with a program (the ``pal`` strategy with ``chat=False`` prompts ``problem\n```python\n``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from datasets import Dataset, DatasetDict


BUILTIN_ARITHMETIC = "builtin:arithmetic"
CONFIGS = ("grpo", "grpo-conversational", "sft", "sft-messages", "pal", "pal-messages")
OPERATIONS = ("add", "subtract", "multiply")
SYSTEM_PROMPT = ("Respond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>")
# The `pal` strategy's system prompt (hf_hundredpage.reasoning.strategies.PAL_PROMPT; a test keeps them equal).
PAL_SYSTEM_PROMPT = ("Write a Python program that computes the answer to the question and prints it. Reply with the "
                     "program only, in a ```python block.")

NAMES = ("Mia", "Tom", "Ana", "Leo", "Sam", "Eva", "Max", "Zoe", "Ben", "Ida")
ITEMS = ("apples", "coins", "books", "marbles", "stickers", "shells", "cards", "stamps")
_ADD = ("{name} finds {n} more.", "{name} buys {n} more.", "{name} gets {n} more.")
_SUBTRACT = ("{name} gives away {n}.", "{name} loses {n}.", "{name} sells {n}.")
_MULTIPLY = {2: "The number of {item} doubles.", 3: "The number of {item} triples."}
_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*"}


def apply_steps(start: int, steps: Sequence[str]) -> int:
    """The final count: `steps` (``"+ 5"``, ``"- 3"``, ``"* 2"``) applied in order to `start`."""
    value = start
    for step in steps:
        op, operand = step.split()
        value = {"+": value + int(operand), "-": value - int(operand), "*": value * int(operand)}[op]
    return value


def reasoning_lines(start: int, steps: Sequence[str]) -> list[str]:
    """One ``a op b = c`` line per step."""
    lines, value = [], start
    for step in steps:
        after = apply_steps(value, [step])
        lines.append(f"{value} {step} = {after}")
        value = after
    return lines


def format_solution(start: int, steps: Sequence[str]) -> str:
    """The chain of thought in the book's format, ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\nN\\n</answer>``."""
    body = "\n".join(reasoning_lines(start, steps))
    return f"<reasoning>\n{body}\n</reasoning>\n<answer>\n{apply_steps(start, steps)}\n</answer>"


def format_program(start: int, steps: Sequence[str]) -> str:
    """The PAL target: a fenced Python program, one assignment per step, that prints the answer::

        ```python
        x = 12
        x = x + 5
        print(x)
        ```
    """
    lines = [f"x = {start}", *(f"x = x {step}" for step in steps), "print(x)"]
    return "```python\n" + "\n".join(lines) + "\n```"


def _draw(rng: random.Random, min_steps: int, max_steps: int, max_operand: int, operations: Sequence[str]):
    start = rng.randint(1, max_operand)
    value, steps = start, []
    for _ in range(rng.randint(min_steps, max_steps)):
        choices = [op for op in operations if op != "subtract" or value > 0]
        op = rng.choice(choices)
        operand = rng.randint(2, 3) if op == "multiply" else rng.randint(1, max_operand if op == "add" else value)
        steps.append(f"{_SYMBOL[op]} {operand}")
        value = apply_steps(value, steps[-1:])
    return start, steps


def _problem_text(start: int, steps: Sequence[str], rng: random.Random) -> str:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    sentences = [f"{name} has {start} {item}."]
    for step in steps:
        op, operand = step.split()
        if op == "*":
            sentences.append(_MULTIPLY[int(operand)].format(item=item))
        else:
            sentences.append(rng.choice(_ADD if op == "+" else _SUBTRACT).format(name=name, n=operand))
    sentences.append(f"How many {item} does {name} have now?")
    return " ".join(sentences)


def _bucket(start: int, steps: Sequence[str]) -> int:
    """A stable number in [0, 100) from the problem's structure: which split the problem belongs to."""
    key = f"{start}|{'|'.join(steps)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 100


def _row(problem: str, start: int, steps: list[str], config: str) -> dict:
    answer = apply_steps(start, steps)
    extra = {"answer": answer, "start": start, "steps": steps}
    solution = format_program(start, steps) if config.startswith("pal") else format_solution(start, steps)
    if config == "grpo":
        return {"prompt": f"{problem}\n", **extra}
    if config in ("sft", "pal"):
        return {"prompt": f"{problem}\n", "completion": solution, **extra}
    system = PAL_SYSTEM_PROMPT if config == "pal-messages" else SYSTEM_PROMPT
    turns = [{"role": "system", "content": system}, {"role": "user", "content": problem}]
    if config == "grpo-conversational":
        return {"prompt": turns, **extra}
    return {"messages": [*turns, {"role": "assistant", "content": solution}], **extra}


def make_arithmetic_dataset(
    n: int = 1000,
    seed: int = 0,
    config: str = "grpo",
    *,
    min_steps: int = 1,
    max_steps: int = 3,
    max_operand: int = 20,
    operations: Sequence[str] = OPERATIONS,
    validation_size: float = 0.1,
    test_size: float = 0.1,
) -> DatasetDict:
    """Generate ``builtin:arithmetic`` (see the module docstring): ``train`` / ``validation`` / ``test`` splits.

    Args:
        n: problems over the three splits (distinct within each split, and no problem in two splits).
        seed: the dataset is a pure function of its arguments; the same arguments give the same problems in every
            configuration.
        config: one of `CONFIGS`.
        min_steps, max_steps: how many operations a problem has (drawn uniformly in this range).
        max_operand: the largest starting count and added number (subtractions never go below zero).
        operations: among `OPERATIONS`.
        validation_size, test_size: shares of `n` in the validation and test splits (at least one problem each).
    """
    if config not in CONFIGS:
        raise ValueError(f"dataset_config must be one of {CONFIGS} for {BUILTIN_ARITHMETIC}, got {config!r}")
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown or not operations:
        raise ValueError(f"operations must be among {OPERATIONS}, got {list(operations)}")
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"min_steps={min_steps} and max_steps={max_steps}: pass 1 <= min_steps <= max_steps")
    if max_operand < 1:
        raise ValueError(f"max_operand={max_operand}: pass a positive number")
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(f"validation_size={validation_size} and test_size={test_size} must be in (0, 1) and sum below 1")
    counts = {"test": max(1, round(n * test_size)), "validation": max(1, round(n * validation_size))}
    counts["train"] = n - counts["test"] - counts["validation"]
    if counts["train"] < 1:
        raise ValueError(f"n={n} is too small for three splits: pass n >= 3")
    # Buckets [0, 100) by split, in proportion to the shares (at least one bucket each).
    test_cut = max(1, round(100 * test_size))
    validation_cut = test_cut + max(1, round(100 * validation_size))

    def split_of(start: int, steps: list[str]) -> str:
        bucket = _bucket(start, steps)
        return "test" if bucket < test_cut else "validation" if bucket < validation_cut else "train"

    rng = random.Random(seed)
    seen: dict[str, set[tuple]] = {split: set() for split in counts}
    rows: dict[str, list[dict]] = {split: [] for split in counts}
    attempts = 0
    while any(len(rows[s]) < counts[s] for s in counts):
        attempts += 1
        if attempts > 200 * n + 10_000:
            short = {s: f"{len(rows[s])}/{counts[s]}" for s in counts}
            raise ValueError(f"could not draw {n} distinct problems ({short}): raise max_operand or max_steps, or lower n")
        start, steps = _draw(rng, min_steps, max_steps, max_operand, operations)
        problem = _problem_text(start, steps, rng)
        split = split_of(start, steps)
        key = (start, tuple(steps))
        if len(rows[split]) >= counts[split] or key in seen[split]:
            continue
        seen[split].add(key)
        rows[split].append(_row(problem, start, steps, config))
    return DatasetDict({split: Dataset.from_list(rows[split]) for split in ("train", "validation", "test")})
