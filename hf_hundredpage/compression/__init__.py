"""Model compression (book §6.3): pruning (`prune`) and post-training quantization (`quantize`)."""

from .prune import (
    block_influence,
    calibration_batches,
    head_importance,
    magnitude_prune,
    mlp_importance,
    prune_heads,
    prune_mlp,
    prune_model,
    remove_layers,
)
from .quantize import METHODS as QUANTIZATION_METHODS
from .quantize import compare_methods, quantize_model


__all__ = [
    "QUANTIZATION_METHODS",
    "block_influence",
    "calibration_batches",
    "compare_methods",
    "head_importance",
    "magnitude_prune",
    "mlp_importance",
    "prune_heads",
    "prune_mlp",
    "prune_model",
    "quantize_model",
    "remove_layers",
]
