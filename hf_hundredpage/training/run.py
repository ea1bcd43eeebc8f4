"""The start and the end that every recipe shares: `start_run` (seed, resume, output-folder check), `prepare_run`
(after everything was validated, before the first write) and `finish_run` (save, metrics, loss plot, model card,
results table, push), under the output-folder rules of `hf_hundredpage.outputs` that keep a user's files safe.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import hub
from ..outputs import MANIFEST, check_output_dir, commit_folder, read_manifest, staging_dir  # noqa: F401
from .callbacks import RunClock


def resolve_resume(value) -> bool | str | None:
    """`resume_from_checkpoint` as the Trainer takes it: ``"true"`` -> True (the latest checkpoint of
    output_dir), ``"false"``/None -> None, a path -> the path, which must be a checkpoint folder."""
    if value is None:
        return None
    resume = {"true": True, "false": None}.get(str(value).lower(), value)
    if isinstance(resume, str) and not Path(resume).is_dir():
        raise ValueError(f"resume_from_checkpoint {resume} is not a checkpoint folder: pass one, or true for the latest")
    return resume


def start_run(training_args, script_args) -> bool | str | None:
    """The first lines of every recipe after parsing: seed everything (before any model is built), check the output
    folder and return what to resume from. Nothing is written."""
    from transformers import set_seed

    set_seed(training_args.seed)
    resume = resolve_resume(training_args.resume_from_checkpoint)
    check_output_dir(training_args.output_dir, script_args.overwrite_output_dir, resuming=bool(resume))
    return resume


@dataclass
class Run:
    """Where a recipe run writes: `work_dir` (the output folder itself, or its staging sibling when overwriting a
    non-empty one), and where its result ends up: `output_dir`."""

    output_dir: Path
    work_dir: Path
    push_to_hub: bool

    @property
    def staged(self) -> bool:
        return self.work_dir != self.output_dir

    def commit(self) -> None:
        """Make the finished run the content of `output_dir` (`hf_hundredpage.outputs.commit_folder`)."""
        commit_folder(self.work_dir, self.output_dir)


def prepare_run(training_args, *, overwrite_output_dir: bool, resume) -> Run:
    """What every recipe does once its config, data, tokenizer and model are loaded and checked, before the first
    write: pick the folder the run writes to (see the module docstring), keep only the installed loggers, seed
    everything, give a lone CPU process every core, and keep the run's clock in its checkpoints.

    `push_to_hub` and `hub_strategy` are left as the user set them: the Trainer pushes checkpoints as the strategy
    says, and `finish_run` publishes the finished folder with its model card.
    """
    from transformers import set_seed

    output_dir = Path(training_args.output_dir).expanduser()
    work_dir = output_dir
    if overwrite_output_dir and not resume and output_dir.is_dir() and any(output_dir.iterdir()):
        work_dir = staging_dir(output_dir)
        with training_args.main_process_first(desc="clear the staging folder of an interrupted overwrite"):
            if training_args.process_index == 0 and work_dir.exists():
                shutil.rmtree(work_dir)  # ours: named after the output folder with our suffix
        training_args.output_dir = str(work_dir)
    if training_args.push_to_hub and not training_args.hub_model_id:
        training_args.hub_model_id = output_dir.resolve().name  # not the staging folder's name
    training_args.report_to = resolve_report_to(training_args.report_to)
    training_args.restore_callback_states_from_checkpoint = True  # the run clock, early-stopping patience
    set_seed(training_args.seed)  # again: loading data and models may have drawn random numbers
    set_cpu_threads(training_args)
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinned memory only serves copies to an accelerator
    return Run(output_dir=output_dir, work_dir=work_dir, push_to_hub=bool(training_args.push_to_hub))


def run_callbacks(script_args) -> list:
    """The callbacks every recipe passes its trainer: the run clock (whole-run totals across resumes) and, with
    ``early_stopping_patience`` (`RunArguments`), transformers' `EarlyStoppingCallback`."""
    from transformers import EarlyStoppingCallback

    patience = getattr(script_args, "early_stopping_patience", None)
    return [RunClock()] + ([EarlyStoppingCallback(patience)] if patience else [])


def run_clock(trainer) -> RunClock | None:
    return next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, RunClock)), None)


def whole_run_totals(trainer, train_result) -> dict[str, Any]:
    """Training time, mean loss and steps of the whole run, a resumed one included (`RunClock`, the restored log history)."""
    clock = run_clock(trainer)
    sessions = clock.sessions if clock else 1
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry and "eval_loss" not in entry]
    train_loss = sum(losses) / len(losses) if sessions > 1 and losses else train_result.training_loss
    runtime = clock.seconds if clock else train_result.metrics.get("train_runtime", 0.0)
    return {"train_loss": train_loss, "train_runtime": round(runtime, 2), "train_sessions": sessions,
            "resumed": sessions > 1, "train_steps": trainer.state.global_step}


