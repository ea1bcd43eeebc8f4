"""DPO three ways (book §6.4), same model, data and steps: full finetuning against a frozen reference copy (the
baseline), LoRA whose reference is the base with the adapter disabled (no copy), and full finetuning with the
reference log-probabilities precomputed before training (no reference model kept).

    python benchmarks/bench_align.py             # ~5 minutes on a 2-core CPU
    python benchmarks/bench_align.py --quick     # ~1 minute

The starting point is a book transformer finetuned (``recipes/sft.py``) on the SFT side of ``builtin:preferences``,
whose answers do not follow the preference rule (preference rate ~0.4). Each variant then runs ``recipes/dpo.py``
with ``recipes/configs/dpo/preferences_tiny.yaml`` in a FRESH process (so its peak memory is its own), the variants
interleaved round by round (full, lora, precomputed, full, ...); the table reports medians and each ratio to the
baseline.

Columns: trainable parameters; peak memory (GPU: `torch.cuda.max_memory_allocated`; CPU: the process's peak RSS
minus its RSS before the recipe starts, i.e. what the run added: model, reference, optimizer, activations, data);
training tokens/s (prompt + chosen and prompt + rejected tokens per pair, over the trainer's `train_runtime`, which
includes precomputing the reference log-probs); the preference rate of greedy answers on the held-out test prompts
after the same number of steps (before: the SFT model's), and the KL divergence from the starting model.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, load_recipe, rss_mb  # noqa: E402


VARIANTS = {  # name -> recipes/dpo.py flags
    "full": [],
    "lora": ["--use_peft", "true", "--lora_r", "16", "--lora_alpha", "32", "--lora_dropout", "0.0",
             ],
    "precomputed": ["--precompute_ref_log_probs", "true"],
}
QUIET = ["--disable_tqdm", "true", "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no"]


def warm_start(root: Path, args) -> Path:
    """A book transformer (random init, tokenizer trained on the data) finetuned on the SFT side of builtin:preferences."""
    import torch

    from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
    from hf_hundredpage.data.builtin.preferences import make_preference_dataset
    from hf_hundredpage.tokenization import train_bpe_tokenizer

    data = make_preference_dataset(args.examples, seed=7)
    tokenizer = train_bpe_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in data["train"]], vocab_size=400)
    torch.manual_seed(0)
    model = HundredPageTransformerForCausalLM(HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id))
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    sft = load_recipe("sft")
    code = sft.main([*QUIET, "--config", str(REPO / "recipes/configs/sft/instructions_tiny.yaml"),
                     "--model_name_or_path", str(root / "base"), "--output_dir", str(root / "sft"),
                     "--dataset_name", "builtin:preferences", "--dataset_config", "sft", "--dataset_num_examples",
                     str(args.examples), "--max_steps", str(args.sft_steps), "--learning_rate", str(args.sft_lr)])
    if code != 0:
        raise SystemExit("the SFT warm start failed")
    return root / "sft"


def worker(variant: str, model: str, out: str, args) -> dict:
    import torch

    gpu = torch.cuda.is_available()
    dpo = load_recipe("dpo")
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    start_rss = rss_mb()
    argv = [*QUIET, "--config", str(REPO / "recipes/configs/dpo/preferences_tiny.yaml"), "--model_name_or_path", model,
            "--output_dir", out, "--max_steps", str(args.steps), "--dataset_num_examples", str(args.examples),
            *VARIANTS[variant]]
    if dpo.main(argv) != 0:
        raise SystemExit(f"{variant} failed")
    peak = (torch.cuda.max_memory_allocated() / 2**20 if gpu
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start_rss)
    metrics = json.loads((Path(out) / "metrics.json").read_text())

    from transformers import AutoTokenizer

    from hf_hundredpage.alignment import preference_lengths
    from hf_hundredpage.data.preferences import load_preference_dataset

    tokenizer = AutoTokenizer.from_pretrained(model)
    train = load_preference_dataset("builtin:preferences", "pairs", num_examples=args.examples, seed=42)["train"]
    tokens_per_pair = 2 * statistics.mean(preference_lengths(tokenizer, train))
    batch = 16  # the config's per_device_train_batch_size
    return {
        "trainable": metrics["num_trainable_parameters"],
        "peak_mb": peak,
        "tokens_per_s": metrics["train_steps"] * batch * tokens_per_pair / metrics["train_runtime"],
        "rate_before": metrics["eval_preference_rate_before"],
        "rate_after": metrics["eval_preference_rate_after"],
        "kl": metrics["eval_kl_to_start"],
        "reward_accuracy": metrics.get("eval_rewards/accuracies", float("nan")),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.hidden, args.layers = (128, 2) if not args.quick else (64, 2)
    args.steps, args.sft_steps, args.sft_lr = (90, 300, 3e-3) if not args.quick else (20, 250, 1e-2)
    args.examples = 600
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.out, args)))
        return 0

    rounds = args.rounds or (2 if not args.quick else 1)
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SFT warm start (hidden {args.hidden}, {args.layers} layers, {args.sft_steps} steps) ...", flush=True)
        model = warm_start(Path(tmp), args)
        for r in range(rounds):
            for variant in VARIANTS:
                out = Path(tmp) / f"{variant}-{r}"
                cmd = [sys.executable, __file__, "--worker", variant, "--model", str(model), "--out", str(out)]
                done = subprocess.run(cmd + (["--quick"] if args.quick else []), capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
                results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1} {variant}: {results[variant][-1]}", flush=True)

    med = {v: {k: statistics.median(x[k] for x in results[v]) for k in results[v][0]} for v in VARIANTS}
    base = med["full"]
    rows = []
    for variant, m in med.items():
        versus = "baseline" if variant == "full" else (
            f"memory {m['peak_mb'] / base['peak_mb']:.2f}x, speed {m['tokens_per_s'] / base['tokens_per_s']:.2f}x")
        rows.append((variant, f"{m['trainable']:,.0f}", f"{m['peak_mb']:,.0f}", f"{m['tokens_per_s']:,.0f}",
                     f"{m['rate_before']:.3f} -> {m['rate_after']:.3f}", f"{m['kl']:.3f}",
                     f"{m['reward_accuracy']:.3f}", versus))
    from hf_hundredpage.training import format_table

    print(f"\nDPO, {args.steps} steps each, medians of {rounds} round(s):")
    print(format_table(rows, ("variant", "trainable params", "peak memory (MB)", "tokens/s", "preference rate",
                              "KL to start", "reward accuracy", "vs full")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
