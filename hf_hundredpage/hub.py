"""Model cards and publishing to the Hugging Face Hub.

A model is only as useful as what others can learn about it and load from it. This module writes the model card
(``README.md``: metadata the Hub indexes, plus how the model was trained and how it compares with the book's
count-based baseline of section 2.5, scored with the perplexity of section 2.6) and uploads a trained folder with
``huggingface_hub`` after checking that ``from_pretrained`` will find everything it needs.

Typical use at the end of a recipe::

    card = write_model_card(output_dir, model_name="tiny-transformer", metrics=metrics, command=" ".join(sys.argv))
    maybe_push_to_hub(output_dir, training_args)

and from the shell::

    hf-hundredpage publish out/tiny-transformer my-user/tiny-transformer --private
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import struct
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects, validate_repo_id
from transformers.dynamic_module_utils import get_relative_imports
from transformers.utils import logging


logger = logging.get_logger(__name__)

def _find_model_card_template() -> Path:
    """`model_cards/` of the source checkout (editable installs), else the copy a wheel installs as data files."""
    name = Path("model_cards") / "model_card_template.md"
    candidates = [Path(__file__).resolve().parent.parent / name, Path(sys.prefix) / "share" / "hf_hundredpage" / name]
    return next((path for path in candidates if path.is_file()), candidates[0])


MODEL_CARD_TEMPLATE = _find_model_card_template()

# Never uploaded: intermediate Trainer checkpoints, TensorBoard logs, temporary and byte-compiled files.
# `filter_repo_objects` matches these with fnmatch on paths relative to the folder ("*" also matches "/").
PUBLISH_IGNORE_PATTERNS: tuple[str, ...] = (
    "checkpoint-*",
    "*/checkpoint-*",
    "runs/",
    "*/runs/*",
    "*.tmp",
    "__pycache__/",
    "*/__pycache__/*",
    "*.pyc",
)

# The files that `from_pretrained` reads.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class MetricSpec(NamedTuple):
    """How a metric of ``metrics.json`` appears in the model-index and in the card's table."""

    type: str  # model-index `metrics[].type`: an id of https://huggingface.co/metrics or a plain name
    name: str  # human-readable name
    higher_is_better: bool
    config: str | None = None  # model-index `metrics[].config` (e.g. the averaging of an F1)


# Metric name in metrics.json, after its split prefix ("eval_", "test_") -> how to report it.
# Keys follow `hf_hundredpage.evaluation` and the Trainer / TRL trainers' logged metrics.
KNOWN_METRICS: dict[str, MetricSpec] = {
    "perplexity": MetricSpec("perplexity", "Perplexity", higher_is_better=False),
    "bits_per_byte": MetricSpec("bits_per_byte", "Bits per byte", higher_is_better=False),
    "bits_per_token": MetricSpec("bits_per_token", "Bits per token", higher_is_better=False),
    "loss": MetricSpec("loss", "Cross-entropy loss", higher_is_better=False),
    "accuracy": MetricSpec("accuracy", "Accuracy", higher_is_better=True),
    "macro_f1": MetricSpec("f1", "Macro F1", higher_is_better=True, config="macro"),
    "micro_f1": MetricSpec("f1", "Micro F1", higher_is_better=True, config="micro"),
    "f1": MetricSpec("f1", "F1", higher_is_better=True),
    "precision": MetricSpec("precision", "Precision", higher_is_better=True),
    "recall": MetricSpec("recall", "Recall", higher_is_better=True),
    "mean_token_accuracy": MetricSpec("accuracy", "Token accuracy", higher_is_better=True, config="token"),
    "rewards/accuracies": MetricSpec("accuracy", "Preference accuracy", higher_is_better=True, config="preference"),
    "exact_match": MetricSpec("exact_match", "Exact match", higher_is_better=True),
    "rouge1": MetricSpec("rouge", "ROUGE-1", higher_is_better=True, config="rouge1"),
    "rouge2": MetricSpec("rouge", "ROUGE-2", higher_is_better=True, config="rouge2"),
    "rougeL": MetricSpec("rouge", "ROUGE-L", higher_is_better=True, config="rougeL"),
    "bleu": MetricSpec("bleu", "BLEU", higher_is_better=True),
}
# Order of preference for the one number quoted in the card's summary paragraph.
HEADLINE_METRICS = ("perplexity", "accuracy", "macro_f1", "bits_per_byte", "loss")
BASELINE_PREFIX = "ngram_"
_SPLIT_PREFIXES = ("eval", "test")

