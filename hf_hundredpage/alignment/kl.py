"""How far alignment moved the model (book §6.4): the KL divergence from the model before training.

DPO's and KTO's losses keep the policy near the reference through ``beta``; what they log is the reward margin, not
the distance. `kl_to_reference` measures it on held-out pairs: at every position of the chosen and the rejected
answer (prompt + answer tokenized as TRL's preference trainers do, `completion_ids`), the exact divergence of the
next-token distributions over the whole vocabulary,

    KL(policy ‖ reference) = Σ_v p(v) (log p(v) − log q(v)),

averaged over the answer positions (nats per token). Exact per position, not a sampled estimate: the same pairs
give the same number, and 0 means the model is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F

from .preference_rate import completion_ids


def _answer_batches(tokenizer, dataset, max_examples: int | None, batch_size: int):
    """Right-padded ``(input_ids, attention_mask, answer_mask)`` batches, one sequence per (row, answer); the
    answer mask marks the positions whose next token is an answer token."""
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    sequences = []
    for i in range(count):
        row = dataset[i]
        for answer in (row["chosen"], row["rejected"]):
            prompt_ids, answer_ids = completion_ids(tokenizer, row["prompt"], answer)
            if answer_ids:
                sequences.append((prompt_ids + answer_ids, len(prompt_ids)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        answer = torch.zeros((len(chunk), width), dtype=torch.bool)
        for j, (ids, prompt_length) in enumerate(chunk):
            input_ids[j, :len(ids)] = torch.tensor(ids)
            attention[j, :len(ids)] = 1
            answer[j, prompt_length - 1:len(ids) - 1] = True  # logits at p predict token p + 1
        yield input_ids, attention, answer


@torch.no_grad()
def _log_probs(model, input_ids, attention_mask) -> torch.Tensor:
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
    return F.log_softmax(logits.float(), dim=-1).cpu()


def kl_to_reference(
    model,
    reference: Callable[[], AbstractContextManager],
    tokenizer,
    dataset,
    *,
    max_examples: int | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Mean per-token KL(`model` ‖ reference) in nats over the answer positions of `dataset`'s preference pairs.

    Args:
        reference: called for every batch, a context manager that yields the reference model (`reference_context`:
            the base with its adapter disabled, a frozen copy, or the starting checkpoint loaded again).

    Returns:
        ``{"kl": float, "max_kl": float (the largest position), "num_tokens": int}``.
    """
    was_training = model.training
    model.eval()
    total, largest, tokens = 0.0, 0.0, 0
    for input_ids, attention, answer in _answer_batches(tokenizer, dataset, max_examples, batch_size):
        policy = _log_probs(model, input_ids, attention)
        with reference() as ref_model:
            ref = _log_probs(ref_model, input_ids, attention)
        per_position = (policy.exp() * (policy - ref)).sum(-1)[answer].clamp_min(0.0)  # rounding can dip below 0
        total += per_position.sum().item()
        largest = max(largest, per_position.max().item()) if per_position.numel() else largest
        tokens += per_position.numel()
    model.train(was_training)
    if tokens == 0:
        raise ValueError("the evaluation dataset has no answer tokens: pass a test split with non-empty answers")
    return {"kl": total / tokens, "max_kl": largest, "num_tokens": tokens}
