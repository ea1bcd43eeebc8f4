"""``hf-hundredpage merge CONFIG OUT``: model merging (book §6.2) from a mergekit YAML file, with mergekit as the engine.

The configuration is mergekit's schema (``merge_method``, ``models`` with ``parameters`` such as ``weight`` and
``density``, ``base_model``, ``slices`` with ``layer_range`` for passthrough, global ``parameters`` such as ``t``,
``normalize``, ``int8_mask``, ``lambda``, and ``dtype``, ``tokenizer_source``), so a mergekit user's file runs unchanged
for the methods below. The arithmetic is mergekit's own (`mergekit.merge.run_merge`, LGPL-3.0, the ``[merge]``
extra): it infers the layout of models it has no definition for, the book's transformer and RNN included. What this
command adds around it:

* checks before anything is loaded, one line each: an unknown method, a missing ``base_model`` where the method
  needs one, ``density`` outside (0, 1], parents of different architectures or shapes, ``layer_range`` out of range
  or overlapping (repeating layers, as some frankenmerges do, needs ``--allow_repeated_layers``), passthrough of RNNs;
* a folder like every other of ours: mergekit cannot tell how many layers a passthrough of an architecture it
  inferred has, so the config's ``num_hidden_layers`` is set from the merged weights; the model is then loaded with
  the Auto classes (every weight must match the config) and saved with ``save_pretrained``, which writes the book's
  models' code files and ``auto_map`` (``trust_remote_code`` without the package); tokenizer and generation config;
* a model card embedding the merge config and listing the parents, and with ``--evaluate`` the validation bits per
  byte (book §2.6) of each parent and of the merge, plus exact match per task family of ``builtin:instructions``
  (``--eval_tasks``) when the parents are SFT models, so the card shows whether the merge kept both skills.

Methods: ``linear`` (weighted average: model soups), ``slerp`` (spherical interpolation from ``base_model`` by ``t``),
``task_arithmetic`` (base + λ Σ wᵢ (θᵢ − base)), ``ties`` (task vectors trimmed to their top-``density`` magnitudes,
a sign elected per weight by the weighted sum, the agreeing ones averaged), ``dare_linear`` / ``dare_ties`` (task vectors
randomly dropped to ``density`` and rescaled, then summed or TIES-merged; ``--seed``), ``passthrough`` (layers of
several models stacked into a deeper one).

LoRA adapters of one base merge too (all ``models`` adapter folders): PEFT's ``add_weighted_adapter``, exact for
``linear`` and ``task_arithmetic`` (the ranks are stacked), PEFT's factor-wise TIES/DARE otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..outputs import check_output_dir, save_folder
from ..paths import resolve_model_path


METHODS = ("linear", "slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties", "passthrough")
NEEDS_BASE = ("slerp", "task_arithmetic", "ties", "dare_linear", "dare_ties")
# Config fields that must agree between parents whose tensors are combined one to one.
SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
              "num_key_value_heads", "head_dim", "gated_mlp", "tie_word_embeddings", "num_local_experts")
LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


class MergeConfigError(ValueError):
    """A merge configuration that cannot run: the message says what to change."""


# --------------------------------------------------------------------------------------------------- config


def read_merge_config(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML file at `path` as a dict (mergekit's schema)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"merge config {path} does not exist: pass a mergekit YAML file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise MergeConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(config, dict):
        raise MergeConfigError(f"{path} must hold a mapping with merge_method and models or slices")
    return config


def _model_name(reference: Any) -> str:
    """The model of a mergekit reference: ``path``, ``path@revision`` or ``path+lora`` (a string or ``{model: ...}``)."""
    if isinstance(reference, dict):
        reference = reference.get("model", reference.get("path"))
    if not isinstance(reference, str) or not reference:
        raise MergeConfigError(f"a model reference must be a folder or Hub id, got {reference!r}")
    return reference.split("+", 1)[0].split("@", 1)[0]


def _numbers(value: Any) -> list[float]:
    """Every number of a mergekit parameter setting: a scalar, a gradient list, or a list of ``{filter, value}``."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return _numbers(value.get("value"))
    if isinstance(value, list):
        return [number for item in value for number in _numbers(item)]
    return []


