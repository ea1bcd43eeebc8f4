"""Fine-tuning building blocks shared by the SFT and classification recipes (book §5.2-§5.6), LoRA (§5.5) and
QLoRA, plus ``hf-hundredpage merge-adapter``.

* `FinetuneModelArguments`: which pretrained model to fine-tune and how (precision, LoRA / DoRA, 4-/8-bit
  loading); the names are TRL's `ModelConfig` names, so a TRL YAML carries over.
* `load_tokenizer` / `load_model`: Auto classes, a padding token, the bitsandbytes config and the CPU 4-bit guard.
* `get_peft_config`: a `peft.LoraConfig` with sensible target modules for the book's models and for any other.
* `guard_cpu_4bit`: the workaround for bitsandbytes' CPU repacking bug (see ``STACK_NOTES.md``).
* `merge_adapter`: fold a trained LoRA adapter into its base model and save a standalone model folder.
* `chat_turn_end` / `evaluate_exact_match`: the token that ends an assistant turn (what `generate()` must stop
  on) and the greedy-decoding exact-match accuracy used to measure instruction following (book §5.3).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BitsAndBytesConfig,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

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
class FinetuneModelArguments:
    """Which pretrained model to fine-tune and how (the field names are TRL `ModelConfig`'s)."""

    model_name_or_path: str = field(metadata={"help": "model folder or Hub id to fine-tune"})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "tokenizer folder or Hub id (default: the model's)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow a Hub model's own modeling code"})
    dtype: str = field(default="auto", metadata={"help": f"weights dtype, one of {DTYPES} ('auto': as saved)"})
    use_peft: bool = field(default=False, metadata={"help": "train LoRA adapters instead of every weight (book §5.5)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05)
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "module names to adapt (default: q/k/v/o/up/down(+gate) for the book's transformer, "
                          "input_proj/hidden_proj for its RNN, all-linear otherwise)"},
    )
    lora_modules_to_save: list[str] | None = field(default=None, metadata={"help": "modules trained in full and saved with the adapter"})
    use_dora: bool = field(default=False, metadata={"help": "weight-decomposed LoRA (DoRA)"})
    load_in_4bit: bool = field(default=False, metadata={"help": "load the base model in 4 bits (QLoRA)"})
    load_in_8bit: bool = field(default=False, metadata={"help": "load the base model in 8 bits"})
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "nf4 or fp4"})
    use_bnb_nested_quant: bool = field(default=False, metadata={"help": "double quantization of the 4-bit scales"})
    bnb_4bit_compute_dtype: str = field(default="float32", metadata={"help": f"dtype of 4-bit matmuls, one of {COMPUTE_DTYPES}"})

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


# --------------------------------------------------------------------------------------------------- loading


def resolve_model_path(name_or_path: str) -> str:
    """A local folder as an absolute path (so that adapters record where their base is), a Hub id unchanged.

    Raises `FileNotFoundError` for a path-like name (``./x``, ``/x``, ``a/b/c``) that does not exist, instead of
    letting it be tried as a Hub id.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{name_or_path} is a file: pass the model folder (with config.json) or a Hub id")
        return str(path.resolve())
    looks_like_path = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or "\\" in name_or_path
    if looks_like_path:
        raise FileNotFoundError(f"model folder {name_or_path} does not exist: pass an existing folder or a Hub id")
    return name_or_path


def _torch_dtype(name: str | None) -> torch.dtype | str | None:
    if name is None or name == "auto":
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {name!r}")
    return getattr(torch, name)


def get_quantization_config(args: FinetuneModelArguments) -> BitsAndBytesConfig | None:
    """The `BitsAndBytesConfig` that `args` asks for (``load_in_4bit`` / ``load_in_8bit``), None for full precision."""
    if args.load_in_4bit:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=args.bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=args.use_bnb_nested_quant,
            bnb_4bit_compute_dtype=_torch_dtype(args.bnb_4bit_compute_dtype),
            bnb_4bit_quant_storage=torch.uint8,
        )
    if args.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _quantized_device_map() -> dict[str, Any] | str:
    """bitsandbytes needs an explicit device map: this process's GPU, else the CPU."""
    if torch.cuda.is_available():
        from accelerate import PartialState

        return {"": PartialState().local_process_index}
    return "cpu"


