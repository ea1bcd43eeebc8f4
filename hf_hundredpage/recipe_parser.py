"""Recipe configuration: TRL's `TrlParser` (a YAML file given with ``--config``, then command-line overrides, ``env``
for environment variables) with one-line errors instead of tracebacks.

``accelerate launch recipes/x.py --config recipes/configs/x/y.yaml --learning_rate 3e-4`` reads the YAML, then the
command line; a key given on both wins on the command line. On top of `TrlParser`:

* every YAML value goes through the same argparse converter as the command line, so a wrong type or an unknown key
  (with a did-you-mean) in either place is one `RecipeConfigError` that names the key and the file;
* numbers outside their domain (``max_steps: -5``, ``learning_rate: 0``, ``lora_dropout: 1.5``) are refused;
* ``early_stopping_patience`` (`RunArguments`) turns on ``load_best_model_at_end`` with ``eval_loss`` before
  `TrainingArguments` validates itself, so its own checks (matching eval/save strategies) run.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from trl import TrlParser


class RecipeConfigError(ValueError):
    """A bad recipe config or command-line flag; the message says what to fix."""


@dataclass
class RunArguments:
    """What every recipe run takes besides its trainer's config."""

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "replace the results of an earlier run in output_dir (other files in it are kept)"},
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after N evaluations without a better eval_loss (book §6.8)"}
    )


def _positive(value) -> bool:
    return value > 0


def _fraction(value) -> bool:
    return 0 < value < 1


def _probability(value) -> bool:
    return 0 <= value < 1


# Field name -> (accepts the value?, what to pass). Checked on every parsed dataclass that has the field; None passes.
DOMAINS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_steps": (lambda v: v == -1 or v > 0, "-1 (train for num_train_epochs) or a positive number of steps"),
    "num_train_epochs": (_positive, "a positive number of epochs"),
    "learning_rate": (lambda v: v >= 0, "0 or more (0 keeps the weights as they are)"),
    "per_device_train_batch_size": (_positive, "a positive batch size"),
    "per_device_eval_batch_size": (_positive, "a positive batch size"),
    "gradient_accumulation_steps": (_positive, "a positive number of steps"),
    "warmup_steps": (lambda v: v >= 0, "0 or more (a value below 1 is a ratio of the training steps)"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "a ratio between 0 and 1"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "max_grad_norm": (lambda v: v >= 0, "0 or more"),
    "adam_beta1": (_probability, "a value in [0, 1)"),
    "adam_beta2": (_probability, "a value in [0, 1)"),
    "adam_epsilon": (_positive, "a positive value"),
    "logging_steps": (_positive, "a positive number (a value below 1 is a ratio of the training steps)"),
    "eval_steps": (_positive, "a positive number (a value below 1 is a ratio of the training steps)"),
    "save_steps": (_positive, "a positive number (a value below 1 is a ratio of the training steps)"),
    "save_total_limit": (_positive, "a positive number of checkpoints"),
    "early_stopping_patience": (_positive, "a positive number of evaluations"),
    "seed": (lambda v: v >= 0, "0 or more"),
    "lora_r": (_positive, "a positive rank"),
    "lora_alpha": (_positive, "a positive value"),
    "lora_dropout": (_probability, "a dropout in [0, 1)"),
    "attention_dropout": (_probability, "a dropout in [0, 1)"),
    "hidden_dropout": (_probability, "a dropout in [0, 1)"),
    "dropout": (_probability, "a dropout in [0, 1)"),
    "block_size": (_positive, "a positive number of tokens"),
    "max_length": (_positive, "a positive number of tokens"),
    "hidden_size": (_positive, "a positive width"),
    "num_hidden_layers": (_positive, "a positive number of layers"),
    "num_attention_heads": (_positive, "a positive number of heads"),
    "num_key_value_heads": (_positive, "a positive number of heads"),
    "intermediate_size": (_positive, "a positive width"),
    "max_position_embeddings": (_positive, "a positive number of positions"),
    "ngram_order": (_positive, "a positive n-gram order"),
    "sample_max_new_tokens": (lambda v: v >= 0, "0 or more tokens"),
    "eval_max_new_tokens": (_positive, "a positive number of tokens"),
    "max_new_tokens": (_positive, "a positive number of tokens"),
    "eval_max_examples": (_positive, "a positive number of examples"),
    "eval_max_documents": (_positive, "a positive number of documents"),
    "dataset_num_examples": (lambda v: v >= 3, "at least 3 examples (train, validation and test need one each)"),
    "dataset_test_size": (_fraction, "a fraction between 0 and 1"),
    "validation_fraction": (_fraction, "a fraction between 0 and 1"),
    "test_fraction": (_fraction, "a fraction between 0 and 1"),
    "max_train_samples": (_positive, "a positive number of examples"),
    "max_eval_samples": (_positive, "a positive number of examples"),
    "bow_max_ngram": (_positive, "a positive n-gram length"),
    "beta": (_positive, "a positive value (higher keeps the model closer to its reference)"),
    "precompute_ref_batch_size": (_positive, "a positive batch size"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "a value in [0, 0.5)"),
    "discopop_tau": (_positive, "a positive value"),
}


