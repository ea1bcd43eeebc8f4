"""Model cards: the ``README.md`` that every recipe and command writes next to its model.

The card holds the metadata the Hub indexes (model-index with the model's metrics and its baseline's), how the model
was trained (command, config, hardware, time) and how to load it. One template, ``model_cards/model_card_template.md``,
serves every recipe; each recipe passes its own metrics, baseline and extra sections.
"""

from __future__ import annotations

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
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import validate_repo_id
from transformers.utils import logging


logger = logging.get_logger(__name__)


def _find_model_card_template() -> Path:
    """`model_cards/` of the source checkout (editable installs), else the copy a wheel installs as data files."""
    name = Path("model_cards") / "model_card_template.md"
    candidates = [Path(__file__).resolve().parents[2] / name, Path(sys.prefix) / "share" / "hf_hundredpage" / name]
    return next((path for path in candidates if path.is_file()), candidates[0])


MODEL_CARD_TEMPLATE = _find_model_card_template()

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
    "preference_rate": MetricSpec("preference_rate", "Preference rate (greedy answer = chosen)", higher_is_better=True),
    "kl_to_start": MetricSpec("kl_divergence", "KL from the starting model (nats/token)", higher_is_better=False),
    "margin": MetricSpec("margin", "Mean reward margin (chosen - rejected)", higher_is_better=True),
    "rouge1": MetricSpec("rouge", "ROUGE-1", higher_is_better=True, config="rouge1"),
    "rouge2": MetricSpec("rouge", "ROUGE-2", higher_is_better=True, config="rouge2"),
    "rougeL": MetricSpec("rouge", "ROUGE-L", higher_is_better=True, config="rougeL"),
    "bleu": MetricSpec("bleu", "BLEU", higher_is_better=True),
    "reward": MetricSpec("reward", "Mean reward of greedy answers (the run's reward functions)", higher_is_better=True),
}
# Order of preference for the one number quoted in the card's summary paragraph.
HEADLINE_METRICS = ("perplexity", "accuracy", "macro_f1", "bits_per_byte", "loss")
BASELINE_PREFIX = "ngram_"
_SPLIT_PREFIXES = ("eval", "test")

