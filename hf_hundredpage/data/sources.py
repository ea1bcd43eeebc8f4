"""The one dataset loader of the package: the embedded corpus, ``builtin:`` datasets, a local file or folder, a URL
or a Hub id, with one-line errors that say what to pass (book §2.3, §3.7).

Every recipe and command reads its data through `load_source`; the task-specific loaders
(`hf_hundredpage.data.text`, `instructions`, `classification`) shape what it returns into the splits and
columns their trainers need.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict, load_dataset

from ..paths import looks_like_local_path
from .builtin import BUILTIN_PREFIX, load_builtin


logger = logging.getLogger(__name__)

EMBEDDED_CORPUS = "hundredpage-wiki"
_CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

# File suffix -> `datasets` packaged builder. Compressed variants (e.g. ``.jsonl.gz``) are read transparently.
_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"}
VALIDATION_ALIASES = ("validation", "valid", "val", "dev")
_SPLITS = ("train", "test", *VALIDATION_ALIASES)
WHAT_TO_PASS = (
    f"pass '{EMBEDDED_CORPUS}' (the embedded corpus), a builtin: dataset, a local .txt/.jsonl/.json/.csv/.parquet file, a local directory of "
    "train*/validation*/test* files, a URL or a Hub dataset id that is cached or reachable"
)


class MissingDatasetError(FileNotFoundError, ValueError):
    """A dataset path that does not exist (a `FileNotFoundError` and a `ValueError`); ``filename`` is the path."""

    def __init__(self, filename: str, message: str):
        super().__init__(message)
        self.filename = filename

    def __str__(self) -> str:
        return self.args[0]


def embedded_corpus_files() -> dict[str, str]:
    """Paths of the embedded ``hundredpage-wiki`` corpus, ``{"train": ..., "validation": ...}``.

    ~2.6 MB of English Wikipedia prose (CC BY-SA 3.0, see ``corpus/LICENSE_AND_ATTRIBUTION.md``), one paragraph
    per line, gzip-compressed; rebuilt by ``python -m hf_hundredpage.data.corpus.build_corpus``.
    """
    files = {split: _CORPUS_DIR / f"{split}.txt.gz" for split in ("train", "validation")}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"Embedded corpus file {path} is missing; rebuild it with "
                "`python -m hf_hundredpage.data.corpus.build_corpus` or reinstall hf_hundredpage."
            )
    return {split: str(path) for split, path in files.items()}


def default_tokenizer_path() -> str:
    """Folder of the default tokenizer: byte-level BPE, vocabulary 8192, trained on the embedded corpus (§2.3)."""
    path = _CORPUS_DIR / "tokenizer"
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"Default tokenizer missing from {path}; rebuild it with "
            "`python -m hf_hundredpage.data.corpus.build_corpus` or reinstall hf_hundredpage."
        )
    return str(path)


def _builder_for(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return _BUILDERS.get(suffixes[-1]) if suffixes else None


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def _hub_offline_from_env():
    """Honour ``HF_HUB_OFFLINE=1`` even when it was set after `datasets`/`huggingface_hub` were imported.

    Both libraries read the variable once at import; without this a process that sets it later (a notebook, a
    test) would still retry the network for ~20 s before failing.
    """
    import datasets.config
    import huggingface_hub.constants

    if datasets.config.HF_HUB_OFFLINE or not (_env_true("HF_HUB_OFFLINE") or _env_true("HF_DATASETS_OFFLINE")):
        yield
        return
    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _is_empty_file(path: Path) -> bool:
    """True for a file with no content but whitespace (read through gzip for ``.gz``)."""
    if path.stat().st_size == 0:
        return True
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return not f.read(1 << 16).strip() and not f.read(1)
    except OSError:
        return False


def _check_not_empty(files: Iterable[Path]) -> None:
    for file in files:
        if _is_empty_file(file):
            raise ValueError(f"{file} is empty: put at least one example in it (one JSON object or text line per row)")


def _split_files(folder: Path) -> dict[str, list[str]]:
    """``train*`` / ``validation*`` / ``test*`` data files of a folder, by split (as `datasets` infers them)."""
    files: dict[str, list[str]] = {}
    for split in _SPLITS:
        found = [str(p) for p in sorted(folder.glob(f"{split}*")) if p.is_file() and _builder_for(p)]
        if found:
            files[split] = found
    return files


def load_source(
    dataset_name: str,
    dataset_config: str | None = None,
    *,
    streaming: bool = False,
    builtin_options: dict | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Load `dataset_name` as a ``DatasetDict`` (``IterableDatasetDict`` when streaming) of the source's splits.

    Args:
        dataset_name: ``hundredpage-wiki`` (the embedded corpus); ``builtin:NAME`` (`hf_hundredpage.data.builtin`,
            generated offline; `dataset_config` and `builtin_options` go to its generator); a local file (``.txt``:
            one row per line, ``.jsonl``/``.json``/``.csv``/``.parquet``, optionally compressed); a local folder
            of ``train*``/``validation*``/``test*`` files; an ``http(s)://`` URL of such a file; or a Hub id.
        dataset_config: the Hub configuration name, or the built-in dataset's configuration.
        streaming: read lazily instead of caching to Arrow.

    Raises:
        ValueError: one line that names the argument and says what to pass: an unknown built-in, a path that does
            not exist, an empty or unreadable file, a folder without train files, an unreachable Hub.
    """
    if dataset_name.startswith(BUILTIN_PREFIX):
        return load_builtin(dataset_name, dataset_config, **(builtin_options or {}))
    if dataset_name == EMBEDDED_CORPUS:
        return load_dataset("text", data_files=embedded_corpus_files(), streaming=streaming)

    path = Path(dataset_name).expanduser()
    if path.is_file():
        builder = _builder_for(path)
        if builder is None:
            raise ValueError(
                f"cannot read {path}: unsupported file type; use .txt, .jsonl, .json, .csv or .parquet "
                "(optionally .gz-compressed)"
            )
        _check_not_empty([path])
        return _load(builder, {"train": str(path)}, streaming, dataset_name)
    if path.is_dir():
        files = _split_files(path)
        if "train" not in files:
            raise ValueError(
                f"{path} has no train* data file: put train.jsonl (or .txt/.csv/.parquet), and optionally "
                "validation.jsonl and test.jsonl, in it"
            )
        builders = {_builder_for(Path(f)) for found in files.values() for f in found}
        if len(builders) > 1:
            raise ValueError(f"{path} mixes data formats ({sorted(builders)}): keep one format per folder")
        _check_not_empty(Path(f) for found in files.values() for f in found)
        return _load(builders.pop(), files, streaming, dataset_name)
    if dataset_name.startswith(("http://", "https://")):
        builder = _builder_for(Path(dataset_name.split("?", 1)[0])) or "json"
        return _load(builder, {"train": dataset_name}, streaming, dataset_name)
    if looks_like_local_path(dataset_name) or _builder_for(path) is not None:
        raise MissingDatasetError(dataset_name, f"No such file or directory: {dataset_name}; {WHAT_TO_PASS}")

    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub.errors import HfHubHTTPError

    try:
        with _hub_offline_from_env():
            return load_dataset(dataset_name, dataset_config, streaming=streaming)
    except (ConnectionError, DatasetNotFoundError, FileNotFoundError, HfHubHTTPError) as err:
        raise ValueError(
            f"Could not load '{dataset_name}' from the Hugging Face Hub ({type(err).__name__}: the Hub is "
            f"unreachable, offline mode is on, or the id does not exist); {WHAT_TO_PASS}"
        ) from err