FAMILY_DESCRIPTIONS = {
    "transformer": "a decoder-only Transformer language model (book ch. 4)",
    "moe": "a decoder-only Transformer language model with sparse mixture-of-experts layers (book §6.1)",
    "rnn": "an Elman recurrent neural network language model (book ch. 3)",
}
TASK_DESCRIPTIONS = {
    "pretrain": "trained from scratch to predict the next token",
    "convert": "converted from the book's PyTorch notebook checkpoint",
    "sft": "fine-tuned on instruction-response pairs with supervised finetuning (book ch. 5)",
    "lora": "fine-tuned with low-rank adapters (LoRA, book ch. 5)",
    "qlora": "fine-tuned with low-rank adapters over a 4-bit quantized base (QLoRA, book ch. 5)",
    "classify": "fine-tuned to classify text (book ch. 5)",
    "reward": "trained as a reward model that scores responses",
    "dpo": "aligned to human preferences with direct preference optimization",
    "grpo": "fine-tuned with group relative policy optimization against a reward",
    "merge": "merged from fine-tuned models (book §6.2)",
    "quantize": "quantized to use less memory (book §6.3)",
    "prune": "pruned to fewer parameters (book §6.3)",
    "distill": "distilled from a larger teacher model (book §6.3)",
}
TASK_NAMES = {"text-generation": "Language modeling", "text-classification": "Text classification"}
CLASSIFICATION_TASKS = ("classify", "reward")
EXAMPLE_TEXTS = {
    "generation": "Once upon a time",
    "chat": "What is a language model?",
    "classification": "This book explains language models clearly and briefly.",
}


class HubConnectionError(ConnectionError):
    """The Hugging Face Hub could not be reached (no network, proxy, firewall, offline mode)."""


