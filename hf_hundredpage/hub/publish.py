"""Publishing a trained folder to the Hugging Face Hub, after checking that ``from_pretrained`` will find
everything it needs (``hf-hundredpage publish``, and the end of every recipe run with ``push_to_hub``).

    hf-hundredpage publish out/tiny-transformer my-user/tiny-transformer --private
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects, validate_repo_id
from transformers.dynamic_module_utils import get_relative_imports
from transformers.utils import logging

from .cards import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    CONFIG_FILE,
    TOKENIZER_FILES,
    WEIGHTS_FILE,
    WEIGHTS_INDEX_FILE,
    _read_json,
    _unique,
)


logger = logging.get_logger(__name__)

# Never uploaded: intermediate Trainer checkpoints, TensorBoard logs, temporary and byte-compiled files.
# `filter_repo_objects` matches these with fnmatch on paths relative to the folder ("*" also matches "/").
PUBLISH_IGNORE_PATTERNS: tuple[str, ...] = (
    "checkpoint-*",
    "*/checkpoint-*",
    "runs/",
    "*/runs/*",
    "*.tmp",
    "__pycache__/",
    "*/__pycache__/*",
    "*.pyc",
    ".hf-hundredpage-run.json",  # the run manifest (hf_hundredpage.training.run.MANIFEST)
    ".env",
    "*.env",
)

class HubConnectionError(ConnectionError):
    """The Hugging Face Hub could not be reached (no network, proxy, firewall, offline mode)."""



def check_loadable_folder(folder: str | os.PathLike) -> list[str]:
    """Check that ``from_pretrained`` can load ``folder`` and list the files that `publish` uploads.

    A loadable folder has ``config.json`` and ``model.safetensors`` (or ``model.safetensors.index.json`` and
    every shard it names) -- or, for a PEFT adapter, ``adapter_config.json`` and
    ``adapter_model.safetensors`` --, a tokenizer (``tokenizer.json`` or ``tokenizer_config.json``), and every
    code file that ``auto_map`` (remote code) names, with the files those import relatively.

    Returns:
        The paths, relative to ``folder`` and sorted, of the files to upload: everything but Trainer checkpoints,
        TensorBoard runs and temporary files (`PUBLISH_IGNORE_PATTERNS`).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: something needed to load the model is missing; the message lists all of it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory: pass the folder the model was saved to.")
    files = sorted(
        filter_repo_objects(
            (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()),
            ignore_patterns=[*PUBLISH_IGNORE_PATTERNS, *DEFAULT_IGNORE_PATTERNS],
        )
    )
    present = set(files)
    missing: list[str] = []

    if ADAPTER_CONFIG_FILE in present:
        if ADAPTER_WEIGHTS_FILE not in present:
            missing.append(ADAPTER_WEIGHTS_FILE)
    else:
        if CONFIG_FILE not in present:
            missing.append(CONFIG_FILE)
        if WEIGHTS_INDEX_FILE in present:
            weight_map = _read_json(folder / WEIGHTS_INDEX_FILE).get("weight_map", {})
            missing += sorted(set(weight_map.values()) - present)
        elif WEIGHTS_FILE not in present:
            missing.append(f"{WEIGHTS_FILE} (or {WEIGHTS_INDEX_FILE} with its shards)")
    if not present.intersection(TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))

    for config_name in (CONFIG_FILE, "tokenizer_config.json"):
        if config_name in present:
            missing += [code for code in _auto_map_code_files(folder, config_name) if code not in present]

    if missing:
        missing = _unique(missing)
        raise ValueError(
            f"{folder} cannot be loaded with from_pretrained, it lacks: {', '.join(missing)}. "
            "Save the model and tokenizer there with save_pretrained() (register_for_auto_class() for remote code)."
        )
    return files


def _auto_map_code_files(folder: Path, config_name: str) -> list[str]:
    """The ``.py`` files named by ``auto_map`` in a config, plus what they import relatively (as transformers does)."""
    references: list[str] = []
    for value in _read_json(folder / config_name).get("auto_map", {}).values():
        references += value if isinstance(value, (list, tuple)) else [value]
    # "repo--module.Class" points at code in another Hub repo: nothing to check here.
    pending = [f"{ref.rsplit('.', 1)[0].replace('.', '/')}.py" for ref in references if ref and "--" not in ref]
    code_files: list[str] = []
    while pending:
        code = pending.pop()
        if code in code_files:
            continue
        code_files.append(code)
        if (folder / code).is_file():
            pending += [f"{module.replace('.', '/')}.py" for module in get_relative_imports(folder / code)]
    return code_files


