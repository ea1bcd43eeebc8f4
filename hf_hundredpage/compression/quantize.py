"""``hf-hundredpage quantize``: post-training quantization (book §6.3) through transformers' own quantizers.

The model is loaded with a ``quantization_config`` (`BitsAndBytesConfig` or `TorchAoConfig`), so every ``nn.Linear``
of its blocks is replaced as it loads; embeddings and norms are not ``nn.Linear`` and stay as saved, and the output
projection ``lm_head`` is kept in full precision by default (``--skip_modules``). The result is saved with
``save_pretrained`` and reloads with ``AutoModelForCausalLM.from_pretrained(OUT)`` alone (``trust_remote_code=True``
for the book's models where ``hf_hundredpage`` is not installed: the folder carries their code and ``auto_map``).

Methods and what they do on a CPU (bitsandbytes 0.50, torchao 0.18, transformers 5.25):

* ``bnb-int8``: LLM.int8 — int8 weights with one scale per output row; activation columns above the outlier
  threshold (6.0) run in 16 bits. On CPU bitsandbytes casts the activations to float16 for the int8 matmul.
* ``bnb-nf4`` / ``bnb-fp4``: 4-bit blocks of 64 weights with a float scale each (NF4: normal-float levels; FP4:
  a 4-bit float); ``--double_quant`` also quantizes the scales, ``--compute_dtype`` is the matmul dtype. On CPUs
  with AVX512-BF16, bitsandbytes repacks the 4-bit weights at the first forward and from then on multiplies in
  bfloat16 whatever the compute dtype; a repacked model must not be saved (`guard_cpu_4bit`). So the model is saved
  before its first forward, and the measures and the round-trip check run the layout a user's reload runs.
* ``torchao-int8wo``: int8 weights, one scale per row, activations left in float (weight-only).
* ``torchao-int8dq``: int8 weights and int8 activations quantized per token at run time (dynamic quantization).
* ``torchao-intx4wo``: int4 weights in groups of ``--group_size`` with a scale each (torchao's ``IntxWeightOnlyConfig``),
  stored one value per int8 byte (``IntxUnpackedToInt8Tensor``): 4-bit quality, 8-bit size, runs and saves on CPU.
* ``torchao-8da4w``: int8 activations quantized per token at run time and int4 weights in groups (torchao's
  ``Int8DynamicActivationIntxWeightConfig``, the scheme of its QAT recipe and ExecuTorch); stored like intx4wo.
  Both are the targets of quantization-aware training (`hf_hundredpage.compression.qat`).
* ``torchao-int4wo``: int4 weights in groups of ``--group_size``; torchao 0.18 packs them only for CUDA kernels
  (tinygemm's ``tile_packed_to_4d`` layout in bfloat16). Its CPU layout (the prototype ``Int4OpaqueTensor``) can
  neither be written to safetensors nor reloaded through `TorchAoConfig`, so on a machine without CUDA this method
  is refused with that reason.

Serialization: transformers 5 always writes safetensors (``save_pretrained`` has no ``safe_serialization`` any
more); bitsandbytes stores its int8/4-bit weights and their scales as plain tensors, and torchao's int8 tensors are
flattened into safetensors with their metadata (``torchao.prototype.safetensors``), so nothing falls back to pickle.

``--compare`` quantizes the same model with every method in one run and puts each beside float32 and bfloat16:
bytes on disk, parameter memory, bits per byte and perplexity on held-out text (book §2.6), greedy generation
speed, and each ratio to float32.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from ..outputs import check_output_dir, save_folder
from ..paths import resolve_model_path


class Method(NamedTuple):
    """A quantization method of ``hf-hundredpage quantize``."""

    backend: str  # "bitsandbytes" or "torchao"
    bits: int  # bits per quantized weight (scales not counted)
    description: str


METHODS: dict[str, Method] = {
    "bnb-int8": Method("bitsandbytes", 8, "LLM.int8: int8 weights per row, 16-bit outlier columns"),
    "bnb-nf4": Method("bitsandbytes", 4, "4-bit NormalFloat weights in blocks of 64"),
    "bnb-fp4": Method("bitsandbytes", 4, "4-bit float weights in blocks of 64"),
    "torchao-int8wo": Method("torchao", 8, "int8 weight-only, one scale per row"),
    "torchao-int8dq": Method("torchao", 8, "int8 dynamic activations + int8 weights"),
    "torchao-intx4wo": Method("torchao", 4, "int4 weight-only in groups, one int8 byte per weight (CPU)"),
    "torchao-8da4w": Method("torchao", 4, "int8 dynamic activations + int4 weights in groups (CPU)"),
    "torchao-int4wo": Method("torchao", 4, "int4 weight-only in groups (CUDA)"),
}
GROUPED_METHODS = ("torchao-intx4wo", "torchao-8da4w", "torchao-int4wo")  # --group_size applies to these
FULL_PRECISION = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_SKIP_MODULES = ("lm_head",)
DEFAULT_PROMPT = "The history of"
DEFAULT_GROUP_SIZE = 32
# Loggers that repeat a harmless line per forward or at import on CPU-only machines.
_NOISY_LOGGERS = (
    "bitsandbytes.autograd._functions", "bitsandbytes.backends.cpu.ops", "torchao", "torch.utils._pytree"
)


@contextlib.contextmanager
def _quiet_backends():
    """Silence bitsandbytes' per-forward ``MatMul8bitLt: inputs will be cast`` warning and torchao's import notes
    about its CUDA-only extensions while a command runs; errors still show."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# --------------------------------------------------------------------------------------------------- methods