# --------------------------------------------------------------------------------------------------- model card


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    model_name: str,
    task: str = "pretrain",
    model_family: str = "transformer",
    license: str = "apache-2.0",
    base_model: str | None = None,
    datasets: str | list[str] | None = None,
    dataset_split: str = "validation",
    metrics: dict[str, Any] | None = None,
    baseline_metrics: dict[str, Any] | None = None,
    baseline_name: str = "n-gram (Kneser-Ney)",
    baseline_description: str | None = None,
    command: str | None = None,
    config: dict[str, Any] | None = None,
    hardware: str | None = None,
    train_runtime: float | None = None,
    pipeline_tag: str | None = None,
    tags: list[str] | None = None,
    extra_sections: dict[str, str] | None = None,
    repo_id: str | None = None,
    eval_dataset: str | None = None,
    template_path: str | os.PathLike | None = None,
) -> ModelCard:
    """Render the model card of a trained folder and save it as ``output_dir/README.md``.

    One template (``model_cards/model_card_template.md``) serves every recipe; sections whose data is missing
    (command, config, datasets, metrics, loss curve) are left out.

    Args:
        output_dir: the saved model folder (it is read to detect adapters, chat templates, remote code, the
            parameter count and ``loss_curve.png``).
        model_name: the name shown in the title and the model-index.
        task: the recipe that produced the model (``pretrain``, ``sft``, ``lora``, ``classify``, ...).
        model_family: ``transformer``, ``moe``, ``rnn`` or any other architecture name.
        license: an SPDX-style license id of the Hub.
        base_model: the model this one was fine-tuned from; put in the metadata when it is a Hub id.
        datasets: training datasets; Hub ids go in the metadata and get a link.
        dataset_split: the split that ``eval_*`` metrics were computed on.
        metrics: a metrics.json dict (``eval_perplexity``, ``ngram_eval_bits_per_byte``, ``test_accuracy``, ...);
            metrics of `KNOWN_METRICS` become model-index entries and table rows, other keys are ignored. A bare
            name (``perplexity``) counts as ``eval_perplexity``.
        baseline_metrics: the baseline's metrics, with or without the ``ngram_`` prefix; they complete the
            ``ngram_*`` keys of ``metrics``.
        baseline_name: how the baseline is named in the card.
        baseline_description: one or two sentences under the metrics table saying what the baseline is; the
            default describes the book's n-gram model (section 2.5) for ``pretrain`` and stays generic otherwise.
        command: the exact command line that trained the model.
        config: the training configuration, shown as YAML.
        hardware: a description of the hardware; detected from the current machine when None.
        train_runtime: training time in seconds; ``metrics["train_runtime"]`` when None.
        pipeline_tag: ``text-generation`` or ``text-classification``; inferred from ``task`` when None.
        tags: extra tags, after ``hf-hundredpage``, the family and the task.
        extra_sections: more sections, title -> markdown body, placed before the limitations.
        repo_id: the Hub id (or path) that the quick-start snippet loads; the folder name when None.
        eval_dataset: the dataset the metrics were computed on; the first of ``datasets`` when None.
        template_path: another Jinja template to render instead of the packaged one.

    Returns:
        The rendered `huggingface_hub.ModelCard`, also saved to ``output_dir/README.md``.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir} is not a directory: save the model there before writing its card.")
    template_path = Path(template_path) if template_path is not None else MODEL_CARD_TEMPLATE
    if not template_path.is_file():
        raise FileNotFoundError(
            f"model card template {template_path} not found: install hf_hundredpage from a source checkout "
            "(pip install -e .) or pass template_path=."
        )
    if pipeline_tag is None:
        pipeline_tag = "text-classification" if task in CLASSIFICATION_TASKS else "text-generation"
    if isinstance(datasets, str):
        datasets = [datasets]
    datasets = list(datasets or [])
    metrics = dict(metrics or {})
    if train_runtime is None and isinstance(metrics.get("train_runtime"), (int, float)):
        train_runtime = float(metrics["train_runtime"])

    model_values, baseline_values = _collect_metrics(metrics, baseline_metrics)
    eval_dataset = eval_dataset or (datasets[0] if datasets else None)
    eval_results = _eval_results(
        model_values,
        baseline_values,
        baseline_name=baseline_name,
        pipeline_tag=pipeline_tag,
        dataset=eval_dataset,
        dataset_split=dataset_split,
    )

    is_adapter = (output_dir / ADAPTER_CONFIG_FILE).is_file()
    hub_base_model = base_model if base_model is not None and _is_hub_id(base_model) else None
    card_data = ModelCardData(
        model_name=model_name if eval_results else None,  # the Hub reads the name from the model-index
        license=license,
        library_name="peft" if is_adapter else "transformers",
        tags=_unique(["hf-hundredpage", model_family, task, *(["peft", "lora"] if is_adapter else []), *(tags or [])]),
        datasets=[name for name in datasets if _is_hub_id(name)] or None,
        pipeline_tag=pipeline_tag,
        base_model=hub_base_model,
        eval_results=eval_results or None,
    )

    rows = _metric_rows(model_values, baseline_values, dataset_split=dataset_split)
    headline = next(
        (row for key in HEADLINE_METRICS for row in rows if row["key"] == key and row["split"] == dataset_split),
        None,
    )
    loss_curve = "loss_curve.png" if (output_dir / "loss_curve.png").is_file() else None
    num_parameters = _count_parameters(output_dir)
    classification = pipeline_tag == "text-classification"
    chat = not classification and _has_chat_template(output_dir)
    card = ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        family_description=FAMILY_DESCRIPTIONS.get(model_family, f"{_article(model_family)} {model_family} model"),
        task_description=TASK_DESCRIPTIONS.get(task, f"trained with the `{task}` recipe"),
        base_model=base_model,
        base_model_url=f"https://huggingface.co/{hub_base_model}" if hub_base_model else None,
        num_parameters=_format_count(num_parameters) if num_parameters else None,
        is_adapter=is_adapter,
        quick_start="classification" if classification else "generation",
        chat=chat,
        example_text=EXAMPLE_TEXTS["classification" if classification else "chat" if chat else "generation"],
        repo_or_path=repo_id or output_dir.name,
        trust_remote_code=_needs_remote_code(output_dir),
        command=command.strip() if command else None,
        config_yaml=_config_to_yaml(config) if config else None,
        training_datasets=[
            {"name": name, "url": f"https://huggingface.co/datasets/{name}" if _is_hub_id(name) else None}
            for name in datasets
        ],
        hardware=hardware or detect_hardware(),
        train_time=_format_duration(train_runtime) if train_runtime is not None else None,
        metric_rows=rows,
        has_baseline=any(row["baseline"] != "–" for row in rows),
        headline_metric=headline,
        baseline_name=baseline_name,
        baseline_description=baseline_description or _default_baseline_description(task, baseline_name),
        dataset_split=dataset_split,
        eval_dataset=eval_dataset or "held-out text",
        loss_curve=loss_curve,
        extra_sections=[{"title": title, "body": body.strip()} for title, body in (extra_sections or {}).items()],
        library_version=_library_version(),
        library_year=datetime.now(timezone.utc).year,
    )
    card.content = card.content.rstrip("\n") + "\n"  # Jinja drops the template's final newline
    card.save(output_dir / "README.md")
    return card


def model_family(config) -> str:
    """The model card's family: ``transformer`` / ``moe`` / ``rnn`` for the book's models, the model type otherwise."""
    if config.model_type == "hundredpage_transformer":
        return "moe" if (getattr(config, "num_local_experts", 0) or 0) > 1 else "transformer"
    return config.model_type.removeprefix("hundredpage_")


def _default_baseline_description(task: str, baseline_name: str) -> str:
    if task == "pretrain":
        return (
            "The baseline is the count-based n-gram language model of the book's section 2.5, scored on the same "
            "text; a neural model that does not beat it has learned little beyond local word statistics."
        )
    return f"The baseline ({baseline_name}) is scored on the same split with the same metrics."


def _collect_metrics(
    metrics: dict[str, Any], baseline_metrics: dict[str, Any] | None
) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """Split metrics.json-style keys into {(split prefix, metric): value} for the model and for the baseline.

    A bare known name (``perplexity``, as `hf_hundredpage.evaluation` returns it) counts as the ``eval`` split.
    """
    model_values: dict[tuple[str, str], float] = {}
    baseline_values: dict[tuple[str, str], float] = {}
    sources = [(metrics, False)]
    if baseline_metrics:
        sources.append((baseline_metrics, True))
    for source, all_baseline in sources:
        for key, value in source.items():
            is_baseline = all_baseline or key.startswith(BASELINE_PREFIX)
            name = key.removeprefix(BASELINE_PREFIX)
            prefix, _, metric = name.partition("_") if name not in KNOWN_METRICS else ("eval", "", name)
            if prefix not in _SPLIT_PREFIXES or metric not in KNOWN_METRICS:
                continue
            if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
                raise ValueError(f"metric {key!r} must be a number, got {value!r}: pass plain floats in metrics.")
            (baseline_values if is_baseline else model_values)[(prefix, metric)] = float(value)
    return model_values, baseline_values


def _split_name(prefix: str, dataset_split: str) -> str:
    return dataset_split if prefix == "eval" else prefix


def _eval_results(
    model_values: dict[tuple[str, str], float],
    baseline_values: dict[tuple[str, str], float],
    *,
    baseline_name: str,
    pipeline_tag: str,
    dataset: str | None,
    dataset_split: str,
) -> list[EvalResult]:
    """The model-index: the model's metrics, then the baseline's as ``baseline_<type>`` metrics."""
    results = []
    for values, is_baseline in ((model_values, False), (baseline_values, True)):
        for (prefix, metric), value in _ordered(values):
            if not math.isfinite(value):
                logger.warning(f"{metric} = {value} is not finite: left out of the model-index.")
                continue
            spec = KNOWN_METRICS[metric]
            results.append(
                EvalResult(
                    task_type=pipeline_tag,
                    task_name=TASK_NAMES.get(pipeline_tag),
                    dataset_type=dataset if dataset and _is_hub_id(dataset) else "custom",
                    dataset_name=Path(dataset).name if dataset else "held-out text",
                    dataset_split=_split_name(prefix, dataset_split),
                    metric_type=f"baseline_{spec.type}" if is_baseline else spec.type,
                    metric_name=f"{spec.name}, {baseline_name} baseline" if is_baseline else spec.name,
                    metric_config=spec.config,
                    metric_value=value,
                )
            )
    return results


def _metric_rows(
    model_values: dict[tuple[str, str], float], baseline_values: dict[tuple[str, str], float], *, dataset_split: str
) -> list[dict[str, Any]]:
    """Rows of the card's table, model next to baseline, in the order of `KNOWN_METRICS`."""
    rows = []
    for (prefix, metric), _ in _ordered({**baseline_values, **model_values}):
        spec = KNOWN_METRICS[metric]
        split = _split_name(prefix, dataset_split)
        model_value, baseline_value = model_values.get((prefix, metric)), baseline_values.get((prefix, metric))
        rows.append(
            {
                "key": metric,
                "split": split,
                "pretty": spec.name if split == dataset_split else f"{spec.name}, {split}",
                "sentence_name": spec.name[0].lower() + spec.name[1:] if spec.name[1:2].islower() else spec.name,
                "direction": "higher is better" if spec.higher_is_better else "lower is better",
                "value": _format_number(model_value) if model_value is not None else "–",
                "baseline": _format_number(baseline_value) if baseline_value is not None else "–",
            }
        )
    return rows