def _connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the Hub could not be reached", whatever HTTP client huggingface_hub uses."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    # huggingface_hub 2.x talks through `httpx2`; 1.x used `httpx` and 0.x `requests`.
    for module_name, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests.exceptions", ("ConnectionError", "Timeout")),
    ):
        try:
            module = __import__(module_name, fromlist=list(names))
        except ImportError:
            continue
        errors += [getattr(module, name) for name in names]
    return tuple(errors)


def publish(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload a loadable model folder to the Hub (creating the repo if needed) and return the commit URL.

    The folder is checked with `check_loadable_folder` first, so a broken folder never reaches the Hub.
    Checkpoints, TensorBoard runs and temporary files stay local (`PUBLISH_IGNORE_PATTERNS`).

    Args:
        folder: the saved model folder.
        repo_id: ``owner/name`` (or ``name``, under the token's user).
        private: create the repo private (an existing repo keeps its visibility).
        token: a write token; ``HF_TOKEN`` or the cached login when None.
        revision: the branch to commit to; created from the default branch when missing.
        commit_message: the commit title; "Upload <folder name> with hf_hundredpage" when None.
        create_pr: open a pull request against the default branch instead of committing to it.

    Raises:
        HubConnectionError: the Hub could not be reached (a `ConnectionError`); nothing was uploaded.
        PermissionError: the token is missing or cannot write to ``repo_id``.
    """
    folder = Path(folder)
    if "README.md" not in check_loadable_folder(folder):
        logger.warning(f"{folder} has no README.md: write one with hf_hundredpage.hub.write_model_card().")
    validate_repo_id(repo_id)
    if create_pr and revision not in (None, "main"):
        raise ValueError("create_pr opens a pull request against the default branch: drop revision or create_pr.")

    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None and revision != "main" and not create_pr:
            api.create_branch(repo_url.repo_id, branch=revision, exist_ok=True)
    except _connection_errors() as err:
        raise HubConnectionError(_unreachable_message(api, err, "nothing was uploaded")) from err
    except HfHubHTTPError as err:
        _raise_for_auth(err, repo_id)
        raise

    try:
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.resolve().name} with hf_hundredpage",
            create_pr=create_pr,
            ignore_patterns=list(PUBLISH_IGNORE_PATTERNS),
        )
    except _connection_errors() as err:
        # In a single commit (the default for small folders) nothing is committed until the end; a large folder
        # goes in several commits, and running the same command again uploads only what is missing.
        raise HubConnectionError(
            _unreachable_message(api, err, f"the upload to {repo_url.repo_id} did not complete; run it again")
        ) from err
    except HfHubHTTPError as err:
        _raise_for_auth(err, repo_id)
        raise
    logger.info(f"Uploaded {folder} to {commit.pr_url or commit.commit_url}")
    return commit.commit_url


def _unreachable_message(api: HfApi, err: BaseException, consequence: str) -> str:
    return (
        f"cannot reach the Hugging Face Hub at {api.endpoint} ({type(err).__name__}: {err}); {consequence}. "
        "Check the network (proxy, HF_ENDPOINT, HF_HUB_OFFLINE) and that HF_TOKEN holds a write token."
    )


def _raise_for_auth(err: HfHubHTTPError, repo_id: str) -> None:
    status = err.response.status_code if err.response is not None else None
    if status in (401, 403):
        raise PermissionError(
            f"the Hub refused to write to {repo_id} (HTTP {status}): set HF_TOKEN (or pass --token) to a token "
            "with write access to that namespace."
        ) from err


def maybe_push_to_hub(output_dir: str | os.PathLike, training_args_like: Any) -> str | None:
    """Publish ``output_dir`` when ``training_args_like.push_to_hub`` is set; return the commit URL, else None.

    Reads the `transformers.TrainingArguments` fields ``push_to_hub``, ``hub_model_id`` (the folder name when
    unset), ``hub_token``, ``hub_private_repo`` and ``hub_revision``; any object with those attributes works.
    """
    if not getattr(training_args_like, "push_to_hub", False):
        return None
    return publish(
        output_dir,
        getattr(training_args_like, "hub_model_id", None) or Path(output_dir).resolve().name,
        private=bool(getattr(training_args_like, "hub_private_repo", None)),
        token=getattr(training_args_like, "hub_token", None),
        revision=getattr(training_args_like, "hub_revision", None),
    )


# --------------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage publish``."""
    parser.add_argument("folder", metavar="DIR", help="the saved model folder (config, weights, tokenizer, card)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub repo, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="a Hub write token (default: HF_TOKEN or the cached login)")
    parser.add_argument("--revision", default=None, help="the branch to commit to (created if missing)")
    parser.add_argument("--commit_message", default=None, help="the commit title")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage publish``."""
    files = check_loadable_folder(args.folder)
    print(f"Uploading {len(files)} files from {args.folder} to {args.repo_id} ...")
    url = publish(
        args.folder,
        args.repo_id,
        private=args.private,
        token=args.token,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
    )
    print(f"Done: {url}")
    return 0