def unsupported_reason(method: str) -> str | None:
    """Why `method` cannot produce a loadable folder on this machine (one line), or None when it can."""
    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}: pass one of {', '.join(METHODS)}")
    backend = METHODS[method].backend
    if backend == "torchao":
        from transformers.utils import is_torchao_available

        if not is_torchao_available():
            return f"{method} needs torchao>=0.15 (pip install 'hf-hundredpage[quantize]'), which is not installed"
    if backend == "bitsandbytes":
        from transformers.utils import is_bitsandbytes_available

        if not is_bitsandbytes_available():
            return f"{method} needs bitsandbytes (pip install bitsandbytes), which is not installed"
    if method == "torchao-int4wo" and not torch.cuda.is_available():
        return (
            "torchao-int4wo needs a CUDA GPU: torchao 0.18 packs int4 weights only for CUDA kernels (tinygemm's "
            "tile_packed_to_4d; 'plain' needs the CUDA library mslk), and its CPU layout (Int4OpaqueTensor) can be "
            "neither saved to safetensors nor reloaded; on CPU use bnb-nf4 or bnb-fp4 for 4 bits"
        )
    return None


def _check_supported(method: str) -> None:
    reason = unsupported_reason(method)
    if reason is not None:
        raise ValueError(reason)


def quantization_config(
    method: str,
    skip_modules: list[str],
    *,
    double_quant: bool = False,
    compute_dtype: str = "float32",
    group_size: int = DEFAULT_GROUP_SIZE,
):
    """The transformers quantization config of `method` (book §6.3), keeping `skip_modules` in full precision.

    `skip_modules` are full module names (`resolve_skip_modules`): transformers 5.25's torchao quantizer matches its
    ``modules_to_not_convert`` against parameter names from their start, so a bare ``up_proj`` would skip nothing.
    """
    from ..finetuning.peft import COMPUTE_DTYPES

    _check_supported(method)
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
    skip = list(skip_modules)
    if method == "bnb-int8":
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    if method in ("bnb-nf4", "bnb-fp4"):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=method.removeprefix("bnb-"), bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=getattr(torch, compute_dtype), bnb_4bit_quant_storage=torch.uint8,  # CPU kernels
            llm_int8_skip_modules=skip,
        )
    from transformers import TorchAoConfig

    return TorchAoConfig(torchao_config(method, group_size), modules_to_not_convert=skip)


def torchao_config(method: str, group_size: int = DEFAULT_GROUP_SIZE):
    """torchao's own config object (``AOBaseConfig``) of a ``torchao-*`` method: what `TorchAoConfig` applies at load
    time, and what quantization-aware training fake-quantizes to (`hf_hundredpage.compression.qat`)."""
    if method in GROUPED_METHODS and group_size not in (32, 64, 128, 256):
        raise ValueError(f"group_size must be one of 32, 64, 128, 256 for {method}, got {group_size}")
    with _quiet_backends():
        from torchao.quantization import (
            Int4WeightOnlyConfig,
            Int8DynamicActivationInt8WeightConfig,
            Int8DynamicActivationIntxWeightConfig,
            Int8WeightOnlyConfig,
            IntxWeightOnlyConfig,
        )
        from torchao.quantization.granularity import PerGroup
    if method == "torchao-int8wo":
        return Int8WeightOnlyConfig()
    if method == "torchao-int8dq":
        return Int8DynamicActivationInt8WeightConfig()
    if method == "torchao-intx4wo":
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(group_size))
    if method == "torchao-8da4w":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(group_size))
    if method == "torchao-int4wo":
        return Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d")
    raise ValueError(f"{method} is not a torchao method: pass one of {', '.join(m for m in METHODS if 'torchao' in m)}")


def _linear_names(model_name_or_path: str, trust_remote_code: bool) -> tuple[Any, list[str]]:
    """The config and the names of every ``nn.Linear`` of the model, read from a weightless (meta) copy."""
    config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if getattr(config, "quantization_config", None) is not None:
        raise ValueError(
            f"{model_name_or_path} is already quantized ({_quant_method(config)}): pass the full-precision model"
        )
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return config, [name for name, module in skeleton.named_modules() if isinstance(module, torch.nn.Linear)]


def _quant_method(config) -> str:
    quantization = config.quantization_config
    quantization = quantization if isinstance(quantization, dict) else quantization.to_dict()
    return str(quantization.get("quant_method", "quantized"))


