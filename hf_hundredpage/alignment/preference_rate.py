"""The preference rate (book §6.4): on held-out prompts, how often the model's own greedy answer is the preferred one.

Reward accuracy (what DPO logs) says whether the model gives the chosen answer a higher likelihood ratio than the
rejected one; the preference rate says what the model actually answers. For each test row the prompt is completed
greedily (`hf_hundredpage.generation.greedy_complete`, until the chat template's end-of-turn token) and compared with
the two answers, tokenized as TRL's preference trainers tokenize them (the tokens of prompt + answer after the
prompt's tokens, cut before the first stop token):

* the completion **matches an answer** when it starts with that answer's first ``k`` tokens, where
  ``k = min(len(answer), max(MATCH_TOKENS, d + 1))`` and ``d`` is the number of leading tokens the two answers share
  (so ``k`` always reaches the first token where they differ, when the answer has it);
* when both match (one answer is a prefix of the other), the longer match wins; a completion that matches neither
  counts as ``neither``.

On ``builtin:preferences`` the answers differ at their first token, so the rate is exact there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.preferences import PreferenceDataArguments
from ..generation import greedy_complete, stop_token_ids


MATCH_TOKENS = 8  # leading tokens of an answer a completion must reproduce to count as that answer


@dataclass
class PreferenceRateArguments(PreferenceDataArguments):
    """The keys of the recipes that report the preference rate (dpo, kto): the data keys and the evaluation's size."""

    eval_max_examples: int | None = field(default=None, metadata={"help": "cap the test prompts of the preference rate"})


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def completion_ids(tokenizer, prompt, answer) -> tuple[list[int], list[int]]:
    """``(prompt_ids, answer_ids)`` as TRL's preference trainers tokenize a row: the prompt (through the chat template
    with its generation prompt when conversational), and the tokens of prompt + answer after their common prefix."""
    if _is_conversation(prompt):
        prompt_ids = tokenizer(tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
                               add_special_tokens=False).input_ids
        full = tokenizer(tokenizer.apply_chat_template(prompt + answer, tokenize=False),
                         add_special_tokens=False).input_ids
    else:
        prompt_ids = tokenizer(prompt).input_ids
        full = tokenizer(prompt + answer).input_ids
    return prompt_ids, full[_common_prefix(prompt_ids, full):]


def _cut(ids: list[int], stop_ids: list[int]) -> list[int]:
    return next((ids[:i] for i, token in enumerate(ids) if token in stop_ids), ids)


def classify_completion(completion: list[int], chosen: list[int], rejected: list[int]) -> str:
    """``"chosen"``, ``"rejected"`` or ``"neither"`` for a completion's token ids (the rule of the module docstring)."""
    shared = _common_prefix(chosen, rejected)
    k_chosen = min(len(chosen), max(MATCH_TOKENS, shared + 1))
    k_rejected = min(len(rejected), max(MATCH_TOKENS, shared + 1))
    is_chosen = k_chosen > 0 and completion[:k_chosen] == chosen[:k_chosen]
    is_rejected = k_rejected > 0 and completion[:k_rejected] == rejected[:k_rejected]
    if is_chosen and is_rejected:
        if k_chosen == k_rejected:
            return "neither"
        return "chosen" if k_chosen > k_rejected else "rejected"
    return "chosen" if is_chosen else "rejected" if is_rejected else "neither"


def evaluate_preference_rate(
    model, tokenizer, dataset, *, max_examples: int | None = None, batch_size: int = 32
) -> dict[str, Any]:
    """Share of greedy completions of `dataset`'s prompts that are the chosen answer, the rejected one, or neither.

    Returns:
        ``{"chosen": float, "rejected": float, "neither": float, "num_examples": int, "predictions": [{"prompt",
        "completion", "match"}]}``; the three rates sum to 1.
    """
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    if count == 0:
        raise ValueError("the evaluation dataset is empty: pass a test split with at least one preference pair")
    stop_ids = stop_token_ids(tokenizer)
    rows, prompts = [], []
    for i in range(count):
        example = dataset[i]
        prompt_ids, chosen = completion_ids(tokenizer, example["prompt"], example["chosen"])
        _, rejected = completion_ids(tokenizer, example["prompt"], example["rejected"])
        rows.append((_cut(chosen, stop_ids), _cut(rejected, stop_ids)))
        prompts.append(prompt_ids)
    budget = max(min(len(ids), max(MATCH_TOKENS, _common_prefix(*pair) + 1)) for pair in rows for ids in pair)
    completions = greedy_complete(model, prompts, max_new_tokens=max(1, budget), stop_ids=stop_ids,
                                  pad_token_id=tokenizer.pad_token_id, batch_size=batch_size)
    predictions = []
    for prompt_ids, (chosen, rejected), (tokens, _) in zip(prompts, rows, completions):
        predictions.append({"prompt": tokenizer.decode(prompt_ids), "completion": tokenizer.decode(tokens),
                            "match": classify_completion(tokens, chosen, rejected)})
    rates = {key: sum(p["match"] == key for p in predictions) / count for key in ("chosen", "rejected", "neither")}
    return {**rates, "num_examples": count, "predictions": predictions}


def before_after(
    before: dict[str, Any], after: dict[str, Any], aligned_by: str, accuracy: float | None = None
) -> dict[str, Any]:
    """What an alignment recipe reports from two `evaluate_preference_rate` results (the model before and after
    `aligned_by`, e.g. ``"DPO"``) and the trainer's validation reward accuracy (when it logs one): ``metrics`` (for metrics.json),
    ``predictions`` (one row per test prompt, both completions) and ``table``, the printed results table."""
    from ..training.run import format_table

    metrics = {"eval_preference_rate_before": before["chosen"], "eval_preference_rate_after": after["chosen"],
               "eval_rejected_rate_before": before["rejected"], "eval_rejected_rate_after": after["rejected"],
               "eval_neither_rate_before": before["neither"], "eval_neither_rate_after": after["neither"],
               "eval_num_examples": after["num_examples"]}
    predictions = [{"prompt": b["prompt"], "completion_before": b["completion"], "match_before": b["match"],
                    "completion_after": a["completion"], "match_after": a["match"]}
                   for b, a in zip(before["predictions"], after["predictions"])]
    rows = [[f"before {aligned_by}", f"{before['chosen']:.3f}", f"{before['rejected']:.3f}"],
            [f"after {aligned_by}", f"{after['chosen']:.3f}", f"{after['rejected']:.3f}"]]
    header = ["model", f"greedy = chosen ({after['num_examples']} test prompts)", "greedy = rejected"]
    if accuracy is not None:
        rows[0].append("–")
        rows[1].append(f"{accuracy:.3f}")
        header.append("validation reward accuracy")
    table = format_table([tuple(row) for row in rows], header=tuple(header))
    return {"metrics": metrics, "predictions": predictions, "table": table}


def reference_model(model, *, use_peft: bool, precompute_ref_log_probs: bool):
    """The reference model a DPO / KTO trainer compares the policy with, and how the run names it: with adapters the
    base model with its adapter disabled (TRL does it; None), with precomputed reference log-probabilities none kept
    (None), else a frozen copy of the model before training."""
    import copy

    if use_peft:
        return None, "base without adapter"
    if precompute_ref_log_probs:
        return None, "precomputed"
    return copy.deepcopy(model).eval().requires_grad_(False), "frozen copy"
