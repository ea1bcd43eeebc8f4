"""The one answer to "is this argument a local path or a Hub id?" for every model, tokenizer and dataset argument.

A name that exists on disk is local. A name that cannot be a Hub id (absolute, ``./x``, ``~/x``, ``a/b/c``, a
backslash) or whose first component is an existing local folder (``out/nope`` next to an ``out/`` folder) is a
local path, and a missing one fails at once with one line that names it, instead of ~60 s of Hub retries that end
in a network error. Anything else is a Hub id; `resolve_model_path` asks the Hub once (or the local cache when
offline) so that a typo or an unreachable Hub is also one line, before any output is touched.
"""

from __future__ import annotations

import os
from pathlib import Path


def looks_like_local_path(name: str) -> bool:
    """Whether `name` can only mean a local path (see the module docstring); existing paths included."""
    name = os.fspath(name)
    if os.path.exists(os.path.expanduser(name)):
        return True
    if os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1:
        return True
    head, sep, _ = name.partition("/")
    return bool(sep) and os.path.isdir(head)


def _hub_is_offline() -> bool:
    return any(os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"} for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub_model(repo_id: str, what: str = "model") -> None:
    """Raise `FileNotFoundError` (one line) when `repo_id` is neither cached nor on a reachable Hub.

    Errors other than "not found" / "unreachable" (a gated or private repo, rate limits) are left to
    ``from_pretrained``, which reports them with the token advice the user needs.
    """
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except HFValidationError:
        raise FileNotFoundError(f"{what} {repo_id} is not a local folder nor a valid Hub id: pass an existing folder") from None
    if isinstance(cached, str):
        return
    if _hub_is_offline():
        raise FileNotFoundError(
            f"{what} {repo_id} is not a local folder and the Hub is offline (HF_HUB_OFFLINE) with no cached copy: "
            "pass an existing folder"
        )
    try:
        HfApi().model_info(repo_id, timeout=10)
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{what} {repo_id} is not a local folder nor a model on the Hugging Face Hub: pass an existing folder or a Hub id") from None
    except Exception as err:  # noqa: BLE001  (httpx/requests errors differ across huggingface_hub versions)
        if "401" in str(err) or "403" in str(err) or "gated" in str(err).lower():
            return
        raise FileNotFoundError(
            f"{what} {repo_id} is not a local folder and the Hugging Face Hub could not be reached "
            f"({type(err).__name__}): pass an existing folder, or check the network"
        ) from None


def resolve_model_path(name_or_path: str, what: str = "model folder", check_hub: bool = True) -> str:
    """A local folder as an absolute path (so that adapters record where their base is), a Hub id unchanged.

    Raises:
        FileNotFoundError: a path-like name that does not exist, a file instead of a folder, or (``check_hub``) a
            Hub id that is neither cached nor found on a reachable Hub. The message names the argument.
    """
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{name} is a file: pass the {what} (with config.json) or a Hub id")
        return str(path.resolve())
    if looks_like_local_path(name):
        raise FileNotFoundError(f"{what} {name} does not exist: pass an existing folder or a Hub id")
    if check_hub:
        check_hub_model(name, what.replace(" folder", ""))
    return name