def resolve_skip_modules(linear_names: list[str], requested: list[str]) -> list[str]:
    """Full names of the ``nn.Linear`` modules that `requested` names: a full name, a last part (``lm_head``,
    ``up_proj``) or a parent (``model.layers.0``).

    Raises:
        ValueError: a requested name matches no ``nn.Linear`` of the model (the message lists the layer names).
    """
    resolved: list[str] = []
    for name in requested:
        name = name.strip(".")
        matches = [n for n in linear_names if n == name or n.endswith(f".{name}") or n.startswith(f"{name}.")]
        if not matches:
            kinds = sorted({n.rsplit(".", 1)[-1] for n in linear_names})
            raise ValueError(
                f"--skip_modules {name!r} matches no nn.Linear of the model: pass names among {', '.join(kinds)} "
                "(or full module names)"
            )
        resolved.extend(m for m in matches if m not in resolved)
    return resolved


# --------------------------------------------------------------------------------------------------- loading


def load_quantized(
    model_name_or_path: str,
    method: str,
    skip_modules: list[str],
    *,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    **config_kwargs,
) -> PreTrainedModel:
    """`model_name_or_path` loaded through transformers' quantizer for `method` (book §6.3), on the device
    bitsandbytes / torchao need (this process's GPU, else the CPU). `skip_modules`: full module names kept in full
    precision. Save a 4-bit bitsandbytes model before its first forward on CPU (or `guard_cpu_4bit` it first)."""
    from ..finetuning.peft import quantized_device_map, torch_dtype

    config = quantization_config(method, skip_modules, **config_kwargs)
    if method == "torchao-int4wo":
        dtype = "bfloat16"  # tinygemm's int4 kernels take bfloat16 weights and activations
    model = AutoModelForCausalLM.from_pretrained(
        model_name_or_path, quantization_config=config, device_map=quantized_device_map(), dtype=torch_dtype(dtype),
        trust_remote_code=trust_remote_code,
    )
    return model.eval()


def _load_full_precision(model_name_or_path: str, dtype, trust_remote_code: bool) -> PreTrainedModel:
    from ..finetuning.peft import torch_dtype

    model = AutoModelForCausalLM.from_pretrained(
        model_name_or_path, dtype=torch_dtype(dtype) if isinstance(dtype, str) else dtype,
        trust_remote_code=trust_remote_code,
    )
    if torch.cuda.is_available():
        model.to("cuda")
    return model.eval()


def _load_tokenizer(name_or_path: str, trust_remote_code: bool):
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(
            f"no tokenizer could be loaded from {name_or_path} ({type(err).__name__}): pass --tokenizer with the "
            "model's tokenizer folder"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# --------------------------------------------------------------------------------------------------- measures


def folder_bytes(folder: str | os.PathLike) -> int:
    """Bytes of every file under `folder` (what ``save_pretrained`` wrote: weights, config, code)."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def saved_bytes(model: PreTrainedModel) -> int:
    """Bytes on disk of `model.save_pretrained` (model only, no tokenizer), measured in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="hf-hundredpage-quantize-") as folder:
        model.save_pretrained(folder)
        return folder_bytes(folder)


def _tensor_bytes(tensor: torch.Tensor) -> int:
    """Storage of one parameter or buffer: a torchao tensor subclass by its inner tensors (`get_memory_footprint`
    counts it at its logical dtype, as if unquantized); a bitsandbytes weight with its scales (``quant_state``,
    ``SCB``)."""
    names = getattr(tensor, "tensor_data_names", None)
    if names is not None:  # torchao: qdata, scale, zero points...
        names = [*names, *getattr(tensor, "optional_tensor_data_names", [])]
        return sum(_tensor_bytes(inner) for inner in (getattr(tensor, n, None) for n in names) if inner is not None)
    total = tensor.nelement() * tensor.element_size()
    state = getattr(tensor, "quant_state", None)  # bitsandbytes 4-bit: absmax (and its own state when nested)
    while state is not None:
        total += sum(
            t.nelement() * t.element_size()
            for t in (getattr(state, "absmax", None), getattr(state, "code", None), getattr(state, "offset", None))
            if isinstance(t, torch.Tensor)
        )
        state = getattr(state, "state2", None)
    scb = getattr(tensor, "SCB", None)  # bitsandbytes int8: one float scale per row
    if isinstance(scb, torch.Tensor):
        total += scb.nelement() * scb.element_size()
    return total


