"""Reward functions for reinforcement learning of reasoning (book §6.5) with TRL's `GRPOTrainer`, and the resolver
that turns the recipe's ``reward_funcs`` names into them.

A reward function has TRL's signature: ``f(completions, **kwargs) -> list[float]`` where `completions` are strings
(standard prompts) or lists of one assistant message (conversational prompts), and every dataset column arrives as a
keyword argument with one value per completion (``answer=[...]``), as do ``prompts`` and ``completion_ids``. A
reward may be None for a completion it cannot score.

Built-ins (`BUILTIN_REWARDS`), after the book's companion GRPO.py (aburkov/theLMbook), whose `correctness_reward`
gives 2.0 for an exact string match and 1.5 for numeric equality and whose `format_reward` gives 0.2 per tag (at most
0.8). Ours are on a 0-1 scale (``reward_weights: [2.0, 1.0]`` restores the companion's relative weight of the two) and
reward the complete, well-formed format above the four tags in any order:

================  =====================================================================================================
``correctness``   1.0 when the completion's answer (`extract_answer`) equals the ``answer`` column numerically, else 0.0
``format``        1.0 for exactly ``<reasoning>…</reasoning><answer>…</answer>`` (whitespace around the tags allowed);
                  otherwise 0.2 for each of the four tags present (the companion's partial format reward)
``length``        0.0 inside [``min_tokens``, ``max_tokens``]; outside, minus the relative distance to the nearest bound,
                  down to -1.0 (`LengthReward`; tokens from ``completion_ids``, else whitespace-separated words)
================  =====================================================================================================

`resolve_reward_funcs` also takes dotted import paths to the user's functions (``my_rewards.exact``, importable from
the current folder, as TRL's ``trl/scripts/grpo.py`` does) and wraps every function in `CheckedReward`, which turns
a wrong number of rewards into one clear error at the first call.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any


ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
FORMAT = re.compile(r"^\s*<reasoning>(.*?)</reasoning>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
FORMAT_TAGS = ("<reasoning>", "</reasoning>", "<answer>", "</answer>")
NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


# ------------------------------------------------------------------------------------------------ answer extraction


def completion_text(completion: Any) -> str:
    """A completion's text: a string as is; a conversational completion (a list of message dicts) as the contents of
    its assistant turns joined (all its turns when none is marked assistant)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        turns = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in turns if m.get("role") == "assistant"] or turns
        return "".join(_content(m.get("content")) for m in assistant)
    return "" if completion is None else str(completion)


def _content(content: Any) -> str:
    if isinstance(content, list):  # content blocks: [{"type": "text", "text": ...}]
        return "".join(str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    return "" if content is None else str(content)


def parse_number(text: Any) -> int | float | None:
    """The last number in `text` (an int or float as is; ``"1,234"`` -> 1234, ``"14."`` -> 14, ``"#### 72"`` -> 72),
    None when there is none. Integral values are ints, so ``14.0`` equals ``14``."""
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return int(text) if float(text).is_integer() else float(text)
    found = NUMBER.findall("" if text is None else str(text))
    if not found:
        return None
    value = float(found[-1].replace(",", ""))
    return int(value) if value.is_integer() else value


def extract_answer(completion: Any) -> int | float | None:
    """The numeric answer of a completion: the last number inside its last ``<answer>…</answer>`` when it has one,
    else the last number of the whole text (a model that has not learned the format yet still gets credit from
    ``correctness``; ``format`` rewards the format). None when there is no number."""
    text = completion_text(completion)
    tagged = ANSWER_TAG.findall(text)
    return parse_number(tagged[-1] if tagged else text)


def is_correct(completion: Any, answer: Any) -> bool:
    """Whether the completion's extracted answer equals the gold `answer` (a number or a text ending in one)."""
    predicted, gold = extract_answer(completion), parse_number(answer)
    return predicted is not None and gold is not None and predicted == gold


# ------------------------------------------------------------------------------------------------ built-in rewards


def correctness_reward(completions: Sequence[Any], answer: Sequence[Any] | None = None, **kwargs) -> list[float]:
    """1.0 for each completion whose extracted answer equals its ``answer`` column numerically, else 0.0."""
    if answer is None:
        raise ValueError("the correctness reward needs an 'answer' column in the dataset (the gold answer of each prompt)")
    return [1.0 if is_correct(c, a) else 0.0 for c, a in zip(completions, answer)]


def format_reward(completions: Sequence[Any], **kwargs) -> list[float]:
    """1.0 for exactly the book's ``<reasoning>…</reasoning><answer>…</answer>``, else 0.2 per tag present."""
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        if FORMAT.match(text) and all(text.count(tag) == 1 for tag in FORMAT_TAGS):
            rewards.append(1.0)
        else:
            rewards.append(round(0.2 * sum(tag in text for tag in FORMAT_TAGS), 2))
    return rewards


class LengthReward:
    """0.0 for a completion of ``min_tokens``..``max_tokens`` tokens; below, ``-(min_tokens - n) / min_tokens``;
    above, ``-(n - max_tokens) / max_tokens``; never below -1.0. Either bound may be None (no bound)."""

    __name__ = "length"

    def __init__(self, min_tokens: int | None = None, max_tokens: int | None = 256):
        if min_tokens is not None and min_tokens < 1 or max_tokens is not None and max_tokens < 1:
            raise ValueError(f"length reward bounds must be positive, got min {min_tokens}, max {max_tokens}")
        if min_tokens is not None and max_tokens is not None and min_tokens > max_tokens:
            raise ValueError(f"length reward: min_tokens {min_tokens} is above max_tokens {max_tokens}")
        self.min_tokens, self.max_tokens = min_tokens, max_tokens

    def __call__(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None,
                 **kwargs) -> list[float]:
        lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                   else [len(completion_text(c).split()) for c in completions])
        return [self.score(n) for n in lengths]

    def score(self, n: int) -> float:
        if self.min_tokens is not None and n < self.min_tokens:
            return max(-1.0, -(self.min_tokens - n) / self.min_tokens)
        if self.max_tokens is not None and n > self.max_tokens:
            return max(-1.0, -(n - self.max_tokens) / self.max_tokens)
        return 0.0


