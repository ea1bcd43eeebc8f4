"""Preference-based alignment (book §6.4), library code only: the preference rate of greedy completions, the length
baseline of reward models and the checks that preference training runs do before they train. The recipes
(``recipes/dpo.py``, ``recipes/reward.py``) put them around TRL's trainers, the shared steps in `recipe`."""

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
    "MATCH_TOKENS",
    "PreferenceRateArguments",
    "before_after",
    "check_preference_max_length",
    "completion_ids",
    "evaluate_preference_rate",
    "kl_to_reference",
    "length_baseline_accuracy",
    "preference_lengths",
    "reference_model",
]