def _ordered(values: dict[tuple[str, str], float]) -> list[tuple[tuple[str, str], float]]:
    order = list(KNOWN_METRICS)
    return sorted(values.items(), key=lambda item: (_SPLIT_PREFIXES.index(item[0][0]), order.index(item[0][1])))


def detect_hardware() -> str:
    """Describe the accelerators and CPU of this machine, e.g. ``1 × NVIDIA H100 80GB HBM3 (CUDA 12.8)``."""
    import torch

    cpu = f"{_cpu_name()} ({os.cpu_count()} logical cores)"
    if torch.cuda.is_available():
        names = Counter(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        gpus = ", ".join(f"{count} × {name}" for name, count in names.items())
        runtime = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {torch.version.hip}"
        return f"{gpus} ({runtime}); CPU: {cpu}"
    if torch.backends.mps.is_available():
        return f"Apple silicon GPU (MPS); CPU: {cpu}"
    return f"CPU only: {cpu}"


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(errors="replace"), flags=re.MULTILINE)
        if match:
            return " ".join(match.group(1).split())
    return platform.processor() or platform.machine() or "unknown CPU"


def _count_parameters(folder: Path) -> int | None:
    """Count the parameters stored in the folder's safetensors files from their headers (no tensor is loaded)."""
    if (folder / ADAPTER_WEIGHTS_FILE).is_file():
        files = [folder / ADAPTER_WEIGHTS_FILE]
    elif (folder / WEIGHTS_FILE).is_file():
        files = [folder / WEIGHTS_FILE]
    elif (folder / WEIGHTS_INDEX_FILE).is_file():
        weight_map = json.loads((folder / WEIGHTS_INDEX_FILE).read_text()).get("weight_map", {})
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        return None
    total = 0
    for file in files:
        # safetensors layout: an 8-byte little-endian header length, then a JSON header of dtypes and shapes.
        with open(file, "rb") as f:
            (header_length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_length))
        total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return total


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tokenizer_config = folder / "tokenizer_config.json"
    return tokenizer_config.is_file() and bool(_read_json(tokenizer_config).get("chat_template"))


