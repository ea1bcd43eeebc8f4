"""Sparse mixture of experts (book §6.1): speed against transformers' Mixtral, and quality against dense models.

    python benchmarks/bench_moe.py --steps 30                  # a small CPU run (~2 minutes on 2 cores)
    python benchmarks/bench_moe.py --device cuda --steps 2000 --hidden 512 --layers 6 --batch 32 --seq 256

One run, one table of ratios, measured in the same process (each speed pair interleaved round by round, medians):

1. Ours with Mixtral-shaped options (SwiGLU experts, final norm, half-split RoPE, no biases) vs
   `transformers.MixtralForCausalLM` at the same shape with the same weights: training tokens/s (forward + backward
   + AdamW, load-balancing loss on) and cached greedy `generate()` tokens/s. Bar >= 0.95x Mixtral in its default
   experts implementation (`grouped_mm`); Mixtral's `eager` loop is shown beside it.
2. The MoE (8 experts, top-2) vs a dense model with the same *active* parameters per token (MLP width 2x an
   expert's) and vs a dense model with the same *total* parameters (MLP width 8x an expert's), each trained for
   the same number of steps on the same batches of the embedded corpus: validation bits per byte (book §2.6) and
   training tokens/s. At small scale and few steps the dense model with the most parameters per token usually wins
   per step; the MoE's case is quality per active FLOP, which the tokens/s column puts beside the bits per byte.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import AutoTokenizer, MixtralConfig, MixtralForCausalLM  # noqa: E402

from hf_hundredpage import HundredPageTransformerConfig, HundredPageTransformerForCausalLM  # noqa: E402
from hf_hundredpage.data import default_tokenizer_path  # noqa: E402
from hf_hundredpage.data.sources import embedded_corpus_files  # noqa: E402
from hf_hundredpage.evaluation.lm import evaluate_causal_lm  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, rounds: int, device, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, measured A, B, A, B, ... after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def train_step_fn(model, ids):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        model.train()
        model(input_ids=ids, labels=ids, output_router_logits=True).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def generate_fn(model, prompt, new_tokens):
    @torch.no_grad()
    def run():
        model.eval()
        return model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    return run


def mixtral_like(ours: HundredPageTransformerForCausalLM, experts_implementation: str) -> MixtralForCausalLM:
    """transformers' Mixtral of the same shape holding our weights (its experts stacked as 3-D tensors)."""
    c = ours.config
    config = MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, rms_norm_eps=c.rms_norm_eps, pad_token_id=0,
        num_local_experts=c.num_local_experts, num_experts_per_tok=c.num_experts_per_tok,
        router_aux_loss_coef=c.router_aux_loss_coef, max_position_embeddings=c.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
    )
    config._experts_implementation = experts_implementation
    mixtral = MixtralForCausalLM(config)
    state = {k: v for k, v in ours.state_dict().items() if ".experts." not in k}
    for i, layer in enumerate(ours.model.layers):
        experts = layer.mlp.experts
        state[f"model.layers.{i}.mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([e.gate_proj.weight, e.up_proj.weight]) for e in experts]
        )
        state[f"model.layers.{i}.mlp.experts.down_proj"] = torch.stack([e.down_proj.weight for e in experts])
    mixtral.load_state_dict(state)
    return mixtral.to(ours.device, ours.dtype)


