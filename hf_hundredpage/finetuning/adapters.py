"""``hf-hundredpage merge-adapter``: fold a trained LoRA adapter into its base model and save a standalone model
folder (book §5.5), de-quantizing a 4-/8-bit base first."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
)

from ..outputs import check_output_dir, save_folder
from ..paths import resolve_model_path
from .peft import CLASSIFIER_HEAD_NAMES, DTYPES, PEFT_TASK_TYPES, quantized_device_map, torch_dtype


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


def _write_merged_card(folder: Path, output_dir: Path, adapter_dir: Path, base: str, merged, task_type: str) -> None:
    """The merged model's README.md, written in the staging `folder`; its snippet loads `output_dir` as given."""
    from ..hub import detect_hardware, model_family, write_model_card  # lazy: keeps hub and finetuning independent

    write_model_card(
        folder,
        model_name=output_dir.name,
        task="merge-adapter",
        model_family=model_family(merged.config),
        base_model=base,
        pipeline_tag="text-classification" if task_type == "SEQ_CLS" else None,
        repo_id=str(output_dir),
        hardware=f"{detect_hardware()} (where the adapter was merged; the adapter's card tells how it was trained)",
        extra_sections={
            "Parents": (
                f"- Base model: `{base}`\n"
                f"- Adapter: `{adapter_dir}` (LoRA, {task_type}), merged with `hf-hundredpage merge-adapter`"
            )
        },
    )


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
    tokenizer (the adapter folder's, else the base's), the adapter's ``generation_config.json`` when it has one and a
    model card (``README.md``, naming the base and the adapter) into a staging folder renamed to `output_dir` at the end, so a crash never leaves half a model behind.

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
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)

    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    base_name = peft_config.base_model_name_or_path
    if not base_name:
        raise ValueError(
            f"{adapter_dir}/adapter_config.json has no base_model_name_or_path: set it to the base model folder or Hub id"
        )
    recorded_base = base_name  # as the adapter names it, for the card
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
        base = auto_class.from_pretrained(base_name, dtype=torch_dtype(dtype or "auto"), **kwargs)
    else:  # a checkpoint saved in 4/8 bits: load it as saved, then de-quantize
        quantization = quantization if isinstance(quantization, dict) else quantization.to_dict()
        compute = str(quantization.get("bnb_4bit_compute_dtype") or "float32") if quantization.get("load_in_4bit") else "float32"
        base = auto_class.from_pretrained(base_name, device_map=quantized_device_map(), **kwargs).dequantize()
        base = base.to(torch_dtype(dtype if dtype not in (None, "auto") else compute.removeprefix("torch.")))

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
        _write_merged_card(folder, output_dir, adapter_dir, recorded_base, merged, task_type)

    save_folder(output_dir, save)
    return merged


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
