"""Training shared by the recipes: the pretraining model arguments (`args`), the Trainer subclass (`trainer`), the
callbacks (`callbacks`) and the run's start and end (`run`: `prepare_run`, `finish_run`, output-folder safety)."""

from .args import ModelArguments, build_model
from .callbacks import RunClock, SampleGenerationCallback, ThroughputProgressCallback, generate_samples
from .run import (
    Run,
    check_output_dir,
    finish_run,
    format_table,
    plot_loss_curve,
    prepare_run,
    resolve_report_to,
    resolve_resume,
    set_cpu_threads,
    start_run,
    write_json,
)
from .trainer import HundredPageTrainer, model_flops_per_token, weights_identical_across_ranks


__all__ = [
    "HundredPageTrainer",
    "ModelArguments",
    "Run",
    "RunClock",
    "SampleGenerationCallback",
    "ThroughputProgressCallback",
    "build_model",
    "check_output_dir",
    "finish_run",
    "format_table",
    "generate_samples",
    "model_flops_per_token",
    "plot_loss_curve",
    "prepare_run",
    "resolve_report_to",
    "resolve_resume",
    "set_cpu_threads",
    "start_run",
    "weights_identical_across_ranks",
    "write_json",
]