def corpus_batches(tokenizer, steps: int, batch: int, seq: int, device) -> torch.Tensor:
    """`(steps, batch, seq)` token ids: the embedded corpus' train split, documents joined by EOS, cut in blocks."""
    needed = steps * batch * seq
    ids: list[int] = []
    with gzip.open(embedded_corpus_files()["train"], "rt", encoding="utf-8") as f:
        for line in f:
            ids.extend(tokenizer(line.strip())["input_ids"] + [tokenizer.eos_token_id])
            if len(ids) >= needed:
                break
    if len(ids) < needed:  # a long run cycles through the corpus
        ids = ids * (needed // len(ids) + 1)
    return torch.tensor(ids[:needed], device=device).view(steps, batch, seq)


def validation_texts(limit: int) -> list[str]:
    with gzip.open(embedded_corpus_files()["validation"], "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:limit]


def expert_load(model, texts, tokenizer, device) -> float:
    """max/min share of routed tokens over the experts of every sparse block, on validation text (1.0 = balanced)."""
    counts = None
    model.eval()
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, : model.config.max_position_embeddings].to(device)
            for logits in model(ids, output_router_logits=True).router_logits:
                top = logits.topk(model.config.num_experts_per_tok, dim=-1).indices.flatten()
                layer = torch.bincount(top, minlength=model.config.num_local_experts)
                counts = layer if counts is None else counts + layer
    return (counts.max() / counts.min().clamp(min=1)).item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each model in part 2")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--expert-size", type=int, default=None, help="an expert's MLP width (default: hidden)")
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of each speed comparison")
    parser.add_argument("--eval-docs", type=int, default=60, help="validation paragraphs scored for bits/byte")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    expert_size = args.expert_size or args.hidden
    tokenizer = AutoTokenizer.from_pretrained(default_tokenizer_path())
    vocab = len(tokenizer)
    print(f"device={device} dtype={dtype} threads={torch.get_num_threads()}  shape: vocab {vocab}, hidden "
          f"{args.hidden}, {args.layers} layers, {args.heads} heads, {args.experts} experts of width {expert_size}, "
          f"top-{args.top_k}, batch {args.batch}, seq {args.seq}")

    def config(**kwargs):
        return HundredPageTransformerConfig(
            vocab_size=vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
            gated_mlp=True, hidden_act="silu", final_norm=True, rope_interleaved=False, mlp_bias=False,
            rms_norm_eps=1e-6, max_position_embeddings=max(args.seq, 512), pad_token_id=0, **kwargs,
        )

    moe_options = dict(num_local_experts=args.experts, num_experts_per_tok=args.top_k, intermediate_size=expert_size,
                       router_aux_loss_coef=0.01)
    table = []

    # ---- 1. ours vs MixtralForCausalLM, same shape, same weights
    torch.manual_seed(0)
    ours = HundredPageTransformerForCausalLM(config(**moe_options)).to(device, dtype)
    mixtral = {impl: mixtral_like(ours, impl) for impl in ("grouped_mm", "eager")}
    ids = torch.randint(1, vocab, (args.batch, args.seq), device=device)
    fns = {"ours": train_step_fn(ours, ids)} | {impl: train_step_fn(m, ids) for impl, m in mixtral.items()}
    t = interleaved(fns, args.rounds, device)
    tokens = ids.numel()
    for impl, bar in (("grouped_mm", 0.95), ("eager", None)):
        ratio = t[impl] / t["ours"]
        table.append((f"train tok/s: ours vs Mixtral ({impl} experts)", f"{tokens / t['ours']:,.0f}",
                      f"{tokens / t[impl]:,.0f}", f"{ratio:.2f}x", f">= {bar}x" if bar else "",
                      ("ok" if ratio >= bar else "BELOW BAR") if bar else ""))
    prompt = torch.randint(1, vocab, (4, 32), device=device)
    new = 32
    fns = {"ours": generate_fn(ours, prompt, new)} | {impl: generate_fn(m, prompt, new) for impl, m in mixtral.items()}
    g = interleaved(fns, args.rounds, device)
    for impl, bar in (("grouped_mm", 0.95), ("eager", None)):
        ratio = g[impl] / g["ours"]
        table.append((f"generate tok/s: ours vs Mixtral ({impl} experts)", f"{prompt.shape[0] * new / g['ours']:,.0f}",
                      f"{prompt.shape[0] * new / g[impl]:,.0f}", f"{ratio:.2f}x", f">= {bar}x" if bar else "",
                      ("ok" if ratio >= bar else "BELOW BAR") if bar else ""))
    del ours, mixtral

    # ---- 2. MoE vs dense with the same active / total parameters, equal steps on the same batches
    batches = corpus_batches(tokenizer, args.steps, args.batch, args.seq, device)
    texts = validation_texts(args.eval_docs)
    contenders = {
        f"MoE {args.experts}x{expert_size} top-{args.top_k}": config(**moe_options),
        f"dense, same active params (MLP {args.top_k * expert_size})": config(intermediate_size=args.top_k * expert_size),
        f"dense, same total params (MLP {args.experts * expert_size})": config(intermediate_size=args.experts * expert_size),
    }
    results = {}
    for name, model_config in contenders.items():
        torch.manual_seed(0)
        model = HundredPageTransformerForCausalLM(model_config).to(device, dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
        model.train()
        sync(device)
        start = time.perf_counter()
        for step_ids in batches:
            model(input_ids=step_ids, labels=step_ids, output_router_logits=True).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sync(device)
        seconds = time.perf_counter() - start
        metrics = evaluate_causal_lm(model, tokenizer, texts, max_length=args.seq, batch_size=args.batch)
        total = sum(p.numel() for p in model.parameters())
        active = total
        if model_config.num_local_experts:
            per_expert = sum(p.numel() for p in model.model.layers[0].mlp.experts[0].parameters())
            active = total - args.layers * (args.experts - args.top_k) * per_expert
        results[name] = dict(
            bpb=metrics["bits_per_byte"], tok_s=batches.numel() / seconds, total=total, active=active,
            balance=expert_load(model, texts[:20], tokenizer, device) if model_config.num_local_experts else None,
        )
        del model, optimizer
    moe_name, *dense_names = contenders
    moe = results[moe_name]
    for name in dense_names:
        dense = results[name]
        table.append((f"val bits/byte after {args.steps} steps: MoE vs {name}", f"{moe['bpb']:.3f}", f"{dense['bpb']:.3f}",
                      f"{dense['bpb'] / moe['bpb']:.2f}x", "", "MoE wins" if moe["bpb"] < dense["bpb"] else "dense wins"))
        table.append((f"train tok/s: MoE vs {name}", f"{moe['tok_s']:,.0f}", f"{dense['tok_s']:,.0f}",
                      f"{moe['tok_s'] / dense['tok_s']:.2f}x", "", ""))

    header = ("measure", "ours / MoE", "baseline", "ratio (higher = ours better)", "bar", "verdict")
    print("\n| " + " | ".join(header) + " |\n|" + "|".join("---" for _ in header) + "|")
    for row in table:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print("\n| model | total params | active params / token | val bits/byte | train tok/s | expert load max/min |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        balance = f"{r['balance']:.2f}" if r["balance"] is not None else "-"
        print(f"| {name} | {r['total']:,} | {r['active']:,} | {r['bpb']:.3f} | {r['tok_s']:,.0f} | {balance} |")
    return table, results


if __name__ == "__main__":
    main()
