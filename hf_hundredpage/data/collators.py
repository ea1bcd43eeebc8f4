"""Collators for the datasets of `hf_hundredpage.data.packing`."""

from __future__ import annotations

from collections.abc import Callable


def pad_collator(tokenizer, pad_to_multiple_of: int | None = None) -> Callable[[list[dict]], dict]:
    """A collator for unpadded rows (e.g. from `sentence_dataset`): pads ``input_ids`` with the pad token and
    ``attention_mask`` with 0 on ``tokenizer.padding_side``, and sets the padded ``labels`` to -100 so that padding
    is never a target (rows without ``labels`` get ``labels`` = ``input_ids``). Padding is located by length,
    not by token id, so it stays correct when the pad token equals EOS.
    """
    import torch

    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad_token; set one (e.g. tokenizer.pad_token = tokenizer.eos_token).")
    pad_id, left = tokenizer.pad_token_id, tokenizer.padding_side == "left"

    def collate(features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty batch.")
        width = max(len(f["input_ids"]) for f in features)
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(features), width), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(features), width), dtype=torch.long),
            "labels": torch.full((len(features), width), -100, dtype=torch.long),
        }
        for row, feature in enumerate(features):
            ids = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            labels = torch.as_tensor(feature.get("labels", feature["input_ids"]), dtype=torch.long)
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            batch["input_ids"][row, span] = ids
            batch["attention_mask"][row, span] = 1
            batch["labels"][row, span] = labels
        return batch

    return collate
