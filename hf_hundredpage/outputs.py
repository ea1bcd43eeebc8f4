"""The output-folder rules of every recipe and every folder-writing command, so that no run loses a user's files:

* ``.``, ``~``, ``/``, the current folder and folders that hold a ``.git``, ``pyproject.toml`` or ``setup.py`` are
  refused; a non-empty folder needs ``--overwrite_output_dir`` (or, for a recipe, ``--resume_from_checkpoint``);
* results are written beside the folder (a hidden staging sibling) and moved in only when complete, so a failed run
  leaves the previous result intact;
* a manifest (`MANIFEST`) records what a run wrote; an overwrite removes only what the previous manifest lists and
  replaces same-named files, and never touches anything else in the folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


MANIFEST = ".hf-hundredpage-run.json"
STAGING_SUFFIX = ".hf-hundredpage-staging"
PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py")


class OutputDirError(ValueError):
    """An output folder the run must not write to; the message says what to pass instead."""


def check_output_dir(output_dir: str | os.PathLike, overwrite_output_dir: bool, resuming: bool) -> None:
    """Refuse an output folder that is a file, the current/home/root folder or a project, or that is not empty
    (unless asked to overwrite it, or to resume from it)."""
    given = os.fspath(output_dir)
    path = Path(given).expanduser()
    if path.is_file():
        raise OutputDirError(f"output_dir {given} is a file: pass a directory")
    resolved = path.resolve()
    if given.strip() in ("", ".", "./", "~", "/") or resolved in {Path("/"), Path.home().resolve(), Path.cwd().resolve()}:
        raise OutputDirError(f"output_dir {given} is the current, home or root folder: pass a subfolder such as out/run")
    marker = next((m for m in PROJECT_MARKERS if (resolved / m).exists()), None) if resolved.is_dir() else None
    if marker:
        raise OutputDirError(f"output_dir {given} holds {marker} (a project, not a run): pass a subfolder such as out/run")
    if resolved.is_dir() and any(resolved.iterdir()) and not overwrite_output_dir and not resuming:
        raise OutputDirError(
            f"output_dir {given} is not empty: pass --overwrite_output_dir to replace it, "
            "--resume_from_checkpoint true to continue its run, or another --output_dir"
        )


def read_manifest(folder: Path) -> list[str] | None:
    """The top-level names a run of ours wrote into `folder`, or None when it has no (valid) manifest."""
    try:
        names = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [n for n in names if isinstance(n, str) and n and "/" not in n and "\\" not in n and n not in (".", "..")]


def _write_manifest(folder: Path) -> None:
    names = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST)
    (folder / MANIFEST).write_text(json.dumps({"files": names, "written_by": "hf_hundredpage"}, indent=2) + "\n")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def staging_dir(output_dir: Path) -> Path:
    """The hidden sibling a run writes into before its results move into `output_dir` (ours by its name)."""
    return output_dir.parent / f".{output_dir.name}{STAGING_SUFFIX}"


def commit_folder(work_dir: Path, output_dir: Path) -> None:
    """Move the finished `work_dir` into `output_dir` by the manifest rule (module docstring); `work_dir` may be
    `output_dir` itself (a run that wrote in place), which only gets its manifest."""
    if work_dir == output_dir:
        _write_manifest(output_dir)
        return
    _write_manifest(work_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    new = [p.name for p in work_dir.iterdir()]
    for name in read_manifest(output_dir) or []:
        if name not in new:
            _remove(output_dir / name)
    for name in new:
        _remove(output_dir / name)
        os.replace(work_dir / name, output_dir / name)
    work_dir.rmdir()


def save_folder(output_dir: str | os.PathLike, save: Callable[[Path], None]) -> None:
    """For commands: `save(folder)` writes into the staging sibling, which then moves into `output_dir`
    (`commit_folder`); a failure leaves `output_dir` as it was and removes the staging folder."""
    output_dir = Path(output_dir).expanduser()
    staging = staging_dir(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        save(staging)
        commit_folder(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