FAMILY_DESCRIPTIONS = {
    "transformer": "a decoder-only Transformer language model (book ch. 4)",
    "rnn": "an Elman recurrent neural network language model (book ch. 3)",
}
TASK_DESCRIPTIONS = {
    "pretrain": "trained from scratch to predict the next token",
    "convert": "converted from the book's PyTorch notebook checkpoint",
    "sft": "fine-tuned on instruction-response pairs with supervised finetuning (book ch. 5)",
    "lora": "fine-tuned with low-rank adapters (LoRA, book ch. 5)",
    "qlora": "fine-tuned with low-rank adapters over a 4-bit quantized base (QLoRA, book ch. 5)",
    "classify": "fine-tuned to classify text (book ch. 5)",
    "merge-adapter": "a LoRA adapter merged into its base model (book §5.5)",
    "dpo": "aligned with human preferences by direct preference optimization (DPO, book §6.4)",
    "reward": "trained as a reward model that scores answers by preference (book §6.4)",
    "kto": "aligned with preferences from answers labelled desirable or not (KTO, book §6.4)",
    "orpo": "aligned with preferences by odds ratio preference optimization, without a reference model (ORPO, book §6.4)",
    "grpo": "trained to reason with group relative policy optimization on programmatic rewards (GRPO, book §6.5)",
    "distill": "distilled from a larger teacher model's next-token distributions (knowledge distillation, book §6.3)",
    "prune": "pruned after training to fewer or sparser weights (book §6.3)",
    "quantize": "quantized after training to fewer bits per weight (post-training quantization, book §6.3)",
    "merge": "merged from several models' weights without training (model merging, book §6.2)",
    "upcycle": "upcycled from a dense transformer into a sparse mixture of experts (book §6.1)",
}
TASK_NAMES = {"text-generation": "Language modeling", "text-classification": "Text classification"}
CLASSIFICATION_TASKS = ("classify", "reward")
# Tasks whose model continues plain text: their quick start never uses the chat template, even when the tokenizer
# ships one (the book's tokenizer does). A classifier in these tasks that writes its label gets the label snippet.
TEXT_CONTINUATION_TASKS = ("pretrain", "convert", "distill", *CLASSIFICATION_TASKS)
# Quick-start snippets (the template's `quick_start`), each with the input it shows.
EXAMPLE_TEXTS = {
    "generation": "Once upon a time",
    "chat": "What is a language model?",
    "label-generation": "i feel so happy about the trip",
    "classification": "This book explains language models clearly and briefly.",
    "reward": "What is a language model?\nAnswer: A model of the next token.",
}


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
    resumed: bool = False,
    prompt_template: str | None = None,
    pipeline_tag: str | None = None,
    tags: list[str] | None = None,
    extra_sections: dict[str, str] | None = None,
    repo_id: str | None = None,
    eval_dataset: str | None = None,
    template_path: str | os.PathLike | None = None,
    num_parameters: int | None = None,
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
        num_parameters: the model's parameter count, for folders whose safetensors do not hold one value per
            parameter (quantized weights packed two per byte or split into data and scales); default: counted
            from the safetensors headers.
        config: the training configuration, shown as YAML.
        hardware: a description of the hardware; detected from the current machine when None.
        train_runtime: training time in seconds; ``metrics["train_runtime"]`` when None.
        resumed: the run was interrupted and resumed from a checkpoint (time and loss are the whole run's); the
            card says so in its training section and next to the training time.
        prompt_template: the prompt a label-generation classifier completes (``{text}`` is the input); with a
            ``text-generation`` pipeline the quick start fills it with an example text and decodes the label, and
            the card shows it.
        pipeline_tag: ``text-generation`` or ``text-classification``; inferred from ``task`` when None.
        tags: extra tags, after ``hf-hundredpage``, the family and the task.
        extra_sections: more sections, title -> markdown body, placed before the limitations.
        repo_id: the Hub id (or path) that the quick-start snippet loads; ``output_dir`` as given when None.
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
    if prompt_template is not None and "{text}" not in prompt_template:
        raise ValueError(f"prompt_template {prompt_template!r} has no '{{text}}' placeholder for the text.")
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
    num_parameters = num_parameters or _count_parameters(output_dir)
    quick_start = _quick_start(task, pipeline_tag, prompt_template, _has_chat_template(output_dir))
    # The caller's own spelling of the folder (relative stays relative): the card records no path it was not given.
    repo_or_path = repo_id or str(output_dir)
    example_text = EXAMPLE_TEXTS[quick_start]
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
        quick_start=quick_start if quick_start in ("classification", "reward") else "generation",
        generation_mode=quick_start,
        chat=quick_start == "chat",
        example_text=example_text,
        example_literal=_python_string(example_text),
        repo_or_path=repo_or_path,
        repo_literal=_python_string(repo_or_path),
        prompt_template=prompt_template if quick_start == "label-generation" else None,
        prompt_template_literal=_python_string(prompt_template) if quick_start == "label-generation" else None,
        prompt_template_fence=_fence(prompt_template or ""),
        resumed=resumed,
        trust_remote_code=_needs_remote_code(output_dir),
        command=command.strip() if command else None,
        config_yaml=_config_to_yaml(config) if config else None,
        training_datasets=[
            {"name": name, "url": f"https://huggingface.co/datasets/{name}" if _is_hub_id(name) else None}
            for name in datasets
        ],
        hardware=hardware or detect_hardware(),
        train_time=(_format_duration(train_runtime) + (" (whole run, resumed from a checkpoint)" if resumed else ""))
        if train_runtime is not None else None,
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
    """The model card's family: ``transformer`` / ``rnn`` for the book's models, the model type otherwise."""
    return config.model_type.removeprefix("hundredpage_")


def _quick_start(task: str, pipeline_tag: str, prompt_template: str | None, has_chat_template: bool) -> str:
    """Which snippet shows how to use the model: what the model is for, not only what its tokenizer can do.

    ``reward`` for a reward model (one score per prompt + answer); ``classification`` for a classification head; ``label-generation`` for a classifier that writes its label after
    `prompt_template`; ``generation`` (plain text continuation) for pretrained / converted models, whose tokenizer
    may ship a chat template they were never trained on; ``chat`` for the other tasks (sft, lora, qlora,
    merge-adapter, unknown ones) when the tokenizer has a chat template, ``generation`` otherwise.
    """
    if task == "reward":
        return "reward"
    if pipeline_tag == "text-classification":
        return "classification"
    if prompt_template is not None:
        return "label-generation"
    if task in TEXT_CONTINUATION_TASKS or not has_chat_template:
        return "generation"
    return "chat"


def _python_string(text: str) -> str:
    """`text` as a double-quoted Python string literal (quotes, backslashes and newlines escaped)."""
    return json.dumps(text, ensure_ascii=False)  # every JSON string escape is also a Python one


def _fence(text: str) -> str:
    """A markdown code fence longer than any run of backticks in `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


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
