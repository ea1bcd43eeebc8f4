"""What GRPO (book §6.5) changed, measured on held-out prompts: the model's greedy answers scored by the run's own
reward functions (mean per function and weighted total, as `GRPOTrainer` combines them) and, when the data has an
``answer`` column, their accuracy (`rewards.is_correct`). Plus the reward curve of a run's log history."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..generation import greedy_complete, stop_token_ids
from .rewards import completion_text, is_correct


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def prompt_ids(tokenizer, prompt) -> list[int]:
    """A prompt's token ids as `GRPOTrainer` tokenizes it: through the chat template with the generation prompt when
    conversational, else the text with the tokenizer's special tokens."""
    if _is_conversation(prompt):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False).input_ids
    return tokenizer(text=prompt).input_ids


def score(reward_funcs: Sequence[Callable], weights: Sequence[float] | None, rows: list[dict], completions: list,
          completion_ids: list[list[int]]) -> tuple[dict[str, list[float]], list[float]]:
    """Each function's rewards and the weighted total per completion (None counts as missing, as in TRL's nansum)."""
    columns = {key: [row[key] for row in rows] for key in rows[0] if key not in ("prompt", "completion")}
    kwargs = dict(columns, prompts=[row["prompt"] for row in rows], completion_ids=completion_ids, trainer_state=None,
                  log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)
    per_func = {getattr(f, "__name__", str(f)): list(f(completions=completions, **kwargs)) for f in reward_funcs}
    weights = list(weights) if weights is not None else [1.0] * len(reward_funcs)
    totals = [sum(w * r for w, r in zip(weights, values) if r is not None and not math.isnan(r))
              for values in zip(*per_func.values())]
    return per_func, totals


def _mean(values: list) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def evaluate_rewards(model, tokenizer, dataset, reward_funcs: Sequence[Callable], *, weights: Sequence[float] | None = None,
                     max_new_tokens: int = 64, max_examples: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Greedy completions of the dataset's prompts (until the chat template's end of turn or `max_new_tokens`), scored.

    Returns:
        ``{"reward": mean weighted total, "rewards": {name: mean}, "accuracy": share correct or None without an
        ``answer`` column, "num_examples", "predictions": [{"prompt", "completion", "rewards", "reward", "correct"}]}``.
    """
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    rows = [dataset[i] for i in range(count)]
    if not rows:
        raise ValueError("the evaluation split is empty: pass a test split with at least one prompt")
    ids = [prompt_ids(tokenizer, row["prompt"]) for row in rows]
    generated = greedy_complete(model, ids, max_new_tokens=max_new_tokens, stop_ids=stop_token_ids(tokenizer),
                                pad_token_id=tokenizer.pad_token_id, batch_size=batch_size)
    texts = [tokenizer.decode(tokens, skip_special_tokens=True) for tokens, _ in generated]
    conversational = _is_conversation(rows[0]["prompt"])
    completions = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
    per_func, totals = score(reward_funcs, weights, rows, completions, [tokens for tokens, _ in generated])
    has_answer = "answer" in rows[0]
    correct = [is_correct(c, row["answer"]) for c, row in zip(completions, rows)] if has_answer else [None] * count
    predictions = [{"prompt": row["prompt"] if conversational else str(row["prompt"]), "completion": completion_text(c),
                    "rewards": {name: values[i] for name, values in per_func.items()}, "reward": totals[i],
                    "correct": correct[i], "stopped": generated[i][1]}
                   for i, (row, c) in enumerate(zip(rows, completions))]
    return {"reward": _mean(totals), "rewards": {name: _mean(values) for name, values in per_func.items()},
            "accuracy": sum(correct) / count if has_answer else None, "num_examples": count, "predictions": predictions}


def plot_reward_curve(log_history: list[dict], path: str | os.PathLike, names: Sequence[str],
                      title: str = "GRPO") -> Path:
    """The mean reward of the sampled completions (weighted total and per function) against steps, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key, label in [("reward", "total (weighted)"), *((f"rewards/{n}/mean", n) for n in names)]:
        points = [(e["step"], e[key]) for e in log_history if e.get(key) is not None and "eval_loss" not in e]
        if points:
            ax.plot(*zip(*points), label=label, linewidth=1.5 if key == "reward" else 1.0)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean reward of sampled completions")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load_prompt_dataset(dataset_name: str, dataset_config: str | None, *, seed: int, test_size: float = 0.1,
                        builtin_options: dict | None = None):
    """``train`` / ``validation`` / ``test`` splits of prompts for GRPO through the one loader
    (`hf_hundredpage.data.sources.load_source`): ``builtin:arithmetic`` (its ``grpo`` configuration by default), a
    local .jsonl file or folder, a URL or a Hub id; missing validation / test splits are carved out of train. Every
    split needs a ``prompt`` column (standard or conversational); the other columns go to the reward functions."""
    from ..data.sources import check_columns, complete_splits, load_source

    raw = load_source(dataset_name, dataset_config, builtin_options={**(builtin_options or {}), "seed": seed}
                      if dataset_name.startswith("builtin:") else None)
    splits = complete_splits(raw, dataset_name, test_size, seed)
    for split, data in splits.items():
        check_columns(data, ("prompt",), split, "GRPO needs a 'prompt' column (text or a list of turns); the other "
                      "columns (e.g. 'answer') are passed to the reward functions")
        if len(data) == 0:
            raise ValueError(f"the {split} split of {dataset_name} is empty: put at least one prompt in it")
    return splits


