"""Compression (book §6.3) in one run: what each quantization method costs and buys, post-training vs
quantization-aware, on the quickstart model; then generation speed where weight memory matters.

    python benchmarks/bench_compress.py                         # trains its own quickstart model (~8 min on 2 cores)
    python benchmarks/bench_compress.py --model out/quickstart  # or measure the README's model
    python benchmarks/bench_compress.py --parts speed --hidden_size 1024 --num_hidden_layers 8

Part "quality": the quickstart config (``recipes/configs/pretrain/quickstart.yaml``) trained `--base_steps` (unless
`--model` is given), then continued `--qat_steps` more steps twice from the same weights, seed and data: once plain
(the post-training quantization baseline: what PTQ is applied to) and once with ``--qat torchao-8da4w`` (fake
quantization during those steps). The table is ``hf-hundredpage quantize --compare`` of the plain model with the
QAT model beside it: every method next to fp32 and bf16, ratios to fp32; "torchao-8da4w" vs "torchao-8da4w (QAT)" is
PTQ vs QAT at the same bit width.

Part "speed": a transformer of `--hidden_size` x `--num_hidden_layers` (vocabulary 8192, random weights: speed and
memory do not depend on training) quantized by every method that runs on this device; greedy ``generate()`` tokens/s
(best of `--repeats`, `--new_tokens` each) and parameter memory, as ratios to fp32 in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, load_recipe  # noqa: E402


CONFIG = REPO / "recipes" / "configs" / "pretrain" / "quickstart.yaml"
QAT_METHOD = "torchao-8da4w"


def pretrain(output_dir: Path, *args: str) -> None:
    argv = ["--config", str(CONFIG), "--output_dir", str(output_dir), "--disable_tqdm", "true",
            "--ngram_mixture", "false", "--save_strategy", "no", "--report_to", "none", *args]
    if load_recipe("pretrain").main(argv) != 0:
        raise SystemExit(f"pretraining into {output_dir} failed")


def quality(args, work: Path) -> str:
    from hf_hundredpage.compression.quantize import METHODS, compare_methods, format_markdown_table, unsupported_reason

    base = Path(args.model) if args.model else work / "base"
    if not args.model:
        pretrain(base, "--max_steps", str(args.base_steps))
    # Both continuations: same start, seed, data order and schedule (constant learning rate, no warmup).
    common = ("--model_name_or_path", str(base), "--max_steps", str(args.qat_steps), "--warmup_steps", "0",
              "--lr_scheduler_type", "constant", "--learning_rate", str(args.qat_learning_rate))
    pretrain(work / "plain", *common)
    pretrain(work / "qat", *common, "--qat", QAT_METHOD, "--qat_group_size", str(args.group_size))
    methods = [m for m in METHODS if unsupported_reason(m) is None]
    started = time.perf_counter()
    report = compare_methods(work / "plain", methods, qat_model=work / "qat", max_new_tokens=args.new_tokens,
                             group_size=args.group_size)
    return (f"### PTQ and QAT on the quickstart model ({'--model ' + args.model if args.model else f'{args.base_steps} steps'}"
            f" + {args.qat_steps} steps plain / with --qat {QAT_METHOD}, int4 groups of {args.group_size}); "
            f"{report['documents']} validation documents, "
            f"{time.perf_counter() - started:.0f} s\n\n" + format_markdown_table(report["rows"]))


def speed(args, work: Path) -> str:
    from transformers import AutoTokenizer

    from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM
    from hf_hundredpage.compression.quantize import (
        DEFAULT_SKIP_MODULES,
        FULL_PRECISION,
        METHODS,
        _load_full_precision,
        _quiet_backends,
        _release_memory,
        generation_speed,
        load_quantized,
        parameter_memory,
        unsupported_reason,
    )
    from hf_hundredpage.data import default_tokenizer_path

    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    torch.manual_seed(0)
    config = HundredPageTransformerConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.hidden_size // 64, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = work / "speed_model"
    HundredPageTransformerForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    rows = []
    with _quiet_backends():
        for name in [*FULL_PRECISION, *METHODS]:
            reason = None if name in FULL_PRECISION else unsupported_reason(name)
            if reason is not None:
                rows.append((name, None, None, reason.split(":")[0]))
                continue
            model = (_load_full_precision(str(folder), FULL_PRECISION[name], False) if name in FULL_PRECISION
                     else load_quantized(str(folder), name, list(DEFAULT_SKIP_MODULES)))
            memory = parameter_memory(model)
            tps = generation_speed(model, tokenizer, max_new_tokens=args.new_tokens, repeats=args.repeats)
            rows.append((name, memory, tps, ""))
            del model
            _release_memory()
    fp32 = rows[0]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    lines = [f"### generate() at hidden {args.hidden_size} x {args.num_hidden_layers} layers "
             f"({sum(p.numel() for p in HundredPageTransformerForCausalLM(config).parameters()) / 1e6:.0f}M parameters), "
             f"{device}, {torch.get_num_threads()} threads, {args.new_tokens} new tokens, best of {args.repeats}", "",
             "| method | memory MB | ×fp32 | tokens/s | ×fp32 | note |", "|---|---:|---:|---:|---:|---|"]
    for name, memory, tps, note in rows:
        if memory is None:
            lines.append(f"| {name} | – | – | – | – | {note} |")
        else:
            lines.append(f"| {name} | {memory / 1e6:.0f} | {memory / fp32[1]:.2f} | {tps:.1f} | {tps / fp32[2]:.2f} | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=["quality", "speed"], default=["quality", "speed"])
    parser.add_argument("--model", default=None, help="a quickstart folder to start from (default: train one)")
    parser.add_argument("--base_steps", type=int, default=600, help="quickstart steps when --model is not given")
    parser.add_argument("--qat_steps", type=int, default=150, help="steps of both continuations (plain, QAT)")
    parser.add_argument("--qat_learning_rate", type=float, default=3e-4, help="their constant learning rate")
    parser.add_argument("--group_size", type=int, default=32, help="int4 weights per scale (torchao methods, QAT)")
    parser.add_argument("--hidden_size", type=int, default=1024)
    parser.add_argument("--num_hidden_layers", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--work_dir", default=None, help="keep the trained models here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        work = Path(args.work_dir or tmp)
        tables = [quality(args, work) if part == "quality" else speed(args, work) for part in args.parts]
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
