"""Datasets generated offline, named ``builtin:NAME`` wherever a recipe takes ``dataset_name``.

==================  ============================================================  =========================
name                what                                                          generator
==================  ============================================================  =========================
``instructions``    short instructions with one right answer (SFT, book §5.3)     `instructions.make_instruction_dataset`
``emotions``        keyword-labelled emotion sentences (classification, §5.6)     `emotions.make_text_classification_dataset`
``preferences``     mood-following preference pairs and their SFT data (§6.4)     `preferences.make_preference_dataset`
``arithmetic``      multi-step word problems, CoT targets or GRPO prompts (§6.5)  `arithmetic.make_arithmetic_dataset`
``injections``      prompt injections vs benign texts, held-out templates (§6.6)  `injections.make_injection_dataset`
``refusals``        refuse-vs-obey preference pairs on attack prompts (§6.6)      `refusals.make_refusal_dataset`
==================  ============================================================  =========================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from datasets import DatasetDict


BUILTIN_PREFIX = "builtin:"


def _instructions(config: str | None, **options) -> DatasetDict:
    from .instructions import make_instruction_dataset

    options["n"] = options.pop("num_examples", 1200)
    return _call(make_instruction_dataset, format=config or "messages", **options)


def _emotions(config: str | None, **options) -> DatasetDict:
    # Fixed (one seed), like a Hub dataset: the recipe's seed changes training, not the data.
    from .emotions import make_text_classification_dataset

    return make_text_classification_dataset()


def _preferences(config: str | None, **options) -> DatasetDict:
    from .preferences import make_preference_dataset

    options["n"] = options.pop("num_examples", 600)
    return _call(make_preference_dataset, config=config or "pairs", **options)


def _arithmetic(config: str | None, **options) -> DatasetDict:
    from .arithmetic import make_arithmetic_dataset

    options["n"] = options.pop("num_examples", 1000)
    return _call(make_arithmetic_dataset, config=config or "grpo", **options)


def _injections(config: str | None, **options) -> DatasetDict:
    from .injections import make_injection_dataset

    options["n"] = options.pop("num_examples", 1200)
    return _call(make_injection_dataset, **options)


def _refusals(config: str | None, **options) -> DatasetDict:
    from .refusals import make_refusal_dataset

    options["n"] = options.pop("num_examples", 600)
    return _call(make_refusal_dataset, config=config or "pairs-conversational", **options)


BUILTIN_DATASETS: dict[str, Callable[..., DatasetDict]] = {
    "instructions": _instructions, "emotions": _emotions, "preferences": _preferences, "arithmetic": _arithmetic,
    "injections": _injections, "refusals": _refusals,
}


def _call(function: Callable, **options) -> DatasetDict:
    accepted = inspect.signature(function).parameters
    return function(**{key: value for key, value in options.items() if key in accepted and value is not None})


def load_builtin(dataset_name: str, dataset_config: str | None = None, **options) -> DatasetDict:
    """Generate ``builtin:NAME`` with `options` (those its generator accepts); an unknown name is one error line."""
    name = dataset_name.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_DATASETS:
        raise ValueError(
            f"unknown built-in dataset {dataset_name!r}: use one of {[BUILTIN_PREFIX + key for key in BUILTIN_DATASETS]}"
        )
    return BUILTIN_DATASETS[name](dataset_config, **options)
