"""Book chapter 4: the decoder transformer (RoPE, RMSNorm, multi-head attention, KV cache)."""

from .configuration_transformer import HundredPageTransformerConfig
from .modeling_transformer import (
    HundredPageTransformerForCausalLM,
    HundredPageTransformerForSequenceClassification,
    HundredPageTransformerModel,
    HundredPageTransformerPreTrainedModel,
)


__all__ = [
    "HundredPageTransformerConfig",
    "HundredPageTransformerPreTrainedModel",
    "HundredPageTransformerModel",
    "HundredPageTransformerForCausalLM",
    "HundredPageTransformerForSequenceClassification",
]