def before_after_metrics(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's evaluation keys: ``eval_reward_before/after``, ``eval_reward_<name>_before/after`` and, with an
    ``answer`` column, ``eval_accuracy_before/after``."""
    metrics = {"eval_reward_before": before["reward"], "eval_reward_after": after["reward"],
               "eval_num_examples": after["num_examples"]}
    for name in after["rewards"]:
        metrics[f"eval_reward_{name}_before"] = before["rewards"][name]
        metrics[f"eval_reward_{name}_after"] = after["rewards"][name]
    if after["accuracy"] is not None:
        metrics.update(eval_accuracy_before=before["accuracy"], eval_accuracy_after=after["accuracy"])
    return metrics


def train_reward_trend(log_history: list[dict], names: Sequence[str]) -> dict[str, Any]:
    """Mean reward of the sampled completions at the first and last logged training steps (total and per function)."""
    logged = [e for e in log_history if "reward" in e and "eval_loss" not in e and not any(k.startswith("eval_") for k in e)]
    if not logged:
        return {}
    first, last = logged[0], logged[-1]
    trend = {"train_reward_first": first["reward"], "train_reward_last": last["reward"]}
    for name in names:
        key = f"rewards/{name}/mean"
        if key in first and key in last:
            trend[f"train_reward_{name}_first"], trend[f"train_reward_{name}_last"] = first[key], last[key]
    return trend


def before_after_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The run's closing table: weighted reward, each function's mean and (with answers) accuracy, before and after."""
    from ..training.run import format_table

    names, has_accuracy = list(after["rewards"]), after["accuracy"] is not None

    def cells(result):
        values = (result["reward"], *(result["rewards"][n] for n in names), *([result["accuracy"]] if has_accuracy else []))
        return tuple("n/a" if value is None else f"{value:.3f}" for value in values)

    return format_table([("before GRPO", *cells(before)), ("after GRPO", *cells(after))],
                        header=("model", "test reward", *names, *(["test accuracy"] if has_accuracy else [])))


def card_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The card's figures of one evaluation: ``test_reward`` and, with answers, ``test_accuracy``."""
    return {"test_reward": result["reward"], **({"test_accuracy": result["accuracy"]} if result["accuracy"] is not None else {})}
