"""Advanced reasoning (book §6.5), library code only: reward functions for GRPO (`rewards`) and the evaluation of
greedy answers by those rewards (`evaluate`); ``recipes/grpo.py`` puts them around TRL's `GRPOTrainer`."""

from .rewards import (
    BUILTIN_REWARDS,
    CheckedReward,
    LengthReward,
    correctness_reward,
    extract_answer,
    format_reward,
    resolve_reward_funcs,
)


__all__ = [
    "BUILTIN_REWARDS",
    "CheckedReward",
    "LengthReward",
    "correctness_reward",
    "extract_answer",
    "format_reward",
    "resolve_reward_funcs",
]