def parameter_memory(model: torch.nn.Module) -> int:
    """Bytes held by the parameters and buffers of `model`, quantized tensors at their stored size (`_tensor_bytes`);
    equal to ``get_memory_footprint()`` for a model without quantized weights."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:  # tied weights count once
            seen.add(id(tensor))
            total += _tensor_bytes(tensor)
    return total


def _prompt_ids(model: PreTrainedModel, tokenizer, prompt: str) -> torch.Tensor:
    from ..generation import encode_text_prompt

    return encode_text_prompt(tokenizer, prompt).to(next(model.parameters()).device)


def greedy_tokens(
    model: PreTrainedModel, tokenizer, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 64
) -> list[int]:
    """The greedy continuation of `prompt` (token ids), exactly `max_new_tokens` long."""
    input_ids = _prompt_ids(model, tokenizer, prompt)
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False, num_beams=1,
            max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
        )
    return output[0, input_ids.shape[1]:].tolist()


def generation_speed(
    model: PreTrainedModel, tokenizer, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 64, repeats: int = 3
) -> float:
    """Greedy ``generate()`` throughput in new tokens per second: the best of `repeats` runs of `max_new_tokens`."""
    best = math.inf
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = greedy_tokens(model, tokenizer, prompt, max_new_tokens)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(tokens) / best


def evaluation_texts(
    dataset_name: str | None = None, dataset_config: str | None = None, *, text_column: str = "text",
    max_documents: int | None = None,
) -> list[str]:
    """The validation documents quality is measured on (default: the embedded corpus' validation split)."""
    from ..data import EMBEDDED_CORPUS, load_text_dataset
    from ..evaluation.lm import _split_texts

    if max_documents is not None and max_documents < 1:
        raise ValueError(f"--eval_max_documents must be a positive integer, got {max_documents}")
    dataset = load_text_dataset(dataset_name or EMBEDDED_CORPUS, dataset_config, text_column=text_column)
    return _split_texts(dataset, "validation", text_column, max_documents)


def measure(
    model: PreTrainedModel, tokenizer, texts: list[str], *, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 64,
    max_length: int | None = None, batch_size: int = 8, speed: bool = True,
) -> dict[str, Any]:
    """Quality and cost of one model (book §2.6, §6.3): bits per byte and perplexity on `texts`, parameter memory
    (ours and ``get_memory_footprint()``) and, with `speed`, greedy generation tokens/s."""
    from ..evaluation import evaluate_causal_lm

    # Memory first: bitsandbytes' CPU 4-bit layers change their layout at the first forward.
    result = {"memory_bytes": parameter_memory(model), "memory_footprint": model.get_memory_footprint()}
    scores = evaluate_causal_lm(model, tokenizer, texts, max_length=max_length, batch_size=batch_size)
    result.update(
        bits_per_byte=scores["bits_per_byte"], perplexity=scores["perplexity"], eval_tokens=scores["n_tokens"]
    )
    if speed:
        result["tokens_per_second"] = generation_speed(model, tokenizer, prompt, max_new_tokens)
    return result


def _release_memory() -> None:
    """Give back the memory of models the caller has just deleted."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------- quantize


def quantize_model(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    method: str,
    *,
    skip_modules: list[str] | tuple[str, ...] = DEFAULT_SKIP_MODULES,
    double_quant: bool = False,
    compute_dtype: str = "float32",
    group_size: int = DEFAULT_GROUP_SIZE,
    dtype: str = "auto",
    tokenizer_name_or_path: str | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    text_column: str = "text",
    eval_max_documents: int | None = None,
    max_length: int | None = None,
    batch_size: int = 8,
    prompt: str = DEFAULT_PROMPT,
    max_new_tokens: int = 64,
    overwrite_output_dir: bool = False,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Quantize a causal LM after training (book §6.3) and save it as a standalone model folder.

    Every check (method, model, output folder, skip modules, tokenizer, evaluation text) runs before any weight is
    loaded. The original (in `dtype`) and the quantized model are scored on the same validation text; the quantized
    model is saved into a staging folder, reloaded from it, and must give the same `max_new_tokens` greedy tokens as
    before saving, or nothing is written. The folder gets the tokenizer and a model card with the method, the
    modules kept in full precision and the before/after table; it then replaces `output_dir` (`save_folder`).

    Returns:
        ``{"method", "skip_modules", "original": {...}, "quantized": {...}, "greedy_tokens"}``: the
        measures of `measure` plus ``disk_bytes`` for each model.
    """
    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}: pass one of {', '.join(METHODS)}")
    _check_supported(method)
    model_path = resolve_model_path(os.fspath(model_name_or_path))
    output_dir = Path(output_dir)
    if output_dir.expanduser().resolve() == Path(model_path).resolve():
        raise ValueError(f"OUT {output_dir} is the model folder: pass another folder for the quantized model")
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)
    config, linear_names = _linear_names(model_path, trust_remote_code)
    skip = resolve_skip_modules(linear_names, list(skip_modules))
    tokenizer = _load_tokenizer(tokenizer_name_or_path or model_path, trust_remote_code)
    texts = evaluation_texts(dataset_name, dataset_config, text_column=text_column, max_documents=eval_max_documents)
    settings = {"double_quant": double_quant, "compute_dtype": compute_dtype, "group_size": group_size}
    window = {"max_length": max_length, "batch_size": batch_size, "prompt": prompt, "max_new_tokens": max_new_tokens}

    from ..finetuning.peft import quantized_device_map

    with _quiet_backends():
        original = _load_full_precision(model_path, dtype, trust_remote_code)
        before = measure(original, tokenizer, texts, speed=False, **window)
        before["disk_bytes"] = saved_bytes(original)
        before["dtype"] = str(original.dtype).removeprefix("torch.")
        before["num_parameters"] = original.num_parameters()
        del original
        _release_memory()

        quantized = load_quantized(
            model_path, method, skip, dtype=dtype, trust_remote_code=trust_remote_code, **settings
        )
        quantized.config._name_or_path = str(output_dir)
        after: dict[str, Any] = {}
        tokens: list[int] = []

        def save(folder: Path) -> None:
            # Saved before its first forward: bitsandbytes' CPU 4-bit layers repack for inference at that forward.
            quantized.save_pretrained(folder)
            after["disk_bytes"] = folder_bytes(folder)
            after.update(measure(quantized, tokenizer, texts, speed=False, **window))
            tokens.extend(greedy_tokens(quantized, tokenizer, prompt, max_new_tokens))
            reloaded = AutoModelForCausalLM.from_pretrained(  # as a user loads it (on CPU: no device map needed)
                folder, trust_remote_code=trust_remote_code, device_map=quantized_device_map())
            if greedy_tokens(reloaded, tokenizer, prompt, max_new_tokens) != tokens:
                raise ValueError(
                    f"the {method} model reloaded from disk generates other greedy tokens than before saving: "
                    "nothing was written (a serialization bug of the backend; try another --method)"
                )
            del reloaded
            _release_memory()
            tokenizer.save_pretrained(folder)
            _write_quantized_card(folder, output_dir, str(model_name_or_path), config, method, skip,
                                  before, after, settings, len(texts), dataset_name, len(tokens))

        save_folder(output_dir, save)
    return {"method": method, "skip_modules": skip, "original": before, "quantized": after,
            "greedy_tokens": tokens, "settings": settings}


