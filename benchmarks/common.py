"""What the benchmark scripts (and the recipe tests) share: loading a recipe script as a module, and this process's resident memory."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def load_recipe(name: str):
    """``recipes/<name>.py`` as a module (its ``main(argv)`` runs the recipe in this process), loaded once per process:
    its dataclasses must stay one class (datasets pickles the trainer config when it fingerprints a map). The tests
    (`tests/recipes/helpers.py`) load recipes through it too."""
    if f"recipe_{name}" in sys.modules:
        return sys.modules[f"recipe_{name}"]
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
