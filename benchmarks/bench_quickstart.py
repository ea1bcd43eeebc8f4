"""The quickstart's levers (issue: beat the n-gram model by >= 5% in bits per byte), each at the same wall-clock
training budget, against the shipped ``recipes/configs/pretrain/quickstart.yaml`` in the same run.

    python benchmarks/bench_quickstart.py                  # 12 levers x (budget + ~90 s), ~30 min at 60 s
    python benchmarks/bench_quickstart.py --budget 60 --levers baseline "vocab 4096"

Each lever is the quickstart config plus a few keys. It runs ``recipes/pretrain.py`` (the README's job, n-gram
baseline and mixture included) in a FRESH process, with ``max_steps`` set so that training takes `--budget`
seconds: the process first times twelve bare training steps of that exact model, batch and precision (after three
warmup steps; the median; with ``torch_compile`` the compile time is measured and taken off the budget), then 40
steps of the recipe's Trainer itself (data, clipping, schedule, logging cost ~1.5x a bare step), so a lever that
makes steps cheaper gets more of them. A vocabulary lever trains its byte-level BPE tokenizer on the corpus' train split first
(book §2.3); bits per byte do not depend on the tokenizer, so they compare across vocabularies (loss does not), and
the Kneser-Ney trigram baseline is refitted on each tokenizer (its bits per byte move too).

Columns: steps, training tokens/s and MFU (nanoGPT's FLOPs per token over this machine's measured fp32 matmul
peak), validation bits per byte of the transformer, of its trigram baseline and of their mixture, and the
transformer's bits per byte relative to the baseline lever's (below 1 is better).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import REPO, load_recipe  # noqa: E402


CONFIG = REPO / "recipes" / "configs" / "pretrain" / "quickstart.yaml"

# name -> keys added to quickstart.yaml ("vocab": train a tokenizer of that size first)
LEVERS: dict[str, dict] = {
    "baseline": {},
    "vocab 4096": {"vocab": 4096},
    "vocab 2048": {"vocab": 2048},
    "vocab 4096, hidden 192, 4 heads": {"vocab": 4096, "hidden_size": 192},
    "vocab 4096, 6 layers": {"vocab": 4096, "num_hidden_layers": 6},
    "learning rate 3e-3": {"learning_rate": 3.0e-3},
    "WSD schedule (20% decay)": {"lr_scheduler_type": "warmup_stable_decay", "wsd_decay": 0.2},
    "block 256, batch 8": {"block_size": 256, "per_device_train_batch_size": 8},
    "dropout 0.1": {"hidden_dropout": 0.1},
    "tied embeddings": {"tie_word_embeddings": True},
    "torch.compile": {"torch_compile": True},
    "bf16 autocast": {"bf16": True, "use_cpu": True},
}


def read_config() -> dict:
    import yaml

    return yaml.safe_load(CONFIG.read_text())


def train_tokenizer(vocab: int, folder: Path) -> Path:
    from hf_hundredpage.data import load_text_dataset
    from hf_hundredpage.tokenization import train_bpe_tokenizer

    train_bpe_tokenizer(load_text_dataset()["train"], vocab_size=vocab).save_pretrained(folder)
    return folder


def steps_per_second(config: dict, tokenizer_path: Path | None) -> tuple[float, float, float]:
    """(training steps/s, compile seconds, FLOPs per token) of the lever's model on random batches: AdamW, the
    config's batch and block, bf16 autocast or torch.compile when the lever asks."""
    import torch
    from transformers import AutoTokenizer

    from hf_hundredpage.data import default_tokenizer_path
    from hf_hundredpage.training.args import ModelArguments, build_model
    from hf_hundredpage.training.trainer import model_flops_per_token

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or default_tokenizer_path())
    keys = {k: v for k, v in config.items() if k in ModelArguments.__dataclass_fields__}
    model = build_model(ModelArguments(**keys), tokenizer, config["block_size"]).train()
    flops = model_flops_per_token(model, config["block_size"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step_model = model
    compile_seconds = 0.0
    if config.get("torch_compile"):
        step_model = torch.compile(model)
    ids = torch.randint(0, len(tokenizer), (config["per_device_train_batch_size"], config["block_size"]))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(config.get("bf16"))):
            loss = step_model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    step()
    if config.get("torch_compile"):
        compile_seconds = time.perf_counter() - start
    for _ in range(2):
        step()
    times = []
    for _ in range(12):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if sum(times) > 60:  # a hopelessly slow lever: its rate is clear already
            break
    return 1 / statistics.median(times), compile_seconds, flops  # the median: robust to a busy moment


def run_recipe(config: dict, steps: int, tokenizer: Path | None, out: Path, calibration: bool = False) -> dict:
    """``recipes/pretrain.py`` on `config` for `steps` steps; its metrics.json. A calibration run skips the final
    evaluation's work (one document, no mixture, one-token samples)."""
    import yaml

    config = {**config, "max_steps": steps, "eval_strategy": "no", "save_strategy": "no", "report_to": "none",
              "logging_steps": 50, "warmup_steps": min(config["warmup_steps"], steps // 10)}
    if "wsd_decay" in config:
        config["lr_scheduler_kwargs"] = {"num_decay_steps": int(config.pop("wsd_decay") * steps)}
    if calibration:
        config.update(eval_max_documents=1, ngram_mixture=False, sample_max_new_tokens=1)
    if tokenizer:
        config["tokenizer_name_or_path"] = str(tokenizer)
    (out.parent / f"{out.name}.yaml").write_text(yaml.safe_dump(config))
    code = load_recipe("pretrain").main(["--config", str(out.parent / f"{out.name}.yaml"), "--output_dir", str(out),
                                         "--disable_tqdm", "true"])
    if code != 0:
        raise SystemExit(f"pretrain.py exited with {code}")
    return json.loads((out / "metrics.json").read_text())


def worker(name: str, budget: float, out: Path) -> dict:
    import torch

    from hf_hundredpage.training.trainer import measured_peak_flops

    peak = measured_peak_flops(torch.device("cpu"))
    config = {**read_config(), **LEVERS[name]}
    tokenizer = train_tokenizer(config.pop("vocab"), out.parent / f"tokenizer-{name}") if "vocab" in config else None
    rate, compile_seconds, flops = steps_per_second(config, tokenizer)
    steps = int((budget - compile_seconds) * rate)
    if steps >= 20:  # the Trainer's own step (data, clipping, schedule, logging) costs more: time 40 of them too
        runtime = run_recipe(config, 40, tokenizer, out.parent / f"{out.name}-calibration", calibration=True)[
            "train_runtime"]
        rate = 40 / max(runtime - compile_seconds, 40 / rate)  # the Trainer's step is never cheaper than a bare one
        steps = int((budget - compile_seconds) * rate)
    if steps < 20:  # compile time over the budget, bf16 on a CPU without bf16 units: report the speed only
        tokens_per_s = rate * config["per_device_train_batch_size"] * config["block_size"]
        return {"steps": max(steps, 0), "compile_seconds": compile_seconds, "runtime": 0.0, "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * flops / peak,
                "bpb": float("nan"), "ngram_bpb": float("nan"), "mixture_bpb": float("nan"), "params": 0}
    metrics = run_recipe(config, steps, tokenizer, out)
    return {"steps": metrics["train_steps"], "runtime": metrics["train_runtime"],
            "tokens_per_s": metrics["train_tokens_per_second"],
            "mfu": metrics["train_tokens_per_second"] * flops / peak,
            "bpb": metrics["eval_bits_per_byte"], "ngram_bpb": metrics["ngram_eval_bits_per_byte"],
            "mixture_bpb": metrics.get("mixture_eval_bits_per_byte", float("nan")),
            "params": metrics["num_parameters"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds per lever")
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", choices=list(LEVERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args.worker, args.budget, args.out)))
        return 0

    levers = ["baseline", *[name for name in args.levers if name != "baseline"]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(levers):
            cmd = [sys.executable, __file__, "--worker", name, "--budget", str(args.budget), "--out", f"{tmp}/run{i}"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
            if done.returncode != 0 or line is None:
                print(f"{name}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            results[name] = json.loads(line[len("RESULT "):])
            print(f"{name}: {results[name]}", flush=True)
    if "baseline" not in results:
        raise SystemExit("the baseline lever failed: nothing to compare with")
    base = results["baseline"]["bpb"]
    rows = [(name, f"{r['params']:,}", f"{r['steps']:,}", f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}",
             f"{r['bpb']:.3f}", f"{r['ngram_bpb']:.3f}", f"{r['mixture_bpb']:.3f}", f"{r['bpb'] / base:.3f}x",
             f"{r['bpb'] / r['ngram_bpb'] - 1:+.1%}")
            for name, r in results.items()]
    from hf_hundredpage.training import format_table

    print(f"\nquickstart levers, {args.budget:.0f} s of training each (bits per byte on the validation split):")
    print(format_table(rows, ("lever", "params", "steps", "tokens/s", "MFU", "transformer", "3-gram KN", "mixture",
                              "vs baseline", "vs its KN")))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
