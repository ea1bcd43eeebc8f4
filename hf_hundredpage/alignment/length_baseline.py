"""The "longer answer wins" baseline of a reward model (book §6.4): human and model preferences often favour the
longer answer, so a reward model is only worth its training when it beats this rule on held-out pairs."""

from __future__ import annotations

from ..data.preferences import answer_text


def length_baseline_accuracy(dataset) -> float:
    """Share of pairs whose chosen answer is longer (in characters) than the rejected one; ties count one half."""
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty: pass a test split with at least one preference pair")
    score = 0.0
    for chosen, rejected in zip(dataset["chosen"], dataset["rejected"]):
        chosen_length, rejected_length = len(answer_text(chosen)), len(answer_text(rejected))
        score += 1.0 if chosen_length > rejected_length else 0.5 if chosen_length == rejected_length else 0.0
    return score / len(dataset)
