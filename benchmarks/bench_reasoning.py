"""Reasoning (book §6.5): the cost of GRPO on our transformer against Llama, and what self-consistency buys per token.

    python benchmarks/bench_reasoning.py                      # small shapes, a few minutes on a 2-core CPU
    python benchmarks/bench_reasoning.py --parts b --model out/cot-sft --prompt_format text --max_steps 3 --max_operand 20
    python benchmarks/bench_reasoning.py --device cuda --hidden 512 --layers 8 --heads 8 --grpo_batch 64 \\
        --num_generations 8 --max_completion_length 128 --train_steps 1500 --num_problems 200

a. GRPO, one process, same data (``builtin:arithmetic``, ``grpo``), same `GRPOConfig`, same tokenizer, same
   weights: `HundredPageTransformerForCausalLM` with Llama-shaped options (SwiGLU, final norm, half-split RoPE, no MLP
   bias) against `transformers.LlamaForCausalLM` built from the same config values and loaded with the same state
   dict. The two alternate run by run (ours, Llama, ours, Llama, ...), the first step of every run is dropped
   (warm-up) and the median step is reported: optimizer steps/s, and tokens/s of TRL's `generate()` calls (completion
   tokens up to and including the stop token, over the seconds spent inside `generate`). Ratio ours / Llama.
b. Self-consistency (`hf_hundredpage.reasoning.strategies.self_consistency`: N chains sampled in one
   ``generate(num_return_sequences=N)``, majority vote) at N = 1, 4, 16 on held-out ``builtin:arithmetic`` problems:
   tokens generated per problem, accuracy, and both as a ratio to N = 1; greedy chain of thought as a reference row.
   The model is ``--model`` or, by default, one trained here: a fresh small transformer and a BPE tokenizer fitted on
   the problems, finetuned by ``recipes/sft.py`` on the ``sft`` configuration (chain-of-thought targets) for
   ``--train_steps`` steps. ``--train_steps 0`` without ``--model`` skips part b. A model finetuned on the ``sft``
   configuration answers plain-text prompts: pass ``--prompt_format text`` with it (its tokenizer has a chat template,
   so ``auto`` would use it), and the difficulty it was trained on (the recipe's defaults: ``--max_steps 3
   --max_operand 20``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import LlamaConfig, LlamaForCausalLM, PrinterCallback, TrainerCallback  # noqa: E402

from benchmarks.common import load_recipe  # noqa: E402
from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM  # noqa: E402
from hf_hundredpage.data.builtin.arithmetic import make_arithmetic_dataset  # noqa: E402
from hf_hundredpage.generation import set_generation_stop_tokens, stop_token_ids  # noqa: E402
from hf_hundredpage.tokenization import train_bpe_tokenizer  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def table(header, rows) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def problems(args, config: str):
    return make_arithmetic_dataset(args.num_examples, seed=args.seed, config=config, min_steps=args.min_steps,
                                   max_steps=args.max_steps, max_operand=args.max_operand)


# ------------------------------------------------------------------------------------------------ a. GRPO


class StepTimer(TrainerCallback):
    """Wall seconds of every optimizer step."""

    def __init__(self, device):
        self.device, self.steps = device, []

    def on_step_begin(self, args, state, control, **kwargs):
        sync(self.device)
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        sync(self.device)
        self.steps.append(time.perf_counter() - self.start)


def count_generation(model, device, stop_ids):
    """Wrap ``model.generate``: per call, seconds and completion tokens (up to and including the first stop token, as
    TRL's completion mask counts them)."""
    calls, original = [], model.generate

    def generate(*a, **k):
        prompt_length = (k.get("input_ids") if k.get("input_ids") is not None else a[0]).shape[1]
        sync(device)
        start = time.perf_counter()
        out = original(*a, **k)
        sync(device)
        seconds = time.perf_counter() - start
        completion = out[:, prompt_length:]
        is_stop = torch.isin(completion, torch.tensor(stop_ids, device=completion.device))
        first = torch.where(is_stop.any(1), is_stop.int().argmax(1) + 1, completion.shape[1])
        calls.append((seconds, int(first.sum())))
        return out

    model.generate = generate
    return calls


def grpo_benchmark(args, device) -> str:
    from trl import GRPOConfig, GRPOTrainer

    from hf_hundredpage.reasoning.rewards import resolve_reward_funcs

    data = problems(args, "grpo")
    sft = problems(args, "sft")
    tokenizer = train_bpe_tokenizer([r["prompt"] + r["completion"] for r in sft["train"]], vocab_size=args.vocab_size)
    vocab = len(tokenizer)
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                   eos_token_id=tokenizer.eos_token_id)
    shape = dict(vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                 num_attention_heads=args.heads, intermediate_size=4 * args.hidden, rms_norm_eps=1e-6,
                 max_position_embeddings=512, **special)
    torch.manual_seed(args.seed)
    llama = LlamaForCausalLM(LlamaConfig(**shape))
    ours = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        **shape, gated_mlp=True, hidden_act="silu", final_norm=True, rope_interleaved=False, mlp_bias=False))
    missing, unexpected = ours.load_state_dict(llama.state_dict(), strict=False)
    assert not unexpected, unexpected
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    models = {"ours": ours.to(device, dtype), "llama": llama.to(device, dtype)}
    stops = stop_token_ids(tokenizer)
    generations = {}
    for name, model in models.items():
        set_generation_stop_tokens(model, tokenizer)
        generations[name] = count_generation(model, device, stops)
    rewards = resolve_reward_funcs(["correctness", "format"])
    steps = {name: [] for name in models}
    gen = {name: [] for name in models}
    with tempfile.TemporaryDirectory() as tmp:
        config = GRPOConfig(
            output_dir=tmp, per_device_train_batch_size=args.grpo_batch, num_generations=args.num_generations,
            max_completion_length=args.max_completion_length, max_steps=args.grpo_steps, learning_rate=1e-5,
            beta=0.0, temperature=1.0, logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
            use_cpu=device.type == "cpu", bf16=device.type == "cuda", gradient_checkpointing=False, seed=args.seed,
        )
        for _ in range(args.rounds):
            for name, model in models.items():
                timer = StepTimer(device)
                before = len(generations[name])
                trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=config, train_dataset=data["train"],
                                      processing_class=tokenizer, callbacks=[timer])
                trainer.remove_callback(PrinterCallback)  # no per-step log lines
                trainer.train()
                steps[name] += timer.steps[1:]  # the run's first step warms up
                gen[name] += generations[name][before + 1:]
    print(f"\na. GRPO on {device} ({dtype}), {args.rounds} runs x {args.grpo_steps} steps per model (first step of each run "
          f"dropped): vocab {vocab}, hidden {args.hidden}, {args.layers} layers, {args.heads} heads; "
          f"{args.grpo_batch} completions per step ({args.grpo_batch // args.num_generations} prompts x "
          f"{args.num_generations}), max_completion_length {args.max_completion_length}, beta 0")
    figures = {}
    for name in models:
        step = statistics.median(steps[name])
        tokens = sum(t for _, t in gen[name]) / sum(s for s, _ in gen[name])
        share = sum(s for s, _ in gen[name]) / sum(steps[name])
        figures[name] = (1 / step, tokens, share, sum(t for _, t in gen[name]) / len(gen[name]))
    rows = []
    for i, (label, fmt) in enumerate([("steps/s", "{:.3f}"), ("generated tokens/s (inside generate)", "{:,.0f}"),
                                      ("share of step time in generate", "{:.0%}"),
                                      ("completion tokens per step", "{:,.0f}")]):
        ours_value, llama_value = figures["ours"][i], figures["llama"][i]
        ratio = f"{ours_value / llama_value:.2f}x" if i < 2 else ""
        rows.append((label, fmt.format(ours_value), fmt.format(llama_value), ratio))
    out = table(("GRPO measure", "ours (Llama-shaped)", "LlamaForCausalLM", "ours / Llama"), rows)
    print(out)
    return out