def _parameter_blocks(config: dict) -> list[dict]:
    blocks = [config.get("parameters") or {}]
    blocks += [(entry or {}).get("parameters") or {} for entry in config.get("models") or []]
    for piece in config.get("slices") or []:
        blocks.append(piece.get("parameters") or {})
        blocks += [(source or {}).get("parameters") or {} for source in piece.get("sources") or []]
    return blocks


def check_merge_config(
    config: dict, *, trust_remote_code: bool = False, allow_repeated_layers: bool = False
) -> dict[str, Any]:
    """Check `config` before any weight is loaded (module docstring); return ``{model name: its config}``.

    Raises:
        MergeConfigError: one line saying what to change.
    """
    from transformers import AutoConfig

    method = config.get("merge_method")
    if method not in METHODS:
        raise MergeConfigError(f"merge_method {method!r} is not supported: pass one of {', '.join(METHODS)}")
    if method == "passthrough":
        if not config.get("slices"):
            raise MergeConfigError("passthrough stacks layers: give slices with sources and layer_range")
    elif not config.get("models"):
        raise MergeConfigError(f"{method} needs models: a list of {{model: FOLDER, parameters: {{weight: ...}}}}")
    if method in NEEDS_BASE and not config.get("base_model"):
        raise MergeConfigError(
            f"{method} needs base_model: the model the others' differences (task vectors) are taken from"
        )
    for block in _parameter_blocks(config):
        bad = [v for v in _numbers(block.get("density")) if not 0 < v <= 1]
        if bad:
            raise MergeConfigError(f"density must be in (0, 1] (the fraction of each task vector kept), got {bad[0]}")

    names = [_model_name(entry) for entry in config.get("models") or []]
    names += [_model_name(source) for piece in config.get("slices") or [] for source in piece.get("sources") or []]
    if config.get("base_model"):
        names.append(_model_name(config["base_model"]))
    configs: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        path = resolve_model_path(name)
        try:
            configs[name] = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise MergeConfigError(f"{name}: no loadable config.json ({' '.join(str(err).split())[:200]})") from None

    if method == "passthrough":
        _check_slices(config["slices"], configs, allow_repeated_layers)
    else:
        first, *others = names
        for name in others:
            for key in SHAPE_KEYS:
                a, b = getattr(configs[first], key, None), getattr(configs[name], key, None)
                if a != b:
                    raise MergeConfigError(
                        f"{method} combines tensors one to one, but {first} and {name} differ in {key} ({a} vs {b}): "
                        "merge models of the same architecture and shape"
                    )
    return configs


def _check_slices(slices: list, configs: dict[str, Any], allow_repeated_layers: bool) -> None:
    used: dict[str, list[tuple[int, int]]] = {}
    for piece in slices:
        sources = piece.get("sources") or []
        if len(sources) != 1:
            raise MergeConfigError("each passthrough slice takes exactly one source (a model and its layer_range)")
        source = sources[0]
        name = _model_name(source)
        if configs[name].model_type == "hundredpage_rnn":
            raise MergeConfigError(
                f"passthrough stacks transformer blocks; {name} is the book's RNN (its merges: linear, slerp, "
                "task_arithmetic, ties, dare_*)"
            )
        span = source.get("layer_range")
        layers = getattr(configs[name], "num_hidden_layers", None)
        if not (isinstance(span, (list, tuple)) and len(span) == 2 and all(isinstance(i, int) for i in span)):
            raise MergeConfigError(f"layer_range of {name} must be [start, end] (end excluded), got {span!r}")
        start, end = span
        if not 0 <= start < end <= (layers or 0):
            raise MergeConfigError(
                f"layer_range {list(span)} of {name} is out of range: it has {layers} layers, so 0 <= start < end <= {layers}"
            )
        for a, b in used.setdefault(name, []):
            if start < b and a < end and not allow_repeated_layers:
                raise MergeConfigError(
                    f"layer_range {list(span)} of {name} overlaps {[a, b]}: pass --allow_repeated_layers to repeat layers"
                )
        used[name].append((start, end))
    first = {getattr(configs[_model_name(p["sources"][0])], k, None) for p in slices for k in ("hidden_size",)}
    if len(first) > 1:
        raise MergeConfigError(f"passthrough slices must share hidden_size, got {sorted(first)}")


