"""What the recipes share on top of `transformers.Trainer`: building a book model for a tokenizer, atomic
checkpoints, perplexity / throughput / MFU in the logs, the book's sample generations at each evaluation
(book §3.4, §4.7), the loss-curve plot and the end-of-run summary.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, ProgressCallback, Trainer, TrainerCallback

from .generation import encode_text_prompt
from .models import HundredPageRNNConfig, HundredPageRNNForCausalLM, HundredPageTransformerConfig, HundredPageTransformerForCausalLM

ARCHITECTURE_KEYS = {
    "transformer": (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
        "hidden_act", "gated_mlp", "mlp_bias", "attention_bias", "final_norm", "rope_interleaved", "rope_theta",
        "rms_norm_eps", "tie_word_embeddings", "attention_dropout", "hidden_dropout", "max_position_embeddings",
    ),
    "rnn": ("hidden_size", "num_hidden_layers", "dropout", "tie_word_embeddings"),
}


@dataclass
class ModelArguments:
    """Which model to train: one of the book's architectures from scratch, or an existing checkpoint."""

    model_type: str = field(default="transformer", metadata={"help": "transformer (book ch. 4) or rnn (book ch. 3)"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from this model folder or Hub id instead of a fresh init"}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "tokenizer folder or Hub id (default: the embedded corpus tokenizer)"}
    )
    hidden_size: int = field(default=128, metadata={"help": "book emb_dim"})
    num_hidden_layers: int = field(default=2, metadata={"help": "book num_blocks / num_layers"})
    num_attention_heads: int = field(default=8, metadata={"help": "book num_heads (transformer)"})
    num_key_value_heads: int | None = field(default=None, metadata={"help": "grouped-query attention (transformer)"})
    intermediate_size: int | None = field(default=None, metadata={"help": "MLP width, default 4 x hidden_size"})
    hidden_act: str = field(default="relu")
    gated_mlp: bool = field(default=False, metadata={"help": "SwiGLU-style gate_proj"})
    mlp_bias: bool = field(default=True)
    attention_bias: bool = field(default=False)
    final_norm: bool = field(default=False)
    rope_interleaved: bool = field(default=True)
    rope_theta: float = field(default=10000.0)
    rms_norm_eps: float = field(default=1e-8)
    tie_word_embeddings: bool = field(default=False)
    attention_dropout: float = field(default=0.0)
    hidden_dropout: float = field(default=0.0, metadata={"help": "transformer dropout (book §6.8)"})
    dropout: float = field(default=0.0, metadata={"help": "RNN dropout between units (book §6.8)"})
    max_position_embeddings: int | None = field(default=None, metadata={"help": "default: block_size"})

    def __post_init__(self):
        if self.model_type not in ARCHITECTURE_KEYS:
            raise ValueError(f"model_type must be one of {sorted(ARCHITECTURE_KEYS)}, got {self.model_type!r}")


def build_model(args: ModelArguments, tokenizer, block_size: int) -> PreTrainedModel:
    """A fresh book model sized for `tokenizer` (vocabulary, pad/bos/eos ids), or `args.model_name_or_path`."""
    if args.model_name_or_path:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
    arch = {key: getattr(args, key) for key in ARCHITECTURE_KEYS[args.model_type]}
    if args.model_type == "transformer":
        arch["max_position_embeddings"] = arch["max_position_embeddings"] or block_size
        config_cls, model_cls = HundredPageTransformerConfig, HundredPageTransformerForCausalLM
    else:
        config_cls, model_cls = HundredPageRNNConfig, HundredPageRNNForCausalLM
    config = config_cls(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{k: v for k, v in arch.items() if v is not None},
    )
    return model_cls(config)


def model_flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token, nanoGPT's `estimate_mfu`: 6N for the weights (forward + backward) plus
    12·L·H·T for attention scores and values (transformers only; the RNN has no attention)."""
    n_params = sum(p.numel() for p in model.parameters())
    n_params -= model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
    config = model.config
    attention = 0
    if getattr(config, "num_attention_heads", None):
        attention = 12 * config.num_hidden_layers * config.hidden_size * seq_len
    return 6 * n_params + attention


_PEAK_CACHE: dict[str, float] = {}


def measured_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """This machine's dense matmul FLOP/s, measured once (the denominator of MFU)."""
    key = f"{device}-{dtype}"
    if key not in _PEAK_CACHE:
        n = 1024 if device.type == "cpu" else 8192
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        best = float("inf")
        for _ in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        _PEAK_CACHE[key] = 2 * n**3 / best
    return _PEAK_CACHE[key]


class HundredPageTrainer(Trainer):
    """`Trainer` with atomic checkpoints and perplexity / tokens-per-second / MFU in every log.

    Checkpoints are written into `output_dir/.staging/` and renamed into place when complete, so a run killed
    while saving never leaves a half-written `checkpoint-N` for `resume_from_checkpoint` to pick up.
    """

    def __init__(self, *args, tokens_per_step: int | None = None, flops_per_token: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tokens_per_step = tokens_per_step
        self.flops_per_token = flops_per_token
        self._throughput_mark: tuple[float, int] | None = None
        self._peak_flops: float | None = None
        self.evaluation_seconds = 0.0  # time spent in evaluate() (and its sample generations) during the run
        self.first_step: int | None = None  # global step this session started from (> 0 when resuming)
        self.add_callback(_RecordFirstStep(self))

    def evaluate(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.evaluation_seconds += time.perf_counter() - start
            if self._throughput_mark is not None:  # keep evaluation time out of the training throughput
                mark_time, mark_step = self._throughput_mark
                self._throughput_mark = (mark_time + time.perf_counter() - start, mark_step)

    def training_throughput(self, wall_seconds: float) -> float:
        """Tokens per second of this session's optimizer steps, evaluation time excluded."""
        steps = self.state.global_step - (self.first_step or 0)
        return steps * (self.tokens_per_step or 0) / max(wall_seconds - self.evaluation_seconds, 1e-9)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs:
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))
        if "loss" in logs and self.tokens_per_step:
            now, step = time.perf_counter(), self.state.global_step
            if self._throughput_mark is not None and step > self._throughput_mark[1]:
                tokens_per_second = (step - self._throughput_mark[1]) * self.tokens_per_step / (now - self._throughput_mark[0])
                logs["tokens_per_second"] = round(tokens_per_second, 1)
                if self.flops_per_token:
                    if self._peak_flops is None:
                        self._peak_flops = measured_peak_flops(self.args.device) * self.args.world_size
                    logs["mfu"] = round(tokens_per_second * self.flops_per_token / self._peak_flops, 4)
            self._throughput_mark = (time.perf_counter(), step)
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = self._get_output_dir(trial=trial)
        staging_root = os.path.join(run_dir, ".staging")
        if self.args.should_save and os.path.isdir(staging_root):
            shutil.rmtree(staging_root)  # leftovers of a run killed while saving
        self.accelerator.wait_for_everyone()
        real_output_dir = self.args.output_dir
        self.args.output_dir = staging_root
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = real_output_dir
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state into the staging folder
        if self.state.best_model_checkpoint and self.state.best_model_checkpoint.startswith(staging_root):
            self.state.best_model_checkpoint = run_dir + self.state.best_model_checkpoint[len(staging_root) :]
        if self.args.should_save:
            name = f"checkpoint-{self.state.global_step}"
            final = os.path.join(run_dir, name)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(os.path.join(staging_root, name), final)
            shutil.rmtree(staging_root, ignore_errors=True)
            from transformers.trainer_utils import rotate_checkpoints

            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=False,
            )
        self.accelerator.wait_for_everyone()