BUILTIN_REWARDS: dict[str, Callable[..., Callable]] = {
    "correctness": lambda **options: correctness_reward,
    "format": lambda **options: format_reward,
    "length": lambda **options: LengthReward(options.get("min_tokens"), options.get("max_tokens", 256)),
}


# ------------------------------------------------------------------------------------------------ resolver


class CheckedReward:
    """A reward function that must return one reward (a number or None) per completion: anything else is one
    `ValueError` naming the function, at the first call. Keeps TRL's signature; ``__name__`` is the name TRL logs
    (``rewards/<name>/mean``)."""

    def __init__(self, func: Callable, name: str):
        self.func, self.__name__ = func, name

    def __call__(self, completions, **kwargs) -> list[float | None]:
        rewards = self.func(completions=completions, **kwargs)
        if isinstance(rewards, (str, bytes)) or not isinstance(rewards, Sequence) and not hasattr(rewards, "tolist"):
            raise ValueError(f"reward function {self.__name__!r} returned {type(rewards).__name__}, not a list: it must "
                             f"return one float (or None) per completion")
        rewards = rewards.tolist() if hasattr(rewards, "tolist") else list(rewards)
        if len(rewards) != len(completions):
            raise ValueError(f"reward function {self.__name__!r} returned {len(rewards)} rewards for {len(completions)} "
                             "completions: it must return one float (or None) per completion")
        bad = next((r for r in rewards if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)))), None)
        if bad is not None:
            raise ValueError(f"reward function {self.__name__!r} returned {bad!r}: rewards must be floats (or None)")
        return [None if r is None else float(r) for r in rewards]

    def __repr__(self) -> str:
        return f"CheckedReward({self.__name__})"


def _import_reward(path: str) -> Callable:
    module_name, _, attribute = path.rpartition(".")
    hint = f"pass one of {sorted(BUILTIN_REWARDS)} or a dotted path to a function importable from {os.getcwd()}"
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # `my_rewards.exact` next to where the recipe runs, as in TRL's grpo script
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001  (an ImportError, or whatever the user's module raises on import)
        message = (str(err).splitlines() or [""])[0]
        raise ValueError(f"reward function {path!r}: cannot import {module_name!r} ({type(err).__name__}: {message}); "
                         f"{hint}") from None
    func = getattr(module, attribute, None)
    if func is None:
        raise ValueError(f"reward function {path!r}: module {module_name!r} has no {attribute!r}; {hint}")
    if not callable(func):
        raise ValueError(f"reward function {path!r} is a {type(func).__name__}, not a function; {hint}")
    return func


def resolve_reward_funcs(names: Sequence[str], weights: Sequence[float] | None = None,
                         **options) -> list[CheckedReward]:
    """The reward functions of `names` (built-in names or dotted import paths), each wrapped in `CheckedReward`.

    Args:
        names: e.g. ``["correctness", "format", "my_rewards.exact"]``.
        weights: TRL's ``reward_weights``, checked to be one per function (None: all 1.0).
        options: the built-ins' settings (``min_tokens``, ``max_tokens`` of ``length``).

    Raises:
        ValueError: one line naming the first name that is not a built-in, does not import or is not callable.
    """
    names = list(names or [])
    if not names:
        raise ValueError(f"reward_funcs is empty: pass one or more of {sorted(BUILTIN_REWARDS)} or dotted import paths")
    if len(set(names)) != len(names):
        raise ValueError(f"reward_funcs {names} names a function twice: weight it with reward_weights instead")
    if weights is not None and len(weights) != len(names):
        raise ValueError(f"reward_weights has {len(weights)} values for {len(names)} reward_funcs {names}: pass one per function")
    if weights is not None and any(not math.isfinite(w) for w in weights):
        raise ValueError(f"reward_weights {list(weights)} must be finite numbers")
    funcs = []
    for name in names:
        if name in BUILTIN_REWARDS:
            funcs.append(CheckedReward(BUILTIN_REWARDS[name](**options), name))
        elif "." in name.strip(".") and not name.startswith("."):
            funcs.append(CheckedReward(_import_reward(name), name))
        else:
            close = difflib.get_close_matches(name, list(BUILTIN_REWARDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown reward function {name!r}{hint}: pass one of {sorted(BUILTIN_REWARDS)} or a dotted "
                             "import path such as my_rewards.exact")
    return funcs