# --------------------------------------------------------------------------------------------------- adapters

# merge_method -> PEFT's add_weighted_adapter combination: "cat" stacks the LoRA ranks, so the merged adapter's update
# is exactly the weighted sum of the adapters' updates; TIES/DARE act on the A and B factors (PEFT's approximation).
ADAPTER_COMBINATIONS = {"linear": "cat", "task_arithmetic": "cat", "ties": "ties", "dare_linear": "dare_linear",
                        "dare_ties": "dare_ties"}


def _is_adapter(name: str) -> bool:
    return (Path(name).expanduser() / "adapter_config.json").is_file()


def merge_adapters(config: dict, output_dir: Path, *, seed: int | None = 0, trust_remote_code: bool = False) -> dict:
    """LoRA adapters of one base merged into one adapter with PEFT's ``add_weighted_adapter`` (book §5.5, §6.2)."""
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    method = config.get("merge_method")
    if method not in ADAPTER_COMBINATIONS:
        raise MergeConfigError(
            f"adapters merge with {', '.join(ADAPTER_COMBINATIONS)} (PEFT's add_weighted_adapter), not {method!r}"
        )
    entries = config.get("models") or []
    names = [_model_name(entry) for entry in entries]
    bases = {PeftConfig.from_pretrained(name).base_model_name_or_path for name in names}
    if len(bases) != 1:
        raise MergeConfigError(f"the adapters were trained on different bases ({', '.join(sorted(bases))}): merge "
                               "adapters of one base")
    weights = [float(((entry or {}).get("parameters") or {}).get("weight", 1.0)) for entry in entries]
    global_parameters = config.get("parameters") or {}
    if method == "linear" and global_parameters.get("normalize", True):
        weights = [w / sum(weights) for w in weights]
    if method == "task_arithmetic":
        weights = [w * float(global_parameters.get("lambda", 1.0)) for w in weights]
    densities = {float(v) for entry in entries for v in _numbers(((entry or {}).get("parameters") or {}).get("density"))}
    densities |= set(_numbers(global_parameters.get("density")))
    if len(densities) > 1:
        raise MergeConfigError(f"PEFT merges adapters with one density, got {sorted(densities)}: give one")
    (base_name,) = bases
    if seed is not None:
        torch.manual_seed(seed)  # DARE's random drops
    base = AutoModelForCausalLM.from_pretrained(resolve_model_path(base_name), trust_remote_code=trust_remote_code)
    model = PeftModel.from_pretrained(base, resolve_model_path(names[0]), adapter_name="parent0")
    for i, name in enumerate(names[1:], start=1):
        model.load_adapter(resolve_model_path(name), adapter_name=f"parent{i}")
    parents = [f"parent{i}" for i in range(len(names))]
    model.add_weighted_adapter(parents, weights, adapter_name="default", combination_type=ADAPTER_COMBINATIONS[method],
                               density=next(iter(densities)) if densities else None)
    model.set_adapter("default")
    for parent in parents:
        model.delete_adapter(parent)

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        first = resolve_model_path(names[0])
        source = first if (Path(first) / "tokenizer_config.json").is_file() else resolve_model_path(base_name)
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
        (folder / "mergekit_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        parents_text = "\n".join(f"- `{name}` (weight {w:g})" for name, w in zip(names, weights))
        from ..hub import write_model_card

        write_model_card(folder, model_name=output_dir.name, task="merge", model_family="adapter", base_model=base_name,
                         repo_id=str(output_dir), tags=["merge", "lora", method], extra_sections={"Merge": (
                             f"LoRA adapters of `{base_name}` merged (book §6.2) with PEFT's `add_weighted_adapter` "
                             f"(`{ADAPTER_COMBINATIONS[method]}` for `{method}`) from:\n\n{parents_text}\n\n"
                             f"```yaml\n{yaml.safe_dump(config, sort_keys=False).rstrip()}\n```")})

    save_folder(output_dir, save)
    return {"method": method, "parents": names, "weights": weights, "base_model": base_name,
            "num_hidden_layers": getattr(base.config, "num_hidden_layers", 0),
            "num_parameters": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)}


