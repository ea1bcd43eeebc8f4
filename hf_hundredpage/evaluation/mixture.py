"""The count-based model and the neural model together (book §2.5 × §4): ``p = λ·p_KN + (1 − λ)·p_NN``.

Linear interpolation of a Kneser-Ney n-gram and a transformer is an old, strong trick: the n-gram remembers rare
exact phrases of the training text that a small network smooths away. The weight λ is fitted by maximum likelihood on
held-out text; to keep the reported number honest it is *cross-fitted*: the validation documents are split in two
halves, λ fitted on one half scores the other, so no token is scored with a λ fitted on it. The mixture's bits per
byte are reported beside both models' (`mixture_eval_*`), never instead of the transformer's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


LAMBDA_GRID = np.linspace(0.0, 1.0, 201)


def mixture_log_probs(nn_log_probs: np.ndarray, ngram_log_probs: np.ndarray, weight: float) -> np.ndarray:
    """``log(λ·p_KN + (1 − λ)·p_NN)`` per token; λ = 0 gives the neural model and λ = 1 the n-gram exactly."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the mixture weight must be in [0, 1], got {weight}")
    nn_log_probs, ngram_log_probs = np.asarray(nn_log_probs, np.float64), np.asarray(ngram_log_probs, np.float64)
    if weight == 0.0:
        return nn_log_probs
    if weight == 1.0:
        return ngram_log_probs
    return np.logaddexp(np.log(weight) + ngram_log_probs, np.log1p(-weight) + nn_log_probs)


def fit_mixture_weight(nn_log_probs: np.ndarray, ngram_log_probs: np.ndarray) -> float:
    """The λ of `LAMBDA_GRID` (steps of 0.005) that maximises the likelihood of the given tokens."""
    nn_log_probs, ngram_log_probs = np.asarray(nn_log_probs, np.float64), np.asarray(ngram_log_probs, np.float64)
    if nn_log_probs.size == 0:
        raise ValueError("no tokens to fit the mixture weight on")
    totals = [mixture_log_probs(nn_log_probs, ngram_log_probs, float(w)).sum() for w in LAMBDA_GRID]
    return float(LAMBDA_GRID[int(np.argmax(totals))])


def cross_fitted_mixture(
    nn_docs: Sequence[np.ndarray], ngram_docs: Sequence[np.ndarray]
) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Per-document mixture log-probabilities with λ cross-fitted over two halves of the documents (even and odd
    positions): each half is scored with the λ fitted on the other. Returns the log-probabilities and both λ."""
    if len(nn_docs) != len(ngram_docs):
        raise ValueError(f"{len(nn_docs)} neural and {len(ngram_docs)} n-gram documents: score the same texts")
    halves = [list(range(0, len(nn_docs), 2)), list(range(1, len(nn_docs), 2))]
    if not halves[1]:
        halves[1] = halves[0]  # one document: no held-out half exists, fit and score on it
    weights = []
    result: list[np.ndarray | None] = [None] * len(nn_docs)
    for scored, fitted in ((halves[0], halves[1]), (halves[1], halves[0])):
        weight = fit_mixture_weight(np.concatenate([nn_docs[i] for i in fitted]),
                                    np.concatenate([ngram_docs[i] for i in fitted]))
        weights.append(weight)
        for i in scored:
            result[i] = mixture_log_probs(nn_docs[i], ngram_docs[i], weight)
    return result, (weights[0], weights[1])


def mixture_section(metrics: dict, model_name: str, ngram_name: str) -> str:
    """The model card's table: the neural model, the n-gram and (when evaluated) their mixture, on the same text."""
    rows = [(model_name, "eval_"), (ngram_name, "ngram_eval_")]
    if "mixture_eval_bits_per_byte" in metrics:
        rows.append((f"mixture, λ = {metrics['mixture_weight']} (cross-fitted)", "mixture_eval_"))
    lines = ["Validation text, the same tokens for all rows (lower is better).", "",
             "| model | bits per byte | perplexity |", "|---|---|---|"]
    lines += [f"| {name} | {metrics[p + 'bits_per_byte']:.4f} | {metrics[p + 'perplexity']:.1f} |" for name, p in rows]
    if "mixture_eval_bits_per_byte" in metrics:
        lines += ["", "Generate from the mixture with `hf-hundredpage generate MODEL --ngram MODEL/ngram_baseline.npz`."]
    return "\n".join(lines)
