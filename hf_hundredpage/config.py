"""Recipe configuration: a YAML file plus command-line overrides, parsed into dataclasses (TRL `TrlParser` style).

``python recipes/x.py --config recipes/configs/x/y.yaml --learning_rate 3e-4`` reads the YAML, then the
command line; a key given on both wins on the command line. Every YAML value goes through the same argparse
converters as the command line, so a wrong type, an unknown key or a missing value in either place is one
clear error line (`RecipeConfigError`) that names the key and the file, instead of a traceback mid-run.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser


class RecipeConfigError(ValueError):
    """A bad recipe config or command-line flag; the message says what to fix."""


class RecipeParser(HfArgumentParser):
    """`HfArgumentParser` that takes ``--config file.yaml`` and raises `RecipeConfigError` instead of exiting."""

    def error(self, message: str):  # argparse calls this for every bad flag or value
        raise RecipeConfigError(message)

    def known_keys(self) -> list[str]:
        return sorted({action.dest for action in self._actions if action.dest != "help"})

    def yaml_to_argv(self, config: dict[str, Any], source: str) -> list[str]:
        actions = {action.dest: action for action in self._actions}
        argv: list[str] = []
        for key, value in config.items():
            if key not in actions:
                close = difflib.get_close_matches(key, self.known_keys(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RecipeConfigError(f"unknown key {key!r} in {source}{hint}")
            if value is None:
                continue
            if isinstance(value, (list, tuple)) and actions[key].nargs in ("+", "*"):
                argv += [f"--{key}", *(str(v) for v in value)]
            elif isinstance(value, (dict, list)):
                argv += [f"--{key}", json.dumps(value)]
            else:
                argv += [f"--{key}", str(value)]
        return argv

    def parse_recipe_args(self, args: Iterable[str] | None = None) -> tuple:
        """Parse ``--config YAML`` (optional) and the command line into this parser's dataclasses."""
        args = list(sys.argv[1:] if args is None else args)
        yaml_argv: list[str] = []
        if "--config" in args:
            index = args.index("--config")
            if index + 1 >= len(args):
                raise RecipeConfigError("--config needs a path to a YAML file")
            config_path = args[index + 1]
            del args[index : index + 2]
            yaml_argv = self.yaml_to_argv(load_yaml_config(config_path), source=config_path)
        try:
            # argparse keeps the last value of a repeated flag: YAML first, command line after it.
            parsed = self.parse_args_into_dataclasses(args=yaml_argv + args, return_remaining_strings=True)
        except RecipeConfigError:
            raise
        except (TypeError, ValueError) as err:  # raised by dataclass __post_init__ checks (TrainingArguments)
            raise RecipeConfigError(str(err).strip().splitlines()[0]) from None
        *dataclasses, remaining = parsed
        if remaining:
            flag = next((r for r in remaining if r.startswith("--")), remaining[0])
            close = difflib.get_close_matches(flag.lstrip("-"), self.known_keys(), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise RecipeConfigError(f"unknown command-line argument {flag!r}{hint}")
        return tuple(dataclasses)


def load_yaml_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RecipeConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RecipeConfigError(f"config file {path} is not valid YAML ({str(err).splitlines()[0]})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RecipeConfigError(f"config file {path} must be a YAML mapping of argument names to values")
    env = config.pop("env", None) or {}
    if not isinstance(env, dict):
        raise RecipeConfigError(f"`env` in {path} must be a mapping of environment variables")
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    return config


def check_output_dir(output_dir: str | os.PathLike, overwrite_output_dir: bool, resuming: bool) -> None:
    """Refuse to write into a non-empty `output_dir` unless asked to overwrite or to resume from it."""
    path = Path(output_dir)
    if path.is_file():
        raise RecipeConfigError(f"output_dir {path} is a file: pass a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite_output_dir and not resuming:
        raise RecipeConfigError(
            f"output_dir {path} is not empty: pass --overwrite_output_dir to replace it, "
            "--resume_from_checkpoint true to continue its run, or another --output_dir"
        )


def resolve_resume(value) -> bool | str | None:
    """`resume_from_checkpoint` as the Trainer takes it: ``"true"`` -> True (the latest checkpoint of
    output_dir), ``"false"``/None -> None, a path -> the path, which must be a checkpoint folder."""
    if value is None:
        return None
    resume = {"true": True, "false": None}.get(str(value).lower(), value)
    if isinstance(resume, str) and not Path(resume).is_dir():
        raise RecipeConfigError(f"resume_from_checkpoint {resume} is not a checkpoint folder: pass one, or true for the latest")
    return resume