# --------------------------------------------------------------------------------------------------- merge


@contextlib.contextmanager
def _quiet_mergekit():
    """mergekit logs a warning per inferred architecture and prints progress; our command prints its own summary."""
    loggers = [logging.getLogger(name) for name in ("", "mergekit")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _run_mergekit(config: dict, out: Path, *, trust_remote_code: bool, seed: int | None) -> None:
    try:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import MergeOptions, run_merge
    except ImportError:
        raise MergeConfigError("merge needs mergekit (pip install 'hf-hundredpage[merge]'), which is not installed") from None
    import pydantic
    import torch

    options = MergeOptions(trust_remote_code=trust_remote_code, copy_tokenizer=True, lazy_unpickle=False,
                           random_seed=seed, quiet=True, write_model_card=False, cuda=torch.cuda.is_available())
    try:  # the schema is checked as the file is read, parameter values as mergekit resolves them
        parsed = MergeConfiguration.model_validate(config)
        with _quiet_mergekit():
            run_merge(parsed, str(out), options=options)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "a parameter"
        message = " ".join(str(first["msg"]).split())
        raise MergeConfigError(f"merge config: {where}: {message} (mergekit's schema)") from None


def _fix_layer_count(folder: Path) -> int:
    """Set ``num_hidden_layers`` in `folder`'s config.json from the layers its weights hold; returns that count."""
    from safetensors import safe_open

    layers: set[int] = set()
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as f:
            layers.update(int(m.group(1)) for key in f.keys() if (m := LAYER.search(key)))
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    if layers:
        config["num_hidden_layers"] = max(layers) + 1
        if isinstance(config.get("layer_types"), list) and config["layer_types"]:
            config["layer_types"] = [config["layer_types"][0]] * config["num_hidden_layers"]
        config_file.write_text(json.dumps(config, indent=2))
    return config.get("num_hidden_layers", 0)


def merge_models(
    config: dict | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    overwrite_output_dir: bool = False,
    trust_remote_code: bool = False,
    allow_repeated_layers: bool = False,
    seed: int | None = 0,
    evaluate: bool = False,
    eval_max_documents: int | None = 200,
    eval_tasks: list[str] | None = None,
) -> dict[str, Any]:
    """Merge the models of a mergekit configuration (a dict or YAML file) into `output_dir` (book §6.2).

    Every check runs before any weight is loaded; the folder is written to a staging sibling and only replaces
    `output_dir` once the merged model has loaded back with the Auto classes (a failure leaves `output_dir` as it was).

    Returns:
        ``{"method", "parents", "num_hidden_layers", "num_parameters", "evaluation"}``; ``evaluation`` maps each
        parent and ``merge`` to its scores when `evaluate` is set.
    """
    if not isinstance(config, dict):
        config = read_merge_config(config)
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)
    adapters = [_is_adapter(_model_name(entry)) for entry in config.get("models") or []]
    if adapters and all(adapters):
        if evaluate:
            raise MergeConfigError("--evaluate scores full models: merge the adapters, then evaluate with merge-adapter")
        return merge_adapters(config, Path(output_dir), seed=seed, trust_remote_code=trust_remote_code)
    if any(adapters):
        raise MergeConfigError("mix of adapters and full models: merge adapters with adapters (one base) or models")
    configs = check_merge_config(config, trust_remote_code=trust_remote_code, allow_repeated_layers=allow_repeated_layers)
    if eval_tasks and not evaluate:
        raise MergeConfigError("--eval_tasks scores the parents and the merge: add --evaluate")
    output_dir = Path(output_dir)
    result: dict[str, Any] = {"method": config["merge_method"], "parents": list(configs)}

    def save(folder: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with tempfile.TemporaryDirectory(prefix="hf-hundredpage-merge-") as tmp:
            raw = Path(tmp)
            _run_mergekit(config, raw, trust_remote_code=trust_remote_code, seed=seed)
            result["num_hidden_layers"] = _fix_layer_count(raw)
            model, info = AutoModelForCausalLM.from_pretrained(
                raw, trust_remote_code=trust_remote_code, output_loading_info=True)
            wrong = {k: sorted(v)[:3] for k, v in info.items() if k in ("missing_keys", "unexpected_keys") and v}
            if wrong:
                raise MergeConfigError(f"the merged weights do not match their config ({wrong}): nothing was written")
            model.config._name_or_path = str(output_dir)
            first_parent = resolve_model_path(result["parents"][0])
            with contextlib.suppress(OSError):  # stop tokens of the first parent (a chat model's end of turn)
                from transformers import GenerationConfig

                model.generation_config = GenerationConfig.from_pretrained(first_parent)
            model.save_pretrained(folder)
            result["num_parameters"] = model.num_parameters()
            tokenizer = AutoTokenizer.from_pretrained(raw if (raw / "tokenizer_config.json").is_file() else first_parent,
                                                      trust_remote_code=trust_remote_code)
            tokenizer.save_pretrained(folder)
            if (raw / "mergekit_config.yml").is_file():
                shutil.copy(raw / "mergekit_config.yml", folder / "mergekit_config.yml")
            else:
                (folder / "mergekit_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
            if evaluate:
                result["evaluation"] = _evaluate(
                    {**{name: resolve_model_path(name) for name in result["parents"]}, "merge": model},
                    tokenizer, eval_max_documents, eval_tasks, trust_remote_code)
            del model
        _write_card(folder, output_dir, config, configs, result)

    save_folder(output_dir, save)
    return result


def _evaluate(models: dict[str, Any], tokenizer, max_documents: int | None, tasks: list[str] | None,
              trust_remote_code: bool) -> dict[str, dict[str, float]]:
    """Validation bits per byte of each model on the embedded corpus and, with `tasks`, exact match per task family of
    ``builtin:instructions``' test split (chat models)."""
    from transformers import AutoModelForCausalLM

    from ..compression.quantize import evaluation_texts
    from ..evaluation import evaluate_causal_lm

    texts = evaluation_texts(max_documents=max_documents)
    test = None
    if tasks:
        from ..data.instructions import BUILTIN_INSTRUCTIONS, load_instruction_dataset

        test = load_instruction_dataset(BUILTIN_INSTRUCTIONS, "messages", tasks=tasks)["test"]
    scores: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        if isinstance(model, str):
            model = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code)
        model.eval()
        row = {"eval_bits_per_byte": evaluate_causal_lm(model, tokenizer, texts)["bits_per_byte"]}
        if test is not None:
            from ..evaluation.exact_match import evaluate_exact_match, exact_match_by_task

            matched = evaluate_exact_match(model, tokenizer, test, max_new_tokens=16)
            row.update(exact_match_by_task(matched, test))
        scores[name] = row
    return scores


def evaluation_table(evaluation: dict[str, dict[str, float]]) -> str:
    """The ``--evaluate`` scores as a markdown table: one row per parent and the merge."""
    keys = sorted({key for row in evaluation.values() for key in row}, key=lambda k: (k != "eval_bits_per_byte", k))
    header = ["model", *(k.removeprefix("eval_").replace("exact_match_", "exact match: ") for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(keys)]
    for name, row in evaluation.items():
        cells = [f"{row[k]:.4f}" if k in row else "–" for k in keys]
        lines.append(f"| {'**merge**' if name == 'merge' else name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_card(folder: Path, output_dir: Path, config: dict, configs: dict[str, Any], result: dict) -> None:
    from ..hub import model_family, write_model_card

    merged_config = json.loads((folder / "config.json").read_text())
    parents = "\n".join(f"- `{name}` ({configs[name].model_type}, {getattr(configs[name], 'num_hidden_layers', '?')} "
                        "layers)" for name in result["parents"])
    body = (
        f"Merged (book §6.2) with `hf-hundredpage merge` (`{config['merge_method']}`, mergekit as the engine) from:\n\n"
        f"{parents}\n\nThe merge configuration (mergekit's schema; also in `mergekit_config.yml`):\n\n"
        f"```yaml\n{yaml.safe_dump(config, sort_keys=False).rstrip()}\n```"
    )
    sections = {"Merge": body}
    metrics = baseline = None
    if "evaluation" in result:
        sections["Parents and merge"] = (
            "Validation bits per byte of the embedded corpus (book §2.6, lower is better) and, where asked, exact match "
            "per task family of `builtin:instructions` (higher is better):\n\n" + evaluation_table(result["evaluation"]))
        metrics = result["evaluation"]["merge"]
        baseline = result["evaluation"][result["parents"][0]]
    write_model_card(
        folder, model_name=output_dir.name, task="merge",
        model_family=model_family(type("C", (), {"model_type": merged_config["model_type"]})),
        base_model=_model_name(config["base_model"]) if config.get("base_model") else result["parents"][0],
        metrics=metrics, baseline_metrics=baseline, baseline_name=f"parent {result['parents'][0]}",
        baseline_description="The baseline is the first parent, scored on the same text.",
        repo_id=str(output_dir), tags=["merge", "mergekit", config["merge_method"]], extra_sections=sections,
    )


# --------------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage merge``."""
    parser.description = (
        "Merge models (§6.2) from a mergekit YAML config: linear, slerp, task_arithmetic, ties, dare_linear, "
        "dare_ties, passthrough. OUT loads with AutoModelForCausalLM and carries a card with the config and parents."
    )
    parser.add_argument("config", metavar="CONFIG", help="mergekit YAML file")
    parser.add_argument("output_dir", metavar="OUT", help="folder for the merged model")
    parser.add_argument("--evaluate", action="store_true",
                        help="score each parent and the merge: validation bits per byte (and --eval_tasks)")
    parser.add_argument("--eval_tasks", nargs="+", default=None, metavar="TASK",
                        help="with --evaluate: exact match per builtin:instructions task family (SFT parents)")
    parser.add_argument("--eval_max_documents", type=int, default=200,
                        help="validation documents scored by --evaluate (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of DARE's random drops (default: 0)")
    parser.add_argument("--allow_repeated_layers", action="store_true",
                        help="passthrough: let slices of one model overlap (repeat layers)")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the parents' own code")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage merge``."""
    result = merge_models(
        args.config, args.output_dir, overwrite_output_dir=args.overwrite_output_dir,
        trust_remote_code=args.trust_remote_code, allow_repeated_layers=args.allow_repeated_layers, seed=args.seed,
        evaluate=args.evaluate, eval_max_documents=args.eval_max_documents, eval_tasks=args.eval_tasks,
    )
    print(f"Merged {len(result['parents'])} models with {result['method']}: {args.output_dir} "
          f"({result['num_hidden_layers']} layers, {result['num_parameters']:,} parameters)")
    if "evaluation" in result:
        print(evaluation_table(result["evaluation"]))
    return 0