# ------------------------------------------------------------------------------------------------ b. self-consistency


def train_sft_model(args, folder: Path) -> Path:
    """A fresh small transformer + BPE tokenizer fitted on the problems, finetuned with recipes/sft.py on the sft
    configuration (written as a jsonl folder, so the difficulty flags apply)."""
    sft = problems(args, "sft")
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    for split, rows in sft.items():
        with open(data_dir / f"{split}.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    tokenizer = train_bpe_tokenizer([r["prompt"] + r["completion"] for r in sft["train"]], vocab_size=args.vocab_size)
    torch.manual_seed(args.seed)
    base = folder / "base"
    HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=args.sc_hidden, num_hidden_layers=args.sc_layers,
        num_attention_heads=args.heads, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = folder / "sft"
    argv = ["--model_name_or_path", str(base), "--dataset_name", str(data_dir), "--output_dir", str(out),
            "--max_steps", str(args.train_steps), "--per_device_train_batch_size", "32", "--learning_rate", "3e-3",
            "--lr_scheduler_type", "cosine", "--warmup_steps", "10", "--max_length", "128", "--logging_steps", "50",
            "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            "--eval_max_examples", "8", "--seed", str(args.seed)]
    if args.device == "cpu":
        argv += ["--use_cpu", "true"]
    start = time.perf_counter()
    assert load_recipe("sft").main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"\nSFT ({args.train_steps} steps, {time.perf_counter() - start:.0f} s, "
          f"{metrics['num_parameters'] / 1e6:.2f}M parameters): eval loss {metrics['eval_loss']:.3f}")
    return out


def self_consistency_benchmark(args, device) -> str | None:
    from hf_hundredpage.generation import load_for_generation
    from hf_hundredpage.reasoning.strategies import cot, self_consistency

    if args.model is None and args.train_steps == 0:
        print("\nb. self-consistency: skipped (no --model and --train_steps 0: pass a model folder, or let the "
              "benchmark SFT one with --train_steps N)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or train_sft_model(args, Path(tmp))
        model, tokenizer = load_for_generation(str(path))
        model.to(device).eval()
    chat = {"auto": None if args.model else False, "chat": True, "text": False}[args.prompt_format]
    test = problems(args, "grpo")["test"]
    rows = [test[i] for i in range(min(args.num_problems, len(test)))]
    options = dict(chat=chat, max_new_tokens=args.max_new_tokens)
    runs = {"greedy CoT": lambda q: cot(model, tokenizer, q, **options)}
    for n in args.samples:
        runs[f"N={n}"] = (lambda q, n=n: self_consistency(model, tokenizer, q, num_samples=n, seed=args.seed,
                                                          temperature=args.temperature, **options))
    results = {}
    for name, run in runs.items():
        correct = tokens = 0
        start = time.perf_counter()
        for row in rows:
            result = run(row["prompt"].strip())
            correct += int(result.value == row["answer"])
            tokens += result.generated_tokens
        results[name] = (tokens / len(rows), correct / len(rows), (time.perf_counter() - start) / len(rows), correct)
    base_tokens, base_accuracy, _, _ = results[f"N={args.samples[0]}"]
    lines = []
    for name, (tokens, accuracy, seconds, correct) in results.items():
        ratio = "" if name == "greedy CoT" else f"{tokens / base_tokens:.2f}x"
        acc_ratio = "" if name == "greedy CoT" else (f"{accuracy / base_accuracy:.2f}x" if base_accuracy else "n/a")
        lines.append((name, f"{tokens:.1f}", f"{accuracy:.3f} ({correct}/{len(rows)})", ratio, acc_ratio, f"{seconds:.2f}"))
    print(f"\nb. self-consistency on {len(rows)} held-out builtin:arithmetic problems ({args.min_steps}-{args.max_steps} "
          f"operations, operands up to {args.max_operand}), temperature {args.temperature}, model "
          f"{args.model or 'SFT here'}, prompts {'chat' if chat else 'plain text' if chat is False else 'auto'}")
    out = table(("strategy", "tokens / problem", "accuracy", f"tokens vs N={args.samples[0]}",
                 f"accuracy vs N={args.samples[0]}", "s / problem"), lines)
    print(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="a,b", help="a (GRPO ours vs Llama), b (self-consistency), or both")
    data = parser.add_argument_group("data (builtin:arithmetic)")
    data.add_argument("--num_examples", type=int, default=2000, help="problems over the three splits")
    data.add_argument("--min_steps", type=int, default=1)
    data.add_argument("--max_steps", type=int, default=2)
    data.add_argument("--max_operand", type=int, default=9)
    data.add_argument("--vocab_size", type=int, default=400, help="BPE tokenizer fitted on the problems")
    grpo = parser.add_argument_group("a. GRPO")
    grpo.add_argument("--hidden", type=int, default=64)
    grpo.add_argument("--layers", type=int, default=2)
    grpo.add_argument("--heads", type=int, default=4)
    grpo.add_argument("--grpo_batch", type=int, default=16, help="completions per step (prompts x num_generations)")
    grpo.add_argument("--num_generations", type=int, default=4)
    grpo.add_argument("--max_completion_length", type=int, default=48)
    grpo.add_argument("--grpo_steps", type=int, default=6, help="steps per run (the first is dropped)")
    grpo.add_argument("--rounds", type=int, default=3, help="runs per model, alternating")
    sc = parser.add_argument_group("b. self-consistency")
    sc.add_argument("--model", default=None, help="a model folder or Hub id (default: SFT a small one here)")
    sc.add_argument("--prompt_format", choices=("auto", "chat", "text"), default="auto",
                    help="auto: plain text for the model trained here, else chat when the tokenizer has a template")
    sc.add_argument("--train_steps", type=int, default=800, help="SFT steps of the model trained here (0: skip part b "
                    "when no --model)")
    sc.add_argument("--sc_hidden", type=int, default=96)
    sc.add_argument("--sc_layers", type=int, default=2)
    sc.add_argument("--num_problems", type=int, default=50)
    sc.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16])
    sc.add_argument("--temperature", type=float, default=0.7)
    sc.add_argument("--max_new_tokens", type=int, default=64)
    args = parser.parse_args(argv)
    if args.grpo_batch % args.num_generations:
        parser.error(f"--grpo_batch {args.grpo_batch} must be divisible by --num_generations {args.num_generations}")
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()}")
    parts = {p.strip() for p in args.parts.split(",")}
    tables = {}
    if "a" in parts:
        tables["a"] = grpo_benchmark(args, device)
    if "b" in parts:
        tables["b"] = self_consistency_benchmark(args, device)
    return tables


if __name__ == "__main__":
    main()
