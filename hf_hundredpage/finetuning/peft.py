"""Loading a pretrained model to finetune it (book §5.2-§5.3, §5.6), in full or with LoRA (§5.5) / QLoRA adapters,
over TRL's `ModelConfig` and its `get_peft_config` / `get_quantization_config` helpers.

What is ours on top of TRL: the tokenizer option and the 4-bit compute dtype (`HundredPageModelConfig`), the LoRA
targets of the book's models, the classification head trained beside the adapters, and `guard_cpu_4bit`, the
workaround for bitsandbytes' CPU repacking bug.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import trl
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..paths import resolve_model_path


DTYPES = ("auto", "float32", "bfloat16", "float16")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
TASKS = {"causal-lm": AutoModelForCausalLM, "sequence-classification": AutoModelForSequenceClassification}
PEFT_TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS")
# Classification heads of transformers' generic `*ForSequenceClassification` classes (ours use `score`).
CLASSIFIER_HEAD_NAMES = ("score", "classifier")

# LoRA targets of the book's models: every `nn.Linear` of the blocks, not the output layer (book §5.5).
TRANSFORMER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
RNN_LORA_TARGETS = ["input_proj", "hidden_proj"]


@dataclass
class HundredPageModelConfig(trl.ModelConfig):
    """TRL's `ModelConfig` (same YAML keys as TRL's scripts) plus a separate tokenizer and the 4-bit compute dtype.

    ``dtype`` defaults to ``auto`` (the dtype the model was saved in), not TRL's ``float32``, so a bf16 checkpoint is
    finetuned in bf16 unless asked otherwise; ``trust_remote_code`` lives in the trainers' configs, as in TRL.
    """

    dtype: str | None = field(default="auto", metadata={"help": f"weights dtype, one of {DTYPES} ('auto': as saved)"})
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "tokenizer folder or Hub id (default: the model's)"}
    )
    bnb_4bit_compute_dtype: str = field(
        default="float32", metadata={"help": f"dtype of 4-bit matmuls, one of {COMPUTE_DTYPES}"}
    )

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.bnb_4bit_compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"bnb_4bit_compute_dtype must be one of {COMPUTE_DTYPES}, got {self.bnb_4bit_compute_dtype!r}")
        if self.bnb_4bit_quant_type not in ("nf4", "fp4"):
            raise ValueError(f"bnb_4bit_quant_type must be nf4 or fp4, got {self.bnb_4bit_quant_type!r}")
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are exclusive: pick one")
        if self.lora_r <= 0:
            raise ValueError(f"lora_r must be a positive integer, got {self.lora_r}")
        super().__post_init__()


def torch_dtype(name: str | None) -> torch.dtype | str | None:
    """``"bfloat16"`` -> `torch.bfloat16`; ``"auto"`` and None unchanged."""
    if name is None or name == "auto":
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    return getattr(torch, name)


def get_quantization_config(args: HundredPageModelConfig) -> BitsAndBytesConfig | None:
    """TRL's `get_quantization_config`, with ``bnb_4bit_compute_dtype`` as the 4-bit compute dtype (TRL uses
    ``dtype``, which may be ``auto``) and uint8 storage as bitsandbytes' CPU kernels need."""
    if args.load_in_4bit:
        storage = args.bnb_4bit_quant_storage or "uint8"
        args = dataclasses.replace(args, dtype=args.bnb_4bit_compute_dtype, bnb_4bit_quant_storage=storage)
    return trl.get_quantization_config(args)


def quantized_device_map() -> dict[str, Any] | str:
    """bitsandbytes needs an explicit device map: this process's GPU (TRL's `get_kbit_device_map`), else the CPU."""
    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return "cpu"