def load_tokenizer(args: FinetuneModelArguments) -> PreTrainedTokenizerBase:
    """The model's tokenizer (or ``args.tokenizer_name_or_path``), with a padding token: the EOS token when the
    tokenizer has none (GPT-2's case, book §5.2). The padding side is left as saved."""
    name = resolve_model_path(args.tokenizer_name_or_path or args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=args.trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {name} has neither a pad nor an eos token: pass a tokenizer that has one")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    args: FinetuneModelArguments,
    *,
    task: str = "causal-lm",
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
    kwargs: dict[str, Any] = {"trust_remote_code": args.trust_remote_code, "dtype": _torch_dtype(args.dtype)}
    quantization_config = get_quantization_config(args)
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = _quantized_device_map()
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


def get_peft_config(args: FinetuneModelArguments, model: PreTrainedModel, task_type: str = "CAUSAL_LM"):
    """The `peft.LoraConfig` of `args` for `model` (None when ``use_peft`` is off).

    For ``SEQ_CLS`` the freshly initialised classification head (``score``) is trained in full and saved with the
    adapter (``modules_to_save``), as the book's classifier trains its new output layer (§5.6).
    """
    if not args.use_peft:
        return None
    if task_type not in PEFT_TASK_TYPES:
        raise ValueError(f"task_type must be one of {PEFT_TASK_TYPES}, got {task_type!r}")
    from peft import LoraConfig

    modules_to_save = list(args.lora_modules_to_save or [])
    if task_type == "SEQ_CLS":
        head = classifier_head_name(model) or "score"
        if head not in modules_to_save:
            modules_to_save.append(head)
    target_modules = args.lora_target_modules or default_lora_target_modules(model)
    if isinstance(target_modules, list) and len(target_modules) == 1 and target_modules[0] == "all-linear":
        target_modules = "all-linear"
    return LoraConfig(
        task_type=task_type,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules,
        modules_to_save=modules_to_save or None,
        use_dora=args.use_dora,
    )


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


# --------------------------------------------------------------------------------------------------- merging


def _classifier_labels(adapter_dir: Path) -> dict[str, Any]:
    """num_labels / id2label of a classification adapter: from a saved config.json, else the saved head's shape."""
    config_file = adapter_dir / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        if "id2label" in config:
            return {"id2label": {int(k): v for k, v in config["id2label"].items()},
                    "label2id": config.get("label2id"), "num_labels": len(config["id2label"])}
    weights = adapter_dir / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                if any(key.endswith(f"{head}.weight") for head in CLASSIFIER_HEAD_NAMES):
                    return {"num_labels": f.get_slice(key).get_shape()[0]}
    return {}


def _save_atomically(output_dir: Path, save) -> None:
    """Write into a hidden sibling folder with `save(folder)`, then rename it to `output_dir`."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = output_dir.parent / f".{output_dir.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        save(staging)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def merge_adapter(
    adapter_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    dtype: str | None = None,
    overwrite_output_dir: bool = False,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """Fold the LoRA adapter in `adapter_dir` into its base model and save a standalone model (book §5.5).

    The base is loaded from the adapter's ``base_model_name_or_path`` in full precision: a base saved 4-/8-bit is
    de-quantized (to its 4-bit compute dtype, unless `dtype` says otherwise). `PeftModel.from_pretrained` +
    ``merge_and_unload`` give a plain `PreTrainedModel` whose logits equal the adapter model's. It is saved with the
    tokenizer (the adapter folder's, else the base's) and the adapter's ``generation_config.json`` when it has one,
    into a staging folder renamed to `output_dir` at the end, so a crash never leaves half a model behind.

    Args:
        adapter_dir: a folder with ``adapter_config.json`` and the adapter weights.
        output_dir: where the merged model goes; must be empty or absent unless `overwrite_output_dir`.
        dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (as saved); None: ``auto`` (or the compute dtype of a
            quantized base).
        overwrite_output_dir: replace a non-empty `output_dir`.
        trust_remote_code: allow the base model's own modeling code.

    Returns:
        The merged model.
    """
    from peft import PeftConfig, PeftModel

    adapter_dir, output_dir = Path(adapter_dir), Path(output_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir} has no adapter_config.json: pass the folder a LoRA run saved its adapter in")
    if output_dir.resolve() == adapter_dir.resolve():
        raise ValueError(f"output_dir {output_dir} is the adapter folder: pass another folder for the merged model")
    if output_dir.is_file():
        raise FileExistsError(f"output_dir {output_dir} is a file: pass a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite_output_dir:
        raise FileExistsError(
            f"output_dir {output_dir} is not empty: pass --overwrite_output_dir to replace it, or another folder"
        )

    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base_name = peft_config.base_model_name_or_path
    if not base_name:
        raise ValueError(
            f"{adapter_dir}/adapter_config.json has no base_model_name_or_path: set it to the base model folder or Hub id"
        )
    base_name = resolve_model_path(base_name)
    task_type = str(getattr(peft_config.task_type, "value", peft_config.task_type) or "CAUSAL_LM")
    if task_type not in PEFT_TASK_TYPES:
        raise ValueError(f"cannot merge a {task_type} adapter: only CAUSAL_LM and SEQ_CLS adapters are supported")

    auto_class = AutoModelForSequenceClassification if task_type == "SEQ_CLS" else AutoModelForCausalLM
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if task_type == "SEQ_CLS":
        kwargs.update(_classifier_labels(adapter_dir))
    quantization = getattr(AutoConfig.from_pretrained(base_name, trust_remote_code=trust_remote_code), "quantization_config", None)
    if quantization is None:
        base = auto_class.from_pretrained(base_name, dtype=_torch_dtype(dtype or "auto"), **kwargs)
    else:  # a checkpoint saved in 4/8 bits: load it as saved, then de-quantize
        quantization = quantization if isinstance(quantization, dict) else quantization.to_dict()
        compute = str(quantization.get("bnb_4bit_compute_dtype") or "float32") if quantization.get("load_in_4bit") else "float32"
        base = auto_class.from_pretrained(base_name, device_map=_quantized_device_map(), **kwargs).dequantize()
        base = base.to(_torch_dtype(dtype if dtype not in (None, "auto") else compute.removeprefix("torch.")))

    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config._name_or_path = str(output_dir)
    if (adapter_dir / "generation_config.json").is_file():
        merged.generation_config = GenerationConfig.from_pretrained(str(adapter_dir))

    tokenizer = None
    for source in (str(adapter_dir), base_name):
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            break
        except (OSError, ValueError):
            continue
    if tokenizer is None:
        print(f"merge-adapter: no tokenizer in {adapter_dir} or {base_name}; saving the model alone", file=sys.stderr)

    def save(folder: Path) -> None:
        merged.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    _save_atomically(output_dir, save)
    return merged


# --------------------------------------------------------------------------------------------------- evaluation


def chat_turn_end(tokenizer: PreTrainedTokenizerBase) -> tuple[int | None, str]:
    """The token id that ends an assistant turn in the tokenizer's chat template, and the plain text that the
    template puts between the answer and that token (book §5.3).

    The template is rendered on a one-turn conversation; the first special token after the assistant's answer is
    the stop token (``<|eos|>`` for the book's tokenizer, ``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3).
    `generate()` only stops on it when ``generation_config.eos_token_id`` contains it. Without a chat template, or
    when no special token follows the answer, the tokenizer's EOS token (and an empty text) is returned.
    """
    if not getattr(tokenizer, "chat_template", None):
        return tokenizer.eos_token_id, ""
    sentinel = "QZXJV-42"
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": sentinel}], tokenize=False
    )
    if sentinel not in rendered:
        return tokenizer.eos_token_id, ""
    after = rendered[rendered.index(sentinel) + len(sentinel):]
    special = {tokenizer.convert_ids_to_tokens(i): i for i in tokenizer.all_special_ids}
    special.update({t.content: i for i, t in tokenizer.added_tokens_decoder.items() if t.special})
    first = min(((after.find(text), text) for text in special if text and text in after), default=None)
    if first is None:
        return tokenizer.eos_token_id, ""
    position, text = first
    return special[text], after[:position]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The end-of-turn token of the chat template, then the tokenizer's EOS token when it is another one."""
    turn_end, _ = chat_turn_end(tokenizer)
    ids = [i for i in (turn_end, tokenizer.eos_token_id) if i is not None]
    return list(dict.fromkeys(ids))


def set_generation_stop_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Write the chat template's end-of-turn token (and EOS) into ``generation_config.eos_token_id`` and the pad
    token into ``pad_token_id``, so `generate()` on the saved model stops where training taught it to."""
    ids = stop_token_ids(tokenizer)
    model.generation_config.eos_token_id = ids[0] if len(ids) == 1 else ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return ids


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def prompt_and_reference(example: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], str]:
    """The prompt token ids that generation starts from, and the reference answer, for one example.

    ``messages``: everything before the last assistant turn, rendered with the chat template and its generation
    prompt; the reference is that turn's content. ``prompt``/``completion``: the prompt (rendered like TRL's
    SFTTrainer renders it: through the chat template when conversational, tokenized as is otherwise).
    """
    if "messages" in example:
        messages = example["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise ValueError("a messages example has no assistant turn: every example needs the reference answer")
        prompt, reference = messages[:last], messages[last]["content"]
    elif "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        reference = completion[-1]["content"] if _is_conversation(completion) else completion
    else:
        raise ValueError(f"examples need a 'messages' column or 'prompt' and 'completion' columns, got {sorted(example)}")
    if _is_conversation(prompt):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False).input_ids
    else:
        ids = tokenizer(prompt).input_ids
    return ids, reference


@torch.no_grad()
def evaluate_exact_match(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 32,
    max_examples: int | None = None,
) -> dict[str, Any]:
    """Exact-match accuracy of greedy decoding on an instruction dataset (book §5.3's evaluation).

    Each prompt is completed greedily until the chat template's end-of-turn token (or `max_new_tokens`); the
    answer is the decoded text without special tokens, cut before the template's end-of-turn text, stripped, and
    compared with the stripped reference. Prompts are batched by length, so no padding is involved and the result
    is the same for every architecture (the RNN included) and batch size.

    Returns:
        ``{"exact_match": float, "num_examples": int, "predictions": [{"prompt_ids", "prediction", "reference",
        "correct", "stopped"}]}``; ``stopped`` says whether generation ended on a stop token.
    """
    examples = [dataset[i] for i in range(len(dataset) if max_examples is None else min(max_examples, len(dataset)))]
    if not examples:
        raise ValueError("the evaluation dataset is empty: pass a test split with at least one example")
    stop_ids = stop_token_ids(tokenizer)
    _, turn_end_text = chat_turn_end(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    by_length: dict[int, list[tuple[int, list[int], str]]] = defaultdict(list)
    for index, example in enumerate(examples):
        ids, reference = prompt_and_reference(example, tokenizer)
        by_length[len(ids)].append((index, ids, reference))

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[dict[str, Any] | None] = [None] * len(examples)
    for length in sorted(by_length):
        group = by_length[length]
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            input_ids = torch.tensor([ids for _, ids, _ in chunk], device=device)
            output = model.generate(
                input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                do_sample=False, eos_token_id=stop_ids, pad_token_id=pad_id,
            )
            for (index, ids, reference), row in zip(chunk, output[:, length:].tolist()):
                cut = next((i for i, token in enumerate(row) if token in stop_ids), None)
                answer = tokenizer.decode(row if cut is None else row[:cut], skip_special_tokens=True)
                if turn_end_text.strip() and turn_end_text.strip() in answer:
                    answer = answer[: answer.index(turn_end_text.strip())]
                prediction = answer.strip()
                results[index] = {"prompt_ids": ids, "prediction": prediction, "reference": reference.strip(),
                                  "correct": prediction == reference.strip(), "stopped": cut is not None}
    model.train(was_training)
    correct = sum(r["correct"] for r in results)
    return {"exact_match": correct / len(results), "num_examples": len(results), "predictions": results}


# --------------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage merge-adapter``."""
    parser.add_argument("adapter_dir", metavar="ADAPTER_DIR", help="folder with adapter_config.json and the adapter weights")
    parser.add_argument("output_dir", metavar="OUT_DIR", help="where to save the merged standalone model")
    parser.add_argument("--dtype", default=None, choices=DTYPES, help="dtype of the merged weights (default: as saved)")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the base model's own modeling code")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage merge-adapter``."""
    model = merge_adapter(
        args.adapter_dir, args.output_dir, dtype=args.dtype, overwrite_output_dir=args.overwrite_output_dir,
        trust_remote_code=args.trust_remote_code,
    )
    print(f"Merged {args.adapter_dir} into {type(model).__name__} ({model.num_parameters():,} parameters): {args.output_dir}")
    return 0
