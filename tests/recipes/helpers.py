"""Run recipes in-process (their `main(argv)`) or as real processes, and inspect their output folders."""

import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from benchmarks.common import REPO, load_recipe  # noqa: F401  (one loader for tests and benchmarks)


def recipe_command(name: str, *args: str, launcher: list[str] | None = None) -> list[str]:
    return [*(launcher or [sys.executable]), str(REPO / "recipes" / f"{name}.py"), *map(str, args)]


def run_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def weights(folder: Path) -> dict:
    return load_file(str(Path(folder) / "model.safetensors"))


def run(cmd: list[str], timeout: int = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env(**env), cwd=REPO)
