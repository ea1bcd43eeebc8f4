"""Instruction datasets for supervised finetuning (book §5.2-§5.3): ``train`` / ``validation`` / ``test`` splits of
TRL's conversational (``messages``) or prompt-completion types, from ``builtin:instructions``
(`hf_hundredpage.data.builtin.instructions`), a local ``.jsonl`` file or folder, a URL of JSON lines or a Hub id."""

from __future__ import annotations

from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from .builtin import BUILTIN_PREFIX
from .builtin.instructions import BUILTIN_INSTRUCTIONS
from .sources import complete_splits, load_source


def _to_messages(dataset: Dataset, instruction_column: str, response_column: str) -> Dataset:
    missing = [c for c in (instruction_column, response_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"columns {missing} not found (the dataset has {dataset.column_names}): fix instruction_column / response_column")

    def convert(row):
        return {"messages": [{"role": "user", "content": str(row[instruction_column]).strip()},
                             {"role": "assistant", "content": str(row[response_column]).strip()}]}

    return dataset.map(convert, remove_columns=dataset.column_names)


def _check_format(dataset: Dataset, split: str) -> None:
    columns = dataset.column_names
    if "messages" not in columns and not {"prompt", "completion"} <= set(columns):
        raise ValueError(
            f"the {split} split has columns {columns}; an instruction dataset needs 'messages' or 'prompt' and "
            "'completion' (or pass instruction_column and response_column to build messages from two text columns)"
        )


def load_instruction_dataset(
    dataset_name: str = BUILTIN_INSTRUCTIONS,
    dataset_config: str | None = None,
    *,
    instruction_column: str | None = None,
    response_column: str | None = None,
    num_examples: int = 1200,
    tasks: Sequence[str] | None = None,
    test_size: float = 0.1,
    seed: int = 42,
) -> DatasetDict:
    """An instruction dataset as ``train`` / ``validation`` / ``test`` splits of TRL's conversational or
    prompt-completion types.

    Args:
        dataset_name: ``builtin:instructions`` (`make_instruction_dataset`; `dataset_config` is its format,
            ``messages`` by default), a local ``.jsonl`` / ``.json`` / ``.parquet`` file, a folder of
            ``train*.jsonl`` / ``validation*.jsonl`` / ``test*.jsonl`` files, a URL of JSON lines, or a Hub id.
        dataset_config: the Hub configuration, or the built-in dataset's format.
        instruction_column, response_column: build ``messages`` (user: instruction, assistant: response) from
            two text columns, e.g. ``instruction`` / ``solution`` of the book's instruction data.
        num_examples, tasks: size and families of the built-in dataset.
        test_size: share of ``train`` carved out for a missing validation or test split (seeded).
        seed: seed of the built-in dataset and of the carving.
    """
    if dataset_name.startswith(BUILTIN_PREFIX):
        return load_source(dataset_name, dataset_config, builtin_options={"num_examples": num_examples, "tasks": tasks,
                                                                          "seed": seed})
    if (instruction_column is None) != (response_column is None):
        raise ValueError("instruction_column and response_column go together: pass both or neither")
    try:
        raw = load_source(dataset_name, dataset_config)
    except FileNotFoundError as err:  # the loader's advice is about any dataset: give the instruction one
        raise FileNotFoundError(
            f"no such file or directory: {err.filename}; pass {BUILTIN_INSTRUCTIONS}, a local .jsonl file or folder, "
            "or a Hub id"
        ) from None
    splits = complete_splits(raw, dataset_name, test_size, seed)
    for split, dataset in splits.items():
        if instruction_column is not None:
            dataset = splits[split] = _to_messages(dataset, instruction_column, response_column)
        _check_format(dataset, split)
    return DatasetDict({name: splits[name] for name in ("train", "validation", "test")})
