"""Callbacks of the recipes: the progress bar with tokens/s and MFU, the book's sample generations at each
evaluation (book §3.6, §4.9), and the run clock that keeps a resumed run's totals."""

from __future__ import annotations

import time
from typing import Any

from transformers import ProgressCallback, TrainerCallback
from transformers.trainer_callback import ExportableState

from ..generation import encode_text_prompt, greedy_complete


class ThroughputProgressCallback(ProgressCallback):
    """The training bar shows loss, tokens/s and MFU as they are logged; evaluations print one line instead of a
    second, nested bar under it."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass

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


def generate_samples(model, tokenizer, prompts: list[str], max_new_tokens: int = 30) -> list[str]:
    """Greedy continuations of plain-text prompts, started like pretraining documents (with BOS)."""
    ids = [encode_text_prompt(tokenizer, prompt)[0].tolist() for prompt in prompts]
    stop = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    completions = greedy_complete(model, ids, max_new_tokens=max_new_tokens, stop_ids=stop,
                                  pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(tokens, skip_special_tokens=True) for tokens, _ in completions]


class RunClock(TrainerCallback, ExportableState):
    """Training wall time summed over every session of a run: saved in each checkpoint (`ExportableState`) and
    restored on `resume_from_checkpoint`, so a resumed run's card and metrics report the whole run."""

    def __init__(self, seconds: float = 0.0, sessions: int = 0):
        self.seconds = seconds
        self.sessions = sessions
        self._start: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        self.sessions += 1

    def _tick(self) -> None:
        if self._start is not None:
            now = time.perf_counter()
            self.seconds += now - self._start
            self._start = now

    def on_save(self, args, state, control, **kwargs):
        self._tick()

    def on_train_end(self, args, state, control, **kwargs):
        self._tick()
        self._start = None

    def state(self) -> dict:
        self._tick()
        return {"args": {"seconds": self.seconds, "sessions": self.sessions}, "attributes": {}}