def _needs_remote_code(folder: Path) -> bool:
    """Whether loading needs ``trust_remote_code=True``: the config (for an adapter, its base's) has ``auto_map``."""
    config_file = folder / CONFIG_FILE
    if not config_file.is_file() and (folder / ADAPTER_CONFIG_FILE).is_file():
        base = _read_json(folder / ADAPTER_CONFIG_FILE).get("base_model_name_or_path")
        config_file = Path(base) / CONFIG_FILE if base else config_file
    if not config_file.is_file():
        return True  # unknown (e.g. a base model on the Hub): our models all ship their code
    return "auto_map" in _read_json(config_file)


def _config_to_yaml(config: dict[str, Any]) -> str:
    # Paths, enums and dataclass fields become strings; the JSON round trip keeps YAML output plain.
    plain = json.loads(json.dumps(config, default=str))
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).rstrip()


def _format_number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _format_count(count: int) -> str:
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= threshold:
            return f"{count / threshold:.3g}{suffix}"
    return str(count)


def _format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _is_hub_id(name: str) -> bool:
    """A Hub repo id (``owner/name`` or ``name``) that is not a local path."""
    if Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except ValueError:
        return False
    return True


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hf-hundredpage")
    except PackageNotFoundError:
        return "source checkout"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): save the folder again with save_pretrained().") from err


