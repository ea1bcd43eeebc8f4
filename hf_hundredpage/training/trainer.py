"""`HundredPageTrainer`: the `transformers.Trainer` of the pretraining recipe, with atomic checkpoints and
perplexity / tokens-per-second / MFU in every log (nanoGPT's `estimate_mfu`)."""

from __future__ import annotations

import math
import os
import shutil
import time

import torch
from transformers import PreTrainedModel, ProgressCallback, Trainer, TrainerCallback


def model_flops_per_token(model: PreTrainedModel, seq_len: int) -> float:
    """Training FLOPs per token, nanoGPT's `estimate_mfu`: 6N for the weights (forward + backward) plus
    12·L·H·T for attention scores and values (transformers only; the RNN has no attention). For a mixture of experts
    (§6.1) N counts the parameters a token uses: each expert's weights times top-k / number of experts (the router's
    own few FLOPs are counted in full)."""
    config = model.config
    experts, top_k = getattr(config, "num_local_experts", 0) or 0, getattr(config, "num_experts_per_tok", 0)
    n_params = 0
    for name, p in model.named_parameters():
        n_params += p.numel() * (top_k / experts if experts and ".mlp.experts." in name else 1)
    n_params -= model.get_input_embeddings().weight.numel()  # a lookup, not a matmul
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

    def __init__(self, *args, block_size: int | None = None, **kwargs):
        """`block_size`: tokens per training sequence; with it, logs carry tokens/s and MFU and the progress bar
        shows them (`ThroughputProgressCallback`)."""
        super().__init__(*args, **kwargs)
        self.tokens_per_step = block_size and (self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
                                               * self.args.world_size * block_size)
        self.flops_per_token = block_size and model_flops_per_token(self.model, block_size)
        if block_size and not self.args.disable_tqdm:
            from .callbacks import ThroughputProgressCallback

            self.remove_callback(ProgressCallback)
            self.add_callback(ThroughputProgressCallback())
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

    # No public hook serves here: a callback's `on_save` runs after `Trainer._save_checkpoint` has written the folder
    # in place, too late to make it atomic, and transformers 5 writes `checkpoint-N` directly. So this overrides the
    # private method and keeps to its contract (same arguments, same folder name, same rotation); the recipe tests
    # (SIGKILL mid-run, then resume) catch a change of that contract in a new transformers release.
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


def weights_identical_across_ranks(model) -> bool:
    """True when every process holds the same parameters (a DDP sanity check; trivially True on one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return True
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    gathered = [torch.zeros_like(checksum) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather_object(gathered, checksum)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])