def _method_settings_text(method: str, settings: dict[str, Any]) -> str:
    if method in ("bnb-nf4", "bnb-fp4"):
        double = "on" if settings["double_quant"] else "off"
        return f"compute dtype {settings['compute_dtype']}, double quantization {double}"
    if method in GROUPED_METHODS:
        return f"group size {settings['group_size']}"
    return ""


def _write_quantized_card(
    folder: Path, output_dir: Path, base: str, config, method: str, skip: list[str],
    before: dict, after: dict, settings: dict, n_documents: int, dataset_name: str | None, n_tokens: int,
) -> None:
    """The quantized model's README.md (book §6.3): method, kept modules and the before/after table."""
    from ..data import EMBEDDED_CORPUS
    from ..hub import detect_hardware, model_family, write_model_card

    spec = METHODS[method]
    extra = _method_settings_text(method, settings)
    rows = [
        ("Bits per byte (lower is better)", f"{before['bits_per_byte']:.4f}", f"{after['bits_per_byte']:.4f}",
         f"{after['bits_per_byte'] / before['bits_per_byte']:.3f}"),
        ("Perplexity", f"{before['perplexity']:.2f}", f"{after['perplexity']:.2f}",
         f"{after['perplexity'] / before['perplexity']:.3f}"),
        ("Bytes on disk (model files)", f"{before['disk_bytes']:,}", f"{after['disk_bytes']:,}",
         f"{after['disk_bytes'] / before['disk_bytes']:.3f}"),
        ("Parameter memory (bytes)", f"{before['memory_bytes']:,}", f"{after['memory_bytes']:,}",
         f"{after['memory_bytes'] / before['memory_bytes']:.3f}"),
    ]
    table = "\n".join(
        [f"| | original ({before['dtype']}) | {method} | ratio |", "|---|---:|---:|---:|"]
        + [f"| {name} | {a} | {b} | {r} |" for name, a, b, r in rows]
    )
    kept = ", ".join(f"`{name}`" for name in skip) or "none"
    backend_note = (
        "Loading it needs `bitsandbytes`; on CPU, call `hf_hundredpage.finetuning.guard_cpu_4bit(model)` before the "
        "first forward if you will train or save it again." if spec.backend == "bitsandbytes" and spec.bits == 4
        else f"Loading it needs `{spec.backend}`."
    )
    body = (
        f"Post-training quantization (book §6.3) with `hf-hundredpage quantize --method {method}`: "
        f"{spec.description}{f' ({extra})' if extra else ''}, through transformers' {spec.backend} quantizer.\n\n"
        f"- Kept in full precision: {kept}; embeddings and norms are not `nn.Linear` layers and keep their dtype.\n"
        f"- Round trip: reloaded from this folder, the model gave the same {n_tokens} greedy tokens as before "
        "saving.\n"
        f"- {backend_note}\n\n"
        f"Measured at quantize time on {n_documents} validation documents of `{dataset_name or EMBEDDED_CORPUS}`:\n\n"
        f"{table}"
    )
    write_model_card(
        folder,
        model_name=output_dir.name,
        task="quantize",
        model_family=model_family(config),
        base_model=base,
        metrics={"eval_bits_per_byte": after["bits_per_byte"], "eval_perplexity": after["perplexity"]},
        baseline_metrics={"eval_bits_per_byte": before["bits_per_byte"], "eval_perplexity": before["perplexity"]},
        baseline_name=f"original ({before['dtype']})",
        baseline_description="The baseline is the same model before quantization, scored on the same text.",
        eval_dataset=dataset_name or EMBEDDED_CORPUS,
        repo_id=str(output_dir),
        hardware=f"{detect_hardware()} (where the model was quantized)",
        tags=["quantized", spec.backend],
        extra_sections={"Quantization": body},
        num_parameters=before["num_parameters"],  # the saved tensors are packed or split into data and scales
    )


# --------------------------------------------------------------------------------------------------- compare