# --------------------------------------------------------------------------------------------------- publishing


def check_loadable_folder(folder: str | os.PathLike) -> list[str]:
    """Check that ``from_pretrained`` can load ``folder`` and list the files that `publish` uploads.

    A loadable folder has ``config.json`` and ``model.safetensors`` (or ``model.safetensors.index.json`` and
    every shard it names) -- or, for a PEFT adapter, ``adapter_config.json`` and
    ``adapter_model.safetensors`` --, a tokenizer (``tokenizer.json`` or ``tokenizer_config.json``), and every
    code file that ``auto_map`` (remote code) names, with the files those import relatively.

    Returns:
        The paths, relative to ``folder`` and sorted, of the files to upload: everything but Trainer checkpoints,
        TensorBoard runs and temporary files (`PUBLISH_IGNORE_PATTERNS`).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: something needed to load the model is missing; the message lists all of it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory: pass the folder the model was saved to.")
    files = sorted(
        filter_repo_objects(
            (path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()),
            ignore_patterns=[*PUBLISH_IGNORE_PATTERNS, *DEFAULT_IGNORE_PATTERNS],
        )
    )
    present = set(files)
    missing: list[str] = []

    if ADAPTER_CONFIG_FILE in present:
        if ADAPTER_WEIGHTS_FILE not in present:
            missing.append(ADAPTER_WEIGHTS_FILE)
    else:
        if CONFIG_FILE not in present:
            missing.append(CONFIG_FILE)
        if WEIGHTS_INDEX_FILE in present:
            weight_map = _read_json(folder / WEIGHTS_INDEX_FILE).get("weight_map", {})
            missing += sorted(set(weight_map.values()) - present)
        elif WEIGHTS_FILE not in present:
            missing.append(f"{WEIGHTS_FILE} (or {WEIGHTS_INDEX_FILE} with its shards)")
    if not present.intersection(TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))

    for config_name in (CONFIG_FILE, "tokenizer_config.json"):
        if config_name in present:
            missing += [code for code in _auto_map_code_files(folder, config_name) if code not in present]

    if missing:
        missing = _unique(missing)
        raise ValueError(
            f"{folder} cannot be loaded with from_pretrained, it lacks: {', '.join(missing)}. "
            "Save the model and tokenizer there with save_pretrained() (register_for_auto_class() for remote code)."
        )
    return files


def _auto_map_code_files(folder: Path, config_name: str) -> list[str]:
    """The ``.py`` files named by ``auto_map`` in a config, plus what they import relatively (as transformers does)."""
    references: list[str] = []
    for value in _read_json(folder / config_name).get("auto_map", {}).values():
        references += value if isinstance(value, (list, tuple)) else [value]
    # "repo--module.Class" points at code in another Hub repo: nothing to check here.
    pending = [f"{ref.rsplit('.', 1)[0].replace('.', '/')}.py" for ref in references if ref and "--" not in ref]
    code_files: list[str] = []
    while pending:
        code = pending.pop()
        if code in code_files:
            continue
        code_files.append(code)
        if (folder / code).is_file():
            pending += [f"{module.replace('.', '/')}.py" for module in get_relative_imports(folder / code)]
    return code_files


def _connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the Hub could not be reached", whatever HTTP client huggingface_hub uses."""
    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    # huggingface_hub 2.x talks through `httpx2`; 1.x used `httpx` and 0.x `requests`.
    for module_name, names in (
        ("httpx2", ("TransportError",)),
        ("httpx", ("TransportError",)),
        ("requests.exceptions", ("ConnectionError", "Timeout")),
    ):
        try:
            module = __import__(module_name, fromlist=list(names))
        except ImportError:
            continue
        errors += [getattr(module, name) for name in names]
    return tuple(errors)


