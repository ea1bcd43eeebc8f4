"""Evaluation: language models (`lm`: perplexity and bits per byte, book §2.6, with the ``hf-hundredpage evaluate``
command), the count-based n-gram baseline (`ngram`, §2.5), classifiers against their baselines (`classification`,
§2.1, §5.6) and exact match of greedy answers (`exact_match`, §5.3)."""

from .lm import (
    bits_per_byte,
    evaluate_against_ngram,
    evaluate_causal_lm,
    evaluate_ngram,
    fit_ngram_baseline,
    format_comparison_table,
    load_metric,
    perplexity,
)
from .ngram import NGramLanguageModel


__all__ = [
    "NGramLanguageModel",
    "bits_per_byte",
    "evaluate_against_ngram",
    "evaluate_causal_lm",
    "evaluate_ngram",
    "fit_ngram_baseline",
    "format_comparison_table",
    "load_metric",
    "perplexity",
]
