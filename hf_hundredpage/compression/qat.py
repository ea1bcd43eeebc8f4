"""Quantization-aware training (book §6.3) with torchao's fake quantization, for the pretraining and SFT recipes.

``--qat torchao-8da4w`` (or ``torchao-intx4wo``) swaps every ``nn.Linear`` of the model, except ``--qat_skip_modules``
(default: ``lm_head``, as ``hf-hundredpage quantize`` keeps it), for torchao's ``FakeQuantizedLinear`` before the
trainer is built: the forward rounds the weights (and, for 8da4w, the activations) exactly as the quantized model
will, and the gradients flow to the full-precision master weights through a straight-through estimator. So the
model learns weights that survive the rounding instead of being rounded after training (post-training
quantization, PTQ).

Everything the recipe evaluates after training (eval loss, bits per byte, exact match, samples) is measured with the
fake quantization on: the numbers of the model as it will be served. At the end `finish_run` swaps the layers back
to ``nn.Linear`` (torchao's QAT "convert" step without a base config) and saves the float32 master weights, with
``qat_method`` in ``config.json``; ``hf-hundredpage quantize OUT OUT-q --method M`` then applies the real
quantization (torchao's convert step, through transformers' ``TorchAoConfig`` so that the folder reloads), and
``hf-hundredpage quantize BASE --compare --qat_model OUT`` puts PTQ and QAT of the same bit width side by side.

QLoRA (``load_in_4bit`` with LoRA, book §5.5) is the other quantization-aware route: the adapters are trained
through the 4-bit base they will run on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .quantize import DEFAULT_GROUP_SIZE, DEFAULT_SKIP_MODULES, _quiet_backends, resolve_skip_modules, torchao_config


QAT_METHODS = ("torchao-8da4w", "torchao-intx4wo")


@dataclass
class QATArguments:
    """The recipe arguments of quantization-aware training (mixed into a recipe's script arguments)."""

    qat: str | None = field(
        default=None,
        metadata={"help": f"train with torchao fake quantization for this serving precision (book §6.3): "
                          f"{', '.join(QAT_METHODS)}"},
    )
    qat_group_size: int = field(default=DEFAULT_GROUP_SIZE, metadata={"help": "int4 weights per scale (32/64/128/256)"})
    qat_skip_modules: list[str] = field(
        default_factory=lambda: list(DEFAULT_SKIP_MODULES),
        metadata={"help": "Linear modules left unquantized, as in `hf-hundredpage quantize --skip_modules`"},
    )

    def __post_init__(self):
        if self.qat is not None:
            check_qat_method(self.qat)
            torchao_config(self.qat, self.qat_group_size)  # the group size is checked before any output is touched

    def prepare_qat(self, model: torch.nn.Module, *, adapters: bool = False) -> list[str]:
        """`prepare_qat` with these arguments; `adapters`: the recipe will train LoRA adapters (refused with qat)."""
        if self.qat is not None and adapters:
            raise ValueError("qat trains the full model's weights: drop use_peft, or use QLoRA (load_in_4bit) instead")
        return prepare_qat(model, self.qat, group_size=self.qat_group_size, skip_modules=self.qat_skip_modules)


def check_qat_method(method: str) -> None:
    """Raise a one-line ValueError unless `method` can be trained for here (known, torchao installed)."""
    if method not in QAT_METHODS:
        raise ValueError(f"qat must be one of {', '.join(QAT_METHODS)}, got {method!r}")
    from transformers.utils import is_torchao_available

    if not is_torchao_available():
        raise ValueError(f"qat {method} needs torchao (pip install 'hf-hundredpage[quantize]'), which is not installed")


def prepare_qat(
    model: torch.nn.Module, method: str | None, *, group_size: int = DEFAULT_GROUP_SIZE,
    skip_modules: list[str] | tuple[str, ...] = DEFAULT_SKIP_MODULES,
) -> list[str]:
    """Swap the ``nn.Linear`` layers of `model` (all but `skip_modules`) for torchao's fake-quantized ones, in place,
    keeping their weight tensors (an optimizer built before or after sees the same parameters). Records the method in
    ``model.config.qat_method``. `method` None: nothing happens.

    Returns:
        The full names of the fake-quantized layers.

    Raises:
        ValueError: an unknown method, no torchao, a model with adapters or already quantized (use QLoRA there), or
            skip modules that name no layer.
    """
    if method is None:
        return []
    check_qat_method(method)
    if hasattr(model, "peft_config") or getattr(model.config, "quantization_config", None) is not None:
        raise ValueError(
            "qat trains the full-precision weights of a plain model; for adapters over a quantized base use QLoRA "
            "(load_in_4bit with use_peft) instead"
        )
    linear_names = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    skip = set(resolve_skip_modules(linear_names, list(skip_modules)))
    chosen = [name for name in linear_names if name not in skip]
    with _quiet_backends():
        from torchao.quantization import quantize_
        from torchao.quantization.qat import QATConfig

        base = torchao_config(method, group_size)
        for name in chosen:
            in_features = model.get_submodule(name).in_features
            if in_features % group_size:
                raise ValueError(
                    f"qat {method}: {name} has {in_features} inputs, not a multiple of qat_group_size {group_size}: "
                    "pass a group size that divides every layer's input width, or skip the layer"
                )
        quantize_(model, QATConfig(base, step="prepare"), filter_fn=lambda module, fqn: fqn in chosen)
    model.config.qat_method = method
    model.config.qat_group_size = group_size
    model.config.qat_skip_modules = sorted(skip)
    return chosen


def fake_quantized_layers(model: torch.nn.Module) -> list[str]:
    """Names of the torchao fake-quantized layers of `model` (none unless `prepare_qat` ran; torchao not imported)."""
    return [name for name, module in model.named_modules()
            if type(module).__module__.startswith("torchao.") and hasattr(module, "to_linear")]


def convert_qat(model: torch.nn.Module) -> int:
    """Swap the fake-quantized layers of `model` back to ``nn.Linear`` with the trained weights (torchao's QAT
    "convert" step without a base config), in place; returns how many were swapped."""
    names = fake_quantized_layers(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).to_linear())
    return len(names)