def publish(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload a loadable model folder to the Hub (creating the repo if needed) and return the commit URL.

    The folder is checked with `check_loadable_folder` first, so a broken folder never reaches the Hub.
    Checkpoints, TensorBoard runs and temporary files stay local (`PUBLISH_IGNORE_PATTERNS`).

    Args:
        folder: the saved model folder.
        repo_id: ``owner/name`` (or ``name``, under the token's user).
        private: create the repo private (an existing repo keeps its visibility).
        token: a write token; ``HF_TOKEN`` or the cached login when None.
        revision: the branch to commit to; created from the default branch when missing.
        commit_message: the commit title; "Upload <folder name> with hf_hundredpage" when None.
        create_pr: open a pull request against the default branch instead of committing to it.

    Raises:
        HubConnectionError: the Hub could not be reached (a `ConnectionError`); nothing was uploaded.
        PermissionError: the token is missing or cannot write to ``repo_id``.
    """
    folder = Path(folder)
    if "README.md" not in check_loadable_folder(folder):
        logger.warning(f"{folder} has no README.md: write one with hf_hundredpage.hub.write_model_card().")
    validate_repo_id(repo_id)
    if create_pr and revision not in (None, "main"):
        raise ValueError("create_pr opens a pull request against the default branch: drop revision or create_pr.")

    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None and revision != "main" and not create_pr:
            api.create_branch(repo_url.repo_id, branch=revision, exist_ok=True)
    except _connection_errors() as err:
        raise HubConnectionError(_unreachable_message(api, err, "nothing was uploaded")) from err
    except HfHubHTTPError as err:
        _raise_for_auth(err, repo_id)
        raise

    try:
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.resolve().name} with hf_hundredpage",
            create_pr=create_pr,
            ignore_patterns=list(PUBLISH_IGNORE_PATTERNS),
        )
    except _connection_errors() as err:
        # In a single commit (the default for small folders) nothing is committed until the end; a large folder
        # goes in several commits, and running the same command again uploads only what is missing.
        raise HubConnectionError(
            _unreachable_message(api, err, f"the upload to {repo_url.repo_id} did not complete; run it again")
        ) from err
    except HfHubHTTPError as err:
        _raise_for_auth(err, repo_id)
        raise
    logger.info(f"Uploaded {folder} to {commit.pr_url or commit.commit_url}")
    return commit.commit_url


def _unreachable_message(api: HfApi, err: BaseException, consequence: str) -> str:
    return (
        f"cannot reach the Hugging Face Hub at {api.endpoint} ({type(err).__name__}: {err}); {consequence}. "
        "Check the network (proxy, HF_ENDPOINT, HF_HUB_OFFLINE) and that HF_TOKEN holds a write token."
    )


def _raise_for_auth(err: HfHubHTTPError, repo_id: str) -> None:
    status = err.response.status_code if err.response is not None else None
    if status in (401, 403):
        raise PermissionError(
            f"the Hub refused to write to {repo_id} (HTTP {status}): set HF_TOKEN (or pass --token) to a token "
            "with write access to that namespace."
        ) from err


def maybe_push_to_hub(output_dir: str | os.PathLike, training_args_like: Any) -> str | None:
    """Publish ``output_dir`` when ``training_args_like.push_to_hub`` is set; return the commit URL, else None.

    Reads the `transformers.TrainingArguments` fields ``push_to_hub``, ``hub_model_id`` (the folder name when
    unset), ``hub_token``, ``hub_private_repo`` and ``hub_revision``; any object with those attributes works.
    """
    if not getattr(training_args_like, "push_to_hub", False):
        return None
    return publish(
        output_dir,
        getattr(training_args_like, "hub_model_id", None) or Path(output_dir).resolve().name,
        private=bool(getattr(training_args_like, "hub_private_repo", None)),
        token=getattr(training_args_like, "hub_token", None),
        revision=getattr(training_args_like, "hub_revision", None),
    )


# --------------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage publish``."""
    parser.add_argument("folder", metavar="DIR", help="the saved model folder (config, weights, tokenizer, card)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub repo, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--token", default=None, help="a Hub write token (default: HF_TOKEN or the cached login)")
    parser.add_argument("--revision", default=None, help="the branch to commit to (created if missing)")
    parser.add_argument("--commit_message", default=None, help="the commit title")
    parser.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage publish``."""
    files = check_loadable_folder(args.folder)
    print(f"Uploading {len(files)} files from {args.folder} to {args.repo_id} ...")
    url = publish(
        args.folder,
        args.repo_id,
        private=args.private,
        token=args.token,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
    )
    print(f"Done: {url}")
    return 0