def compare_methods(
    model_name_or_path: str | os.PathLike,
    methods: list[str] | tuple[str, ...] = tuple(METHODS),
    *,
    skip_modules: list[str] | tuple[str, ...] = DEFAULT_SKIP_MODULES,
    double_quant: bool = False,
    compute_dtype: str = "float32",
    group_size: int = DEFAULT_GROUP_SIZE,
    dtype: str = "auto",
    tokenizer_name_or_path: str | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    text_column: str = "text",
    eval_max_documents: int | None = None,
    max_length: int | None = None,
    batch_size: int = 8,
    prompt: str = DEFAULT_PROMPT,
    max_new_tokens: int = 64,
    trust_remote_code: bool = False,
    qat_model: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Every method of `methods` beside float32 and bfloat16 on the same model and text (book §6.3).

    `qat_model`: a folder trained with ``--qat M`` (quantization-aware training, `hf_hundredpage.compression.qat`)
    from the same starting point; it adds the rows ``M (QAT)`` (that model quantized with M) and ``fp32 (QAT)`` (its
    float32 master weights), and M's post-training row if `methods` lacks it, so PTQ and QAT at the same bit width
    stand side by side.

    Each row has the bytes on disk of its ``save_pretrained`` folder, its parameter memory, bits per byte and
    perplexity on the validation text, greedy ``generate()`` tokens/s (best of 3, `max_new_tokens` each), and the
    ratio of each to float32. A method that fails on this machine is a row with ``error`` (one line) instead.

    Returns:
        ``{"model", "dataset", "documents", "prompt", "max_new_tokens", "rows": [...]}``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(
            f"unknown quantization method(s) {', '.join(unknown)}: pass methods among {', '.join(METHODS)}"
        )
    model_path = resolve_model_path(os.fspath(model_name_or_path))
    config, linear_names = _linear_names(model_path, trust_remote_code)
    resolve_skip_modules(linear_names, list(skip_modules))  # a typo fails before any model is loaded
    tokenizer = _load_tokenizer(tokenizer_name_or_path or model_path, trust_remote_code)
    texts = evaluation_texts(dataset_name, dataset_config, text_column=text_column, max_documents=eval_max_documents)
    settings = {"double_quant": double_quant, "compute_dtype": compute_dtype, "group_size": group_size}
    window = {"max_length": max_length, "batch_size": batch_size, "prompt": prompt, "max_new_tokens": max_new_tokens}
    qat = _qat_folder(qat_model, trust_remote_code) if qat_model is not None else None
    if qat is not None and qat[1] not in methods:
        methods = [*methods, qat[1]]

    rows: list[dict[str, Any]] = []
    with _quiet_backends():
        for name, torch_dtype in FULL_PRECISION.items():
            rows.append(_measure_row(
                name, lambda dt=torch_dtype: _load_full_precision(model_path, dt, trust_remote_code),
                tokenizer, texts, window, bits=torch.finfo(torch_dtype).bits,
            ))
        for method in methods:
            reason = unsupported_reason(method)
            if reason is not None:
                rows.append({"method": method, "bits": METHODS[method].bits, "error": reason})
                continue
            skip = resolve_skip_modules(linear_names, list(skip_modules))
            rows.append(_measure_row(
                method, lambda m=method, s=skip: load_quantized(
                    model_path, m, s, dtype=dtype, trust_remote_code=trust_remote_code, **settings),
                tokenizer, texts, window, bits=METHODS[method].bits, skip_modules=skip,
            ))
        if qat is not None:
            qat_path, method, qat_config = qat
            rows.append(_measure_row(
                "fp32 (QAT)", lambda: _load_full_precision(qat_path, torch.float32, trust_remote_code),
                tokenizer, texts, window, bits=32,
            ))
            skip = list(getattr(qat_config, "qat_skip_modules", None) or DEFAULT_SKIP_MODULES)
            qat_settings = {**settings, "group_size": getattr(qat_config, "qat_group_size", group_size)}
            rows.append(_measure_row(
                f"{method} (QAT)", lambda: load_quantized(
                    qat_path, method, skip, dtype=dtype, trust_remote_code=trust_remote_code, **qat_settings),
                tokenizer, texts, window, bits=METHODS[method].bits, skip_modules=skip,
            ))
    _add_ratios(rows)
    from ..data import EMBEDDED_CORPUS

    return {"model": str(model_name_or_path), "dataset": dataset_name or EMBEDDED_CORPUS, "documents": len(texts),
            "prompt": prompt, "max_new_tokens": max_new_tokens, "settings": settings, "rows": rows}


def _qat_folder(qat_model: str | os.PathLike, trust_remote_code: bool) -> tuple[str, str, Any]:
    """(path, method, config) of a folder trained with ``--qat``; a one-line error for any other folder."""
    path = resolve_model_path(os.fspath(qat_model))
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    method = getattr(config, "qat_method", None)
    if method not in METHODS:
        raise ValueError(
            f"--qat_model {qat_model} was not trained with --qat (its config.json has no qat_method): pass a folder "
            "written by the pretrain or sft recipe with --qat"
        )
    return path, method, config


def _measure_row(name: str, load, tokenizer, texts, window: dict, *, bits: int, **extra) -> dict:
    row: dict[str, Any] = {"method": name, "bits": bits, **extra}
    model = None
    try:
        model = load()
        # Saved before any forward: bitsandbytes' CPU 4-bit layers may repack for inference at their first one.
        row["disk_bytes"] = saved_bytes(model)
        row.update(measure(model, tokenizer, texts, **window))
    except Exception as err:  # noqa: BLE001  (a method that fails on this machine is a row, not a crash)
        message = " ".join(str(err).split())
        row = {"method": name, "bits": bits, "error": f"{type(err).__name__}: {message[:300]}"}
    finally:
        del model
        _release_memory()
    return row


RATIO_KEYS = ("disk_bytes", "memory_bytes", "bits_per_byte", "perplexity", "tokens_per_second")


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    reference = next((row for row in rows if row["method"] == "fp32" and "error" not in row), None)
    for row in rows:
        if reference is None or "error" in row:
            continue
        for key in RATIO_KEYS:
            row[f"{key}_ratio"] = row[key] / reference[key] if reference[key] else None


def _mb(value: float) -> str:
    mb = value / 1e6
    return f"{mb:.2f}" if mb >= 1 else f"{mb:.3f}"


def format_markdown_table(rows: list[dict[str, Any]]) -> str:
    """The ``--compare`` rows as a markdown table; ``×fp32`` columns are ratios to the float32 row."""
    header = ["method", "bits", "disk MB", "×fp32", "memory MB", "×fp32", "bits/byte", "×fp32", "perplexity", "×fp32",
              "tokens/s", "×fp32", "note"]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|" + "---:|" * (len(header) - 3) + "---|"]
    for row in rows:
        if "error" in row:
            cells = [row["method"], str(row["bits"]), *["–"] * (len(header) - 3), row["error"]]
        else:
            def ratio(key: str) -> str:
                value = row.get(f"{key}_ratio")  # quality moves in the third decimal: shown to the fourth
                digits = 4 if key in ("bits_per_byte", "perplexity") else 2
                return f"{value:.{digits}f}" if value is not None else "–"

            cells = [
                row["method"], str(row["bits"]), _mb(row["disk_bytes"]), ratio("disk_bytes"), _mb(row["memory_bytes"]),
                ratio("memory_bytes"), f"{row['bits_per_byte']:.4f}", ratio("bits_per_byte"),
                f"{row['perplexity']:.2f}", ratio("perplexity"), f"{row['tokens_per_second']:.0f}",
                ratio("tokens_per_second"), "",  # the note column holds a failed method's reason
            ]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def plot_size_quality(rows: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Bits per byte against size on disk (MB), one labelled point per method that ran, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(row["method"], row["disk_bytes"] / 1e6, row["bits_per_byte"]) for row in rows if "error" not in row]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    if points:
        xs, ys = [p[1] for p in points], [p[2] for p in points]
        spans = (max(xs) - min(xs) or 1.0, max(ys) - min(ys) or 1.0)
    placed: list[tuple[float, float]] = []
    for name, x, y in points:
        ax.scatter([x], [y], marker="s" if name in FULL_PRECISION else "o", s=40)
        # Labels of points closer than 5% of the axes are stacked instead of printed over each other.
        near = sum(abs(x - px) / spans[0] < 0.05 and abs(y - py) / spans[1] < 0.05 for px, py in placed)
        placed.append((x, y))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4 + 11 * near), fontsize=8)
    ax.set_xlabel("size on disk (MB)")
    ax.set_ylabel("bits per byte (validation, lower is better)")
    ax.set_title(title or "post-training quantization (§6.3): quality vs size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage quantize``."""
    from ..finetuning.peft import COMPUTE_DTYPES, DTYPES

    parser.description = (
        "Post-training quantization (§6.3) through transformers' quantizers. MODEL OUT --method M saves a model "
        "folder that AutoModelForCausalLM.from_pretrained(OUT) loads (always safetensors: transformers 5 has no "
        "safe_serialization=False, and bitsandbytes int8/4-bit and torchao int8 weights serialize to it on CPU); "
        "torchao-int4wo needs a CUDA GPU (torchao's CPU int4 layout cannot be saved). MODEL --compare measures "
        "every method beside fp32 and bf16 without saving."
    )
    parser.add_argument("model", metavar="MODEL", help="full-precision model folder (with its tokenizer)")
    parser.add_argument("output_dir", metavar="OUT", nargs="?", default=None,
                        help="where to save the quantized model (not with --compare)")
    parser.add_argument("--method", choices=list(METHODS), default=None, metavar="METHOD",
                        help=f"quantization method, required with OUT: {', '.join(METHODS)}")
    parser.add_argument("--compare", action="store_true",
                        help="measure every method (or --methods) beside fp32 and bf16; writes only --json/--plot")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=None, metavar="METHOD",
                        help="methods for --compare (default: all)")
    parser.add_argument("--qat_model", default=None, metavar="FOLDER",
                        help="--compare: a model trained with --qat from the same start; adds its QAT rows beside PTQ")
    parser.add_argument("--skip_modules", nargs="*", default=list(DEFAULT_SKIP_MODULES), metavar="NAME",
                        help="Linear modules kept in full precision, by name (lm_head, up_proj, model.layers.0); "
                        "default: lm_head; give the flag alone to quantize every Linear")
    parser.add_argument("--double_quant", action="store_true", help="bnb-nf4/bnb-fp4: also quantize the block scales")
    parser.add_argument("--compute_dtype", choices=COMPUTE_DTYPES, default="float32",
                        help="bnb-nf4/bnb-fp4: dtype of the 4-bit matmuls (default: float32)")
    parser.add_argument("--group_size", type=int, default=DEFAULT_GROUP_SIZE,
                        help=f"{'/'.join(GROUPED_METHODS)}: weights per scale, 32/64/128/256 (default: {DEFAULT_GROUP_SIZE})")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="dtype of the original and of the layers left unquantized (default: as saved)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: MODEL's)")
    parser.add_argument("--dataset_name", default=None,
                        help="text to measure bits per byte on: a local file/folder or a Hub id (default: the "
                        "embedded corpus); its validation split is used")
    parser.add_argument("--dataset_config", default=None, help="dataset configuration name")
    parser.add_argument("--text_column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--eval_max_documents", type=int, default=None,
                        help="score at most this many validation documents (default: all)")
    parser.add_argument("--max_length", type=int, default=None, help="evaluation window (default: the model's)")
    parser.add_argument("--batch_size", type=int, default=8, help="evaluation windows per forward (default: 8)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT,
                        help=f"prompt of the greedy checks (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--max_new_tokens", type=int, default=64,
                        help="greedy tokens generated for the round-trip check and the speed (default: 64)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the measures as JSON")
    parser.add_argument("--plot", default=None, metavar="FILE", help="--compare: PNG of bits per byte vs size on disk")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")