def finish_run(
    run: Run,
    trainer,
    tokenizer,
    *,
    metrics: dict[str, Any],
    card: dict[str, Any],
    table: str,
    summary: str,
    plot_title: str,
    extra_files: dict[str, Any] | None = None,
    generation_config=None,
) -> None:
    """The end of every recipe, on the main process: save the model (or adapter) and tokenizer, write
    ``metrics.json`` (plus `extra_files`, name -> JSON data; a model trained with ``--qat`` is first converted back to
    ``nn.Linear`` layers, `hf_hundredpage.compression.qat`), ``loss_curve.png`` and the model card, move the run into
    its output folder, print the results table, and publish the folder when ``push_to_hub`` is set.

    Args:
        card: keyword arguments of `hf_hundredpage.hub.write_model_card` (``model_name`` and ``repo_id`` default to
            the Hub id when pushing, else the output folder as given).
        generation_config: saved beside the model (``generation_config.json``) when the model to generate with is
            not the one `trainer.save_model` writes (an adapter's base, whose stop tokens were set for the chat template).
    """
    if not trainer.is_world_process_zero():
        return
    trainer.args.push_to_hub = False  # the Trainer's own pushes (hub_strategy) are done; the final one is ours
    from ..compression.qat import convert_qat

    if convert_qat(trainer.model):  # quantization-aware training (§6.3): save the float32 master weights
        metrics = {**metrics, "qat_method": trainer.model.config.qat_method}
    folder = run.work_dir
    trainer.save_model(str(folder))
    if generation_config is not None:
        generation_config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / "metrics.json", metrics)
    for name, data in (extra_files or {}).items():
        write_json(folder / name, data)
    plot_loss_curve(trainer.state.log_history, folder / "loss_curve.png", title=plot_title)
    repo = trainer.args.hub_model_id if run.push_to_hub else str(run.output_dir)
    card = {"model_name": trainer.args.hub_model_id or run.output_dir.name, "repo_id": repo,
            "train_runtime": metrics.get("train_runtime"), **card}
    hub.write_model_card(folder, **card)
    run.commit()
    print("\n" + table)
    print(f"\n{summary} Folder: {run.output_dir}")
    if run.push_to_hub:
        url = hub.publish(run.output_dir, trainer.args.hub_model_id, private=bool(trainer.args.hub_private_repo),
                          token=trainer.args.hub_token, revision=trainer.args.hub_revision)
        print(f"pushed: {url}")


TRAINING_KEYS = ("max_steps", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "seed")


def run_config(script_args, model_args, training_args, extra_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The configuration shown in the model card: the script's and model's arguments that are set, and the main
    training arguments (`TRAINING_KEYS` plus `extra_keys`)."""
    from dataclasses import asdict

    return {**asdict(script_args), **{k: v for k, v in asdict(model_args).items() if v is not None},
            **{k: getattr(training_args, k) for k in TRAINING_KEYS + tuple(extra_keys)}}


def command_line(script: str, argv) -> str:
    """The command that reproduces this run, for the model card."""
    import shlex

    return f"accelerate launch recipes/{script} " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))


def plot_loss_curve(log_history: list[dict], path: str | os.PathLike, title: str = "training") -> Path:
    """Training loss and validation loss against steps, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "eval_loss" not in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def format_table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def set_cpu_threads(training_args) -> int:
    """Give a single CPU training process every core it may run on.

    `accelerate launch` without `--num_cpu_threads_per_process` sets `OMP_NUM_THREADS=1` in its child, which halves
    a 2-core laptop's throughput for the one-process quickstart. For one process on CPU launched that way, torch gets
    all the cores of this process's affinity mask; `HF_HUNDREDPAGE_NUM_THREADS=N` sets the count explicitly.
    Multi-process runs keep the launcher's split of the cores. Returns the thread count in use.
    """
    requested = os.environ.get("HF_HUNDREDPAGE_NUM_THREADS")
    if requested:
        torch.set_num_threads(int(requested))
    elif (
        training_args.world_size == 1
        and training_args.device.type == "cpu"
        and "ACCELERATE_MIXED_PRECISION" in os.environ  # set by `accelerate launch` for its child process
    ):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if torch.get_num_threads() < cores:
            torch.set_num_threads(cores)
    return torch.get_num_threads()


def resolve_report_to(report_to: list[str] | str | None) -> list[str]:
    """Keep the requested loggers (TensorBoard, trackio, ...) that are installed; say which were dropped.
    An empty list means no logger."""
    from transformers.integrations import get_available_reporting_integrations

    requested = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if requested in (["none"], []):
        return []
    available = set(get_available_reporting_integrations())
    if "all" in requested:
        return sorted(available)
    kept = [name for name in requested if name in available]
    for name in requested:
        if name not in available:
            print(f"report_to: {name} is not installed, not logging to it (pip install {name})", file=sys.stderr)
    return kept
