"""Preference-based alignment (book §6.4), library code only: the preference rate of greedy completions, the KL
divergence from the starting model, the length baseline of reward models, constitutional AI's critique-and-revise
data and the checks that preference training runs do before they train. The recipes (``recipes/dpo.py``, ``kto.py``,
``orpo.py``, ``reward.py``) put them around TRL's trainers, with the steps they share in `recipe`."""

from .constitutional import DEFAULT_CONSTITUTION, critique_and_revise, load_constitution, run_constitutional
from .kl import kl_to_reference
from .length_baseline import length_baseline_accuracy
from .lengths import check_preference_max_length, preference_lengths
from .preference_rate import (
    MATCH_TOKENS,
    PreferenceRateArguments,
    before_after,
    completion_ids,
    evaluate_preference_rate,
    reference_model,
)


__all__ = [
    "DEFAULT_CONSTITUTION",
    "MATCH_TOKENS",
    "PreferenceRateArguments",
    "before_after",
    "check_preference_max_length",
    "completion_ids",
    "critique_and_revise",
    "evaluate_preference_rate",
    "kl_to_reference",
    "length_baseline_accuracy",
    "load_constitution",
    "preference_lengths",
    "reference_model",
    "run_constitutional",
]