def _check_args(args: argparse.Namespace) -> None:
    if args.compare:
        if args.output_dir is not None:
            raise ValueError(
                f"--compare saves no model, but OUT ({args.output_dir}) was given: drop OUT, or drop --compare and "
                "pass --method"
            )
        if args.method is not None:
            raise ValueError("--compare measures --methods (default: all), not --method: pass --methods instead")
    else:
        if args.output_dir is None:
            raise ValueError("OUT is missing: pass MODEL OUT --method M, or MODEL --compare")
        if args.method is None:
            raise ValueError(f"--method is missing: pass one of {', '.join(METHODS)}")
        if args.methods is not None:
            raise ValueError("--methods is for --compare: pass one --method to save a quantized model")
        if args.plot is not None:
            raise ValueError("--plot is for --compare: drop it, or use MODEL --compare --plot FILE")
        if args.qat_model is not None:
            raise ValueError("--qat_model is for --compare: quantize the QAT folder itself with MODEL OUT --method M")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max_new_tokens must be a positive integer, got {args.max_new_tokens}")
    if args.eval_max_documents is not None and args.eval_max_documents < 1:
        raise ValueError(f"--eval_max_documents must be a positive integer, got {args.eval_max_documents}")
    for option in ("json", "plot"):
        path = getattr(args, option)
        if path is not None and Path(path).is_dir():
            raise ValueError(f"--{option} {path} is a folder: pass a file name")