def check_domains(*parsed, domains: dict[str, tuple[Callable[[Any], bool], str]] | None = None) -> None:
    """Raise `RecipeConfigError` for the first field of `parsed` whose value is outside its `domains` entry
    (default `DOMAINS`)."""
    domains = DOMAINS if domains is None else domains
    for obj in parsed:
        for f in fields(obj):
            rule = domains.get(f.name)
            value = getattr(obj, f.name, None)
            if rule is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            accepts, expected = rule
            if (isinstance(value, float) and math.isnan(value)) or not accepts(value):
                raise RecipeConfigError(f"{f.name}={value} is out of range: pass {expected}")


class RecipeParser(TrlParser):
    """`TrlParser` that raises `RecipeConfigError` (one line) for every bad key, value or file."""

    def __init__(self, dataclass_types, *, domains: dict[str, tuple[Callable[[Any], bool], str]] | None = None,
                 **kwargs):
        """`domains`: entries that replace `DOMAINS`' for this recipe (a name can mean another range: GKD's ``beta``
        is a JSD interpolation in [0, 1], DPO's a positive temperature)."""
        kwargs.setdefault("allow_abbrev", False)  # `--learning_rat` is a typo, not `--learning_rate`
        super().__init__(dataclass_types, **kwargs)
        self.domains = {**DOMAINS, **(domains or {})}

    def error(self, message: str):  # argparse calls this for every bad flag or value
        raise RecipeConfigError(message)

    def known_keys(self) -> list[str]:
        return sorted({action.dest for action in self._actions if action.dest != "help"})

    def set_defaults_with_config(self, **config) -> list[str]:
        """TrlParser's YAML defaults, each value converted and checked like the same flag on the command line."""
        actions = {action.dest: action for action in self._actions}
        converted = {}
        for key, value in config.items():
            if key not in actions:
                close = difflib.get_close_matches(key, self.known_keys(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RecipeConfigError(f"unknown key {key!r} in {self._config_source}{hint}")
            if value is None:
                converted[key] = None
                continue
            action = actions[key]
            many = isinstance(value, (list, tuple)) and action.nargs in ("+", "*")
            strings = [str(v) for v in value] if many else [json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
            try:
                converted[key] = self._get_values(action, strings)
            except argparse.ArgumentError as err:
                raise RecipeConfigError(f"{key} in {self._config_source}: {err.message}") from None
        return super().set_defaults_with_config(**converted)

    def parse_recipe_args(self, args: Iterable[str] | None = None) -> tuple:
        """Parse ``--config YAML`` (optional) and the command line into this parser's dataclasses."""
        args = list(sys.argv[1:] if args is None else args)
        self._config_source = "the config"
        config: dict[str, Any] = {}
        if "--config" in args:
            index = args.index("--config")
            if index + 1 >= len(args):
                raise RecipeConfigError("--config needs a path to a YAML file")
            self._config_source = args[index + 1]
            config = load_yaml_config(self._config_source)
        self._enable_early_stopping(args, config)
        try:
            *parsed, remaining = self.parse_args_and_config(args, return_remaining_strings=True)
        except RecipeConfigError:
            raise
        except (TypeError, ValueError) as err:  # dataclass __post_init__ checks (TrainingArguments, ModelConfig)
            message = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if self._early_stopping and "load_best_model_at_end requires" in message:
                what = "save_steps to be a multiple of eval_steps" if "multiple" in message else (
                    "eval_strategy steps or epoch, and save_strategy equal to it")
                message = f"early_stopping_patience needs {what} ({message})"
            raise RecipeConfigError(message) from None
        if remaining:
            flag = next((r for r in remaining if r.startswith("--")), remaining[0])
            close = difflib.get_close_matches(flag.lstrip("-"), self.known_keys(), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise RecipeConfigError(f"unknown command-line argument {flag!r}{hint}")
        check_domains(*parsed, domains=self.domains)
        return tuple(parsed)

    def _enable_early_stopping(self, args: list[str], config: dict[str, Any]) -> None:
        """With ``early_stopping_patience`` set (YAML or command line), default to keeping the best model by
        ``eval_loss``, so that `TrainingArguments` checks the strategies this needs when it is built."""
        self._early_stopping = False
        if "early_stopping_patience" not in self.known_keys():
            return
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--early_stopping_patience", default=config.get("early_stopping_patience"))
        patience = pre.parse_known_args(args)[0].early_stopping_patience
        self._early_stopping = patience not in (None, "None", "none", "0", 0)
        if self._early_stopping:
            self.set_defaults(load_best_model_at_end=True, metric_for_best_model="eval_loss")


def load_yaml_config(path: str) -> dict[str, Any]:
    """A recipe YAML as a mapping; a missing file, invalid YAML or a non-mapping is one `RecipeConfigError`."""
    file = Path(path)
    if not file.is_file():
        raise RecipeConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.YAMLError as err:
        raise RecipeConfigError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RecipeConfigError(f"config file {path} must be a YAML mapping of argument names to values")
    if not isinstance(config.get("env", {}) or {}, dict):
        raise RecipeConfigError(f"`env` in {path} must be a mapping of environment variables")
    return config


# Library warnings a recipe's user cannot act on (deprecations inside transformers/TRL/PEFT/torch, not in their code).
_QUIET_WARNINGS = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)


def quiet_libraries() -> None:
    """Silence, once at an entry point, the library deprecation warnings and notices a recipe's user cannot act on;
    tqdm progress of the real work and our own messages stay."""
    import os
    import warnings

    for category in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*TRL_EXPERIMENTAL_SILENCE.*")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def recipe_errors(script: str):
    """Decorate a recipe's ``main``: bad input (`RecipeConfigError`, ``ValueError``, ``OSError`` such as a missing file
    or an unreachable Hub) becomes one line ``<script>: error: <what to fix>`` on stderr and exit status 2, without a
    traceback. ``HF_HUNDREDPAGE_TRACEBACK=1`` re-raises instead, for debugging."""
    import functools
    import os

    def decorate(main):
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            quiet_libraries()
            try:
                return main(*args, **kwargs)
            except (ValueError, OSError) as err:
                if os.environ.get("HF_HUNDREDPAGE_TRACEBACK"):
                    raise
                message = (str(err).strip().splitlines() or [type(err).__name__])[0]
                print(f"{script}: error: {message}", file=sys.stderr, flush=True)
                return 2

        return wrapper

    return decorate