class _RecordFirstStep(TrainerCallback):
    """Records the step a (possibly resumed) session starts from; `on_train_begin` sees the restored state."""

    def __init__(self, trainer: HundredPageTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer.first_step = state.global_step
        self.trainer._throughput_mark = (time.perf_counter(), state.global_step)


class ThroughputProgressCallback(ProgressCallback):
    """The training bar shows loss, tokens/s and MFU as they are logged."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            postfix = {}
            if "loss" in logs:
                postfix["loss"] = f"{logs['loss']:.3f}"
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:,.0f}"
            if "mfu" in logs:
                postfix["mfu"] = f"{logs['mfu']:.1%}"
            if postfix:
                self.training_bar.set_postfix(postfix, refresh=False)
            if "eval_loss" in logs:
                self.training_bar.write(
                    f"step {state.global_step}: eval_loss {logs['eval_loss']:.4f}, "
                    f"perplexity {logs.get('eval_perplexity', float('nan')):.2f}"
                )


class SampleGenerationCallback(TrainerCallback):
    """After each evaluation, continue a few fixed prompts greedily, as the book's notebooks do (§3.4, §4.7)."""

    def __init__(self, tokenizer, prompts: list[str], max_new_tokens: int = 30):
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.max_new_tokens = max_new_tokens
        self.samples: list[dict[str, Any]] = []

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None or not self.prompts:
            return
        if self.samples and self.samples[-1]["step"] == state.global_step:
            return  # the final evaluation of a run that just evaluated at this step
        entry = {"step": state.global_step, "samples": generate_samples(model, self.tokenizer, self.prompts, self.max_new_tokens)}
        self.samples.append(entry)
        for prompt, text in zip(self.prompts, entry["samples"]):
            print(f"  [sample @ step {state.global_step}] {prompt!r} -> {text!r}", flush=True)


@torch.no_grad()
def generate_samples(model, tokenizer, prompts: list[str], max_new_tokens: int = 30) -> list[str]:
    was_training = model.training
    model.eval()
    texts = []
    for prompt in prompts:
        ids = encode_text_prompt(tokenizer, prompt).to(model.device)
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        texts.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    model.train(was_training)
    return texts


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


def weights_identical_across_ranks(model) -> bool:
    """True when every process holds the same parameters (a DDP sanity check; trivially True on one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    gathered = [torch.zeros_like(checksum) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(gathered, checksum)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


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


def prepare_run(training_args, *, overwrite_output_dir: bool, resume) -> bool:
    """What every recipe does before building its trainer: clear `output_dir` when asked to overwrite it (main
    process only), keep the Trainer itself off the Hub (the finished folder is published at the end), keep only the
    installed loggers and seed everything. Returns whether the user asked to push to the Hub."""
    from transformers import set_seed

    output_dir = Path(training_args.output_dir)
    if overwrite_output_dir and not resume and output_dir.is_dir() and training_args.process_index == 0:
        shutil.rmtree(output_dir)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    training_args.report_to = resolve_report_to(training_args.report_to)
    set_seed(training_args.seed)
    set_cpu_threads(training_args)
    if training_args.device.type == "cpu":
        training_args.dataloader_pin_memory = False  # pinned memory only serves copies to an accelerator
    return push_to_hub


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


def _texts(split, text_column: str, limit: int | None) -> list[str]:
    if hasattr(split, "select") and limit is not None:
        split = split.select(range(min(limit, len(split))))
        return list(split[text_column])
    if hasattr(split, "select"):
        return list(split[text_column])
    texts = []
    for row in split:  # a streaming split
        texts.append(row[text_column])
        if limit is not None and len(texts) >= limit:
            break
    return texts


def evaluate_against_ngram(
    model, tokenizer, raw_datasets, *, text_column: str = "text", order: int = 3, max_documents: int | None = None,
    max_length: int | None = None, ngram_train_documents: int | None = None,
) -> dict[str, float]:
    """The trained model and a Kneser-Ney n-gram (book §2.5, fitted on the same training split with the same
    tokenizer) scored on the same validation documents: loss, perplexity and bits per byte (book §2.6).

    Keys: `eval_loss`, `eval_perplexity`, `eval_bits_per_byte`, `eval_tokens`, `eval_bytes` and the same with an
    `ngram_` prefix. Long documents are scored with a sliding window of `max_length` tokens.
    """
    from .evaluation import evaluate_causal_lm, evaluate_ngram, fit_ngram_baseline

    validation = _texts(raw_datasets["validation"], text_column, max_documents)
    train = _texts(raw_datasets["train"], text_column, ngram_train_documents)
    stride = max(1, max_length // 2) if max_length else None
    ours = evaluate_causal_lm(model, tokenizer, validation, max_length=max_length, stride=stride)
    ngram = evaluate_ngram(fit_ngram_baseline(tokenizer, train, order=order), tokenizer, validation)
    result = {}
    for prefix, values in (("eval_", ours), ("ngram_eval_", ngram)):
        result.update({
            f"{prefix}loss": values["loss"],
            f"{prefix}perplexity": values["perplexity"],
            f"{prefix}bits_per_byte": values["bits_per_byte"],
            f"{prefix}tokens": values["n_tokens"],
            f"{prefix}bytes": values["n_bytes"],
        })
    return result