def _write_json(path: str, data: dict) -> None:
    from ..training.run import write_json

    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(path).expanduser(), data)


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage quantize``."""
    _check_args(args)
    common = dict(
        skip_modules=args.skip_modules, double_quant=args.double_quant, compute_dtype=args.compute_dtype,
        group_size=args.group_size, dtype=args.dtype, tokenizer_name_or_path=args.tokenizer,
        dataset_name=args.dataset_name, dataset_config=args.dataset_config, text_column=args.text_column,
        eval_max_documents=args.eval_max_documents, max_length=args.max_length, batch_size=args.batch_size,
        prompt=args.prompt, max_new_tokens=args.max_new_tokens, trust_remote_code=args.trust_remote_code,
    )
    with _quiet_backends():
        if args.compare:
            report = compare_methods(args.model, args.methods or tuple(METHODS), qat_model=args.qat_model, **common)
            print(f"{report['model']}: {report['documents']} validation documents of {report['dataset']}; "
                  f"{report['max_new_tokens']} greedy tokens, best of 3")
            print(format_markdown_table(report["rows"]))
            if args.json:
                _write_json(args.json, report)
            if args.plot:
                Path(args.plot).expanduser().parent.mkdir(parents=True, exist_ok=True)
                plot_size_quality(report["rows"], Path(args.plot).expanduser(),
                                  title=f"{Path(args.model).name}: quantization (§6.3)")
            return 0
        result = quantize_model(args.model, args.output_dir, args.method,
                                overwrite_output_dir=args.overwrite_output_dir, **common)
        if args.json:
            _write_json(args.json, result)
    before, after = result["original"], result["quantized"]
    print(f"Quantized {args.model} with {args.method} (kept: {', '.join(result['skip_modules']) or 'none'}): "
          f"{args.output_dir}")
    print(f"bits per byte {before['bits_per_byte']:.4f} -> {after['bits_per_byte']:.4f}; "
          f"bytes on disk {before['disk_bytes']:,} -> {after['disk_bytes']:,}")
    return 0
