"""Preference datasets for alignment (book §6.4): ``train`` / ``validation`` / ``test`` splits of TRL's preference
type (``prompt`` / ``chosen`` / ``rejected``, as strings or as lists of turns), from ``builtin:preferences``
(`hf_hundredpage.data.builtin.preferences`), a local ``.jsonl`` file or folder, a URL of JSON lines or a Hub id, all
read through `load_source`.

Checked before anything trains, each failure one `ValueError` that names the column: ``chosen`` or ``rejected``
missing, a ``chosen`` / ``rejected`` answer that is empty, and ``chosen`` equal to ``rejected`` on every row (the
columns were probably duplicated; there is nothing to prefer). A dataset whose prompt is implicit (conversations in
``chosen`` and ``rejected`` that start with the same turns) gets its ``prompt`` column with TRL's
`maybe_extract_prompt`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict
from trl.data_utils import maybe_extract_prompt

from ..recipe_parser import RunArguments
from .builtin import BUILTIN_PREFIX
from .builtin.preferences import BUILTIN_PREFERENCES
from .sources import check_columns, complete_splits, load_source


@dataclass
class PreferenceDataArguments(RunArguments):
    """The data keys of the preference recipes (dpo, kto, orpo, reward), as `load_preference_dataset` takes them."""

    dataset_name: str = field(
        default=BUILTIN_PREFERENCES, metadata={"help": "builtin:preferences, a local .jsonl file or folder, a URL or a Hub id"}
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Hub configuration; for builtin:preferences, pairs or pairs-conversational"}
    )
    dataset_num_examples: int = field(default=600, metadata={"help": "size of builtin:preferences"})
    dataset_test_size: float = field(default=0.1, metadata={"help": "share of train carved out for a missing split"})


HINT = "a preference dataset needs 'chosen' and 'rejected' columns (and 'prompt', unless it is in the conversations)"


def answer_text(value) -> str:
    """An answer's text: a string, or the contents of its turns."""
    if isinstance(value, list):
        return "".join(str(turn.get("content") or "") if isinstance(turn, dict) else str(turn) for turn in value)
    return "" if value is None else str(value)


def check_preference_split(dataset: Dataset, split: str) -> Dataset:
    """Check one split (see the module docstring) and return it with an explicit ``prompt`` column."""
    check_columns(dataset, ("chosen", "rejected"), split, HINT)
    if len(dataset) == 0:
        raise ValueError(f"the {split} split is empty: put at least one preference pair in it")
    for column in ("chosen", "rejected"):
        empty = [i for i, value in enumerate(dataset[column]) if not answer_text(value).strip()]
        if empty:
            raise ValueError(f"column {column!r} is empty in {len(empty)} of {len(dataset)} rows of the {split} split "
                             f"(first: row {empty[0]}): every pair needs two non-empty answers")
    if all(c == r for c, r in zip(dataset["chosen"], dataset["rejected"])):
        raise ValueError(f"column 'rejected' equals column 'chosen' on every row of the {split} split: nothing to prefer "
                         "(was a column duplicated?)")
    if "prompt" not in dataset.column_names:
        dataset = dataset.map(maybe_extract_prompt)
    check_columns(dataset, ("prompt",), split, HINT)
    return dataset


def load_preference_dataset(
    dataset_name: str = BUILTIN_PREFERENCES,
    dataset_config: str | None = None,
    *,
    num_examples: int = 600,
    test_size: float = 0.1,
    seed: int = 42,
) -> DatasetDict:
    """A checked preference dataset as ``train`` / ``validation`` / ``test`` splits.

    Args:
        dataset_name: ``builtin:preferences`` (`dataset_config` ``pairs`` or ``pairs-conversational``), a local
            ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder of ``train*`` / ``validation*`` / ``test*`` files, a
            URL of JSON lines, or a Hub id.
        dataset_config: the Hub configuration, or the built-in dataset's configuration.
        num_examples: size of the built-in dataset.
        test_size: share of ``train`` carved out for a missing validation or test split (seeded).
        seed: seed of the built-in dataset and of the carving.
    """
    if dataset_name.startswith(BUILTIN_PREFIX):
        raw = load_source(dataset_name, dataset_config, builtin_options={"num_examples": num_examples, "seed": seed})
    else:
        raw = load_source(dataset_name, dataset_config)
    splits = complete_splits(raw, dataset_name, test_size, seed)
    return DatasetDict({split: check_preference_split(data, split) for split, data in splits.items()})