def load_tokenizer(args: HundredPageModelConfig, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """The model's tokenizer (or ``args.tokenizer_name_or_path``), with a padding token: the EOS token when the
    tokenizer has none (GPT-2's case, book §5.3). The padding side is left as saved."""
    what = "tokenizer folder" if args.tokenizer_name_or_path else "model folder"
    name = resolve_model_path(args.tokenizer_name_or_path or args.model_name_or_path, what=what)
    tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {name} has neither a pad nor an eos token: pass a tokenizer that has one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    args: HundredPageModelConfig,
    *,
    task: str = "causal-lm",
    trust_remote_code: bool = False,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    label2id: dict[str, int] | None = None,
    pad_token_id: int | None = None,
) -> PreTrainedModel:
    """Load ``args.model_name_or_path`` for `task` through the Auto classes (book §5.2 causal LM, §5.6 classifier).

    Quantized loading (``load_in_4bit`` / ``load_in_8bit``) goes through bitsandbytes with an explicit device map
    (``"cpu"`` without CUDA); 4-bit models get `guard_cpu_4bit` before their first forward. A classifier gets
    ``config.pad_token_id`` (the generic heads find the last real token with it) and the label maps.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if not args.model_name_or_path:
        raise ValueError("model_name_or_path is missing: pass the model folder or Hub id to finetune")
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "dtype": torch_dtype(args.dtype),
                              "revision": args.model_revision, "attn_implementation": args.attn_implementation}
    quantization_config = get_quantization_config(args)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = quantized_device_map()
    if task == "sequence-classification":
        labels = {"num_labels": num_labels, "id2label": id2label, "label2id": label2id, "pad_token_id": pad_token_id}
        kwargs.update({key: value for key, value in labels.items() if value is not None})
    model = TASKS[task].from_pretrained(resolve_model_path(args.model_name_or_path), **kwargs)
    if task == "sequence-classification" and pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    if args.load_in_4bit:
        guard_cpu_4bit(model)
    return model


# --------------------------------------------------------------------------------------------------- LoRA


def default_lora_target_modules(model: PreTrainedModel) -> list[str] | str:
    """Every block linear of the book's models (book §5.5), ``"all-linear"`` (all but the output layer) otherwise."""
    config = model.config
    if config.model_type == "hundredpage_transformer":
        return TRANSFORMER_LORA_TARGETS + (["gate_proj"] if getattr(config, "gated_mlp", False) else [])
    if config.model_type == "hundredpage_rnn":
        return list(RNN_LORA_TARGETS)
    return "all-linear"


def classifier_head_name(model: torch.nn.Module) -> str | None:
    """The attribute name of a sequence classifier's output head (``score`` or ``classifier``), if any."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return next((name for name in CLASSIFIER_HEAD_NAMES if isinstance(getattr(base, name, None), torch.nn.Module)), None)


def get_peft_config(args: HundredPageModelConfig, model: PreTrainedModel, task_type: str = "CAUSAL_LM"):
    """TRL's `get_peft_config` for `model` (None when ``use_peft`` is off), with our defaults filled in.

    The target modules default to every block linear of the book's models (all-linear for others); for
    ``SEQ_CLS`` the freshly initialised classification head (``score``) is trained in full and saved with the
    adapter (``modules_to_save``), as the book's classifier trains its new output layer (§5.6).
    """
    if not args.use_peft:
        return None
    if task_type not in PEFT_TASK_TYPES:
        raise ValueError(f"task_type must be one of {PEFT_TASK_TYPES}, got {task_type!r}")
    modules_to_save = list(args.lora_modules_to_save or [])
    if task_type == "SEQ_CLS":
        head = classifier_head_name(model) or "score"
        if head not in modules_to_save:
            modules_to_save.append(head)
    targets = args.lora_target_modules or default_lora_target_modules(model)
    if isinstance(targets, str) and targets != "all-linear":
        targets = [targets]
    filled = dataclasses.replace(
        args, lora_task_type=task_type, lora_target_modules=targets, lora_modules_to_save=modules_to_save or None
    )
    config = trl.get_peft_config(filled)
    if isinstance(targets, list):
        # TRL's ModelConfig turns a one-name list into a string, which PEFT reads as a regex over full module paths
        # (and so matches nothing): keep module names as a set, as PEFT's LoraConfig does with a list.
        config.target_modules = set(targets)
    return config


def apply_peft(model: PreTrainedModel, args: HundredPageModelConfig, task_type: str, gradient_checkpointing: bool = False):
    """`model` wrapped in LoRA adapters as `args` asks (unchanged when ``use_peft`` is off), a 4-/8-bit base prepared
    for training first; for trainers that take a ready model (`transformers.Trainer`; TRL's take `peft_config`)."""
    peft_config = get_peft_config(args, model, task_type)
    if peft_config is None:
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if args.load_in_4bit or args.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return get_peft_model(model, peft_config)


# --------------------------------------------------------------------------------------------------- 4-bit on CPU


def guard_cpu_4bit(model: torch.nn.Module) -> int:
    """Keep bitsandbytes from repacking 4-bit weights for CPU inference; return how many layers were guarded.

    On CPUs with AVX512-BF16, the first eval-mode forward without gradients (``generate``, an evaluation) of a
    `bnb.nn.Linear4bit` repacks its weight into an inference-only layout; LoRA gradients through the layer are
    then wrong and ``save_pretrained`` writes corrupted weights (``STACK_NOTES.md``). Clearing
    ``support_avx512bf16_for_cpu`` on every layer before the first forward keeps the training layout, so a QLoRA
    model can be evaluated, trained and saved in any order. A no-op (returns 0) without 4-bit layers.

    Raises:
        ValueError: a layer was already repacked (the model ran before the guard); reload it and guard it first.
    """
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    guarded = 0
    for name, module in model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            if getattr(getattr(module.weight, "quant_state", None), "packing_format_for_cpu", False):
                raise ValueError(
                    f"{name} was already repacked for CPU inference by an earlier forward: reload the model and call "
                    "guard_cpu_4bit before running it"
                )
            module.support_avx512bf16_for_cpu = False
            guarded += 1
    return guarded
