"""LoRA vs full finetuning, and QLoRA (4-bit base) vs LoRA on a full-precision base, on the same model and data.

    python benchmarks/bench_finetune.py            # a few minutes on a 2-core CPU
    python benchmarks/bench_finetune.py --quick

The base is one of the book's transformers, first pretrained for `--pretrain_steps` on the embedded corpus so
that the finetuning losses mean something. Each variant then finetunes the same batches in a FRESH process (so its
peak memory is its own), and the variants run interleaved round by round (full, lora, qlora, full, ...); the table
reports medians. Baselines: full finetuning for LoRA; LoRA on the float32 base for QLoRA.

Columns: trainable parameters; peak memory (GPU: `torch.cuda.max_memory_allocated`; CPU: the process's peak RSS
minus its RSS right after loading the model, i.e. what training added); training tokens/s; validation loss after
the same number of steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import rss_mb  # noqa: E402


VARIANTS = ("full", "lora", "qlora")


def batches(tokenizer, block: int, batch: int, count: int, split: str, seed: int = 0):
    import torch

    from hf_hundredpage.data import load_text_dataset, pack_dataset

    data = pack_dataset(load_text_dataset()[split], tokenizer, block)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=generator)[: count * batch].tolist()
    ids = torch.tensor(data.select(order)["input_ids"], dtype=torch.long)
    return list(ids.split(batch))


def pretrain_base(folder: Path, args) -> None:
    import torch
    from transformers import AutoTokenizer

    from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
    from hf_hundredpage.data import default_tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    torch.manual_seed(0)
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, pad_token_id=tokenizer.pad_token_id,
    )
    model = HundredPageTransformerForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for ids in batches(tokenizer, args.block, args.batch, args.pretrain_steps, "train", seed=1):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def worker(variant: str, base: str, args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    import hf_hundredpage  # noqa: F401

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(base)
    train = batches(tokenizer, args.block, args.batch, args.steps + args.warmup, "train", seed=2)
    valid = batches(tokenizer, args.block, args.batch, 8, "validation", seed=3)
    kwargs = {}
    if variant == "qlora":
        kwargs = dict(
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
            ),
            device_map=device,
        )
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if variant != "qlora":  # a bitsandbytes model is placed by device_map and cannot be moved
        model.to(device)
    if variant == "qlora":
        from hf_hundredpage.finetuning import guard_cpu_4bit

        guard_cpu_4bit(model)
    if variant in ("lora", "qlora"):
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    loaded_rss = rss_mb()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()

    def step(ids):
        ids = ids.to(device)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for ids in train[: args.warmup]:
        step(ids)
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for ids in train[args.warmup :]:
        step(ids)
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        eval_loss = statistics.mean(model(input_ids=v.to(device), labels=v.to(device)).loss.item() for v in valid)
    if gpu:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - loaded_rss
    return {
        "trainable": trainable,
        "peak_mb": peak,
        "tokens_per_s": args.steps * args.batch * args.block / seconds,
        "eval_loss": eval_loss,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.hidden, args.layers, args.heads = (256, 4, 8) if not quick else (64, 2, 4)
    args.block, args.batch = (128, 8) if not quick else (64, 4)
    args.steps, args.warmup = (30, 3) if not quick else (8, 2)
    args.pretrain_steps = 150 if not quick else 20
    if args.worker:
        print(json.dumps(worker(args.worker, args.base, args)))
        return 0

    rounds = args.rounds or (3 if not quick else 1)
    results = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        print(f"pretraining the base (hidden {args.hidden}, {args.layers} layers, {args.pretrain_steps} steps) ...",
              flush=True)
        pretrain_base(base, args)
        for r in range(rounds):
            for variant in VARIANTS:
                cmd = [sys.executable, __file__, "--worker", variant, "--base", str(base)] + (["--quick"] if quick else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
                results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(f"round {r + 1} {variant}: {results[variant][-1]}", flush=True)

    med = {v: {k: statistics.median(x[k] for x in results[v]) for k in results[v][0]} for v in VARIANTS}
    header = ("variant", "trainable params", "peak memory (MB)", "tokens/s", "eval loss", "vs baseline")
    rows = []
    for variant, baseline in (("full", None), ("lora", "full"), ("qlora", "lora")):
        m = med[variant]
        versus = "baseline"
        if baseline:
            b = med[baseline]
            versus = (f"vs {baseline}: params {m['trainable'] / b['trainable']:.3f}x, memory "
                      f"{m['peak_mb'] / b['peak_mb']:.2f}x, speed {m['tokens_per_s'] / b['tokens_per_s']:.2f}x")
        rows.append((variant, f"{m['trainable']:,.0f}", f"{m['peak_mb']:,.0f}", f"{m['tokens_per_s']:,.0f}",
                     f"{m['eval_loss']:.3f}", versus))
    from hf_hundredpage.training import format_table

    print()
    print(format_table(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
