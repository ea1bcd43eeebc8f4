"""Advanced reasoning (book §6.5), library code only: reward functions for GRPO (`rewards`) and the evaluation of
greedy answers by those rewards (`evaluate`); ``recipes/grpo.py`` puts them around TRL's `GRPOTrainer`. Reasoning at
inference time: the strategies (`strategies`: cot, self-consistency, pal, tools, react, tot), the tool registry
(`tools`) and the Python sandbox (`sandbox.execute_python`); ``hf-hundredpage reason`` and ``eval-reasoning``."""

from .rewards import (
    BUILTIN_REWARDS,
    CheckedReward,
    LengthReward,
    correctness_reward,
    extract_answer,
    format_reward,
    resolve_reward_funcs,
)
from .sandbox import SandboxResult, execute_python
from .strategies import (
    STRATEGIES,
    ReasoningResult,
    cot,
    extract_final_answer,
    function_calling,
    majority_vote,
    pal,
    react,
    run_strategy,
    self_consistency,
    tot,
)
from .tools import ToolCall, ToolRegistry, parse_tool_calls


__all__ = [
    "BUILTIN_REWARDS",
    "STRATEGIES",
    "CheckedReward",
    "LengthReward",
    "ReasoningResult",
    "SandboxResult",
    "ToolCall",
    "ToolRegistry",
    "correctness_reward",
    "cot",
    "execute_python",
    "extract_answer",
    "extract_final_answer",
    "format_reward",
    "function_calling",
    "majority_vote",
    "pal",
    "parse_tool_calls",
    "react",
    "resolve_reward_funcs",
    "run_strategy",
    "self_consistency",
    "tot",
]