def _load(builder: str, data_files: dict, streaming: bool, dataset_name: str):
    try:
        return load_dataset(builder, data_files=data_files, streaming=streaming)
    except (ValueError, OSError, StopIteration) as err:  # malformed JSON/CSV, a URL that cannot be read
        raise ValueError(f"cannot read {dataset_name} ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})") from None
    except Exception as err:  # noqa: BLE001  (datasets wraps parser errors in DatasetGenerationError)
        cause = err.__cause__ or err
        raise ValueError(f"cannot read {dataset_name} ({type(cause).__name__}: {(str(cause).splitlines() or [''])[0]})") from None


def column_names(ds: Dataset | IterableDataset) -> list[str]:
    """Column names of a split; streaming JSON has no schema until its first row is read."""
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds), None)
    return list(first) if first is not None else []


def check_columns(ds: Dataset | IterableDataset, columns: Iterable[str], split: str, hint: str) -> None:
    """One-line error naming the first missing column, the split's columns and `hint` (the flag that fixes it)."""
    present = column_names(ds)
    missing = [column for column in columns if column not in present]
    if missing:
        raise ValueError(f"column {missing[0]!r} not found in the {split} split; it has columns {present}: {hint}")


def validation_split_name(raw) -> str | None:
    """The source's validation split under any of its usual names (validation / valid / val / dev)."""
    return next((name for name in VALIDATION_ALIASES if name in raw), None)


def complete_splits(raw, dataset_name: str, test_size: float, seed: int) -> DatasetDict:
    """``train`` / ``validation`` / ``test`` of a loaded source: its own splits (the validation split under any usual
    name), and a seeded share `test_size` of ``train`` carved out for each one it lacks."""
    splits: dict[str, Dataset] = {"train": raw["train"]} if "train" in raw else {}
    if not splits:
        raise ValueError(f"{dataset_name} has no train split (splits: {list(raw)})")
    validation = validation_split_name(raw)
    if validation is not None:
        splits["validation"] = raw[validation]
    if "test" in raw:
        splits["test"] = raw["test"]
    for missing in ("test", "validation"):
        if missing not in splits:
            if len(splits["train"]) < 3:
                raise ValueError(f"{dataset_name} has {len(splits['train'])} train rows: too few to carve a {missing} split")
            carved = splits["train"].train_test_split(test_size=test_size, seed=seed, shuffle=True)
            splits["train"], splits[missing] = carved["train"], carved["test"]
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})
