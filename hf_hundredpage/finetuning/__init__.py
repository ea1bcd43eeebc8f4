"""Finetuning building blocks (book §5.2-§5.6): model loading over TRL's `ModelConfig`, LoRA / QLoRA (`peft`), and
merging adapters into standalone models (`adapters`)."""

from .adapters import merge_adapter
from .peft import (
    HundredPageModelConfig,
    apply_peft,
    get_peft_config,
    get_quantization_config,
    guard_cpu_4bit,
    load_model,
    load_tokenizer,
)


__all__ = [
    "HundredPageModelConfig",
    "apply_peft",
    "get_peft_config",
    "get_quantization_config",
    "guard_cpu_4bit",
    "load_model",
    "load_tokenizer",
    "merge_adapter",
]
