"""Never train preference pairs on cut answers: a chosen or rejected answer cut by ``max_length`` (TRL truncates
prompt + answer from the end) compares two answers the model never sees whole. `check_preference_max_length` is the
SFT check (`hf_hundredpage.finetuning.sft.check_max_length`) over the sequences DPO / reward training builds."""

from __future__ import annotations

from .preference_rate import completion_ids


def preference_lengths(tokenizer, dataset) -> list[int]:
    """Tokens of prompt + chosen and of prompt + rejected for each row, as TRL's preference trainers build them
    (+ the EOS token they append to plain-text answers)."""
    lengths = []
    for row in dataset:
        eos = 0 if isinstance(row["chosen"], list) else 1
        for answer in (row["chosen"], row["rejected"]):
            prompt_ids, answer_ids = completion_ids(tokenizer, row["prompt"], answer)
            lengths.append(len(prompt_ids) + len(answer_ids) + eos)
    return lengths


def check_preference_max_length(training_args, tokenizer, data, model_max: int | None) -> str:
    """Raise ``max_length`` to the longest prompt + answer when the model's context allows it (the warning line),
    else refuse with the count of sequences that do not fit."""
    from ..finetuning.sft import check_max_length

    return check_max_length(training_args, tokenizer, data, model_max, lengths_of=preference_lengths)
