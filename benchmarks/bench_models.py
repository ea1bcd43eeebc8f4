"""Speed of the book's models as `transformers` models, against named baselines measured in the same run.

    python benchmarks/bench_models.py            # default shapes (a few minutes on a 2-core CPU)
    python benchmarks/bench_models.py --quick    # smaller shapes, for a smoke run
    python benchmarks/bench_models.py --device cuda

Every comparison interleaves the two sides round by round (A, B, A, B, ...) and reports the median, so machine
noise hits both alike; the figures that matter are the ratios. Baselines:

1. `transformers.LlamaForCausalLM` vs ours with Llama-shaped options (SwiGLU, final norm, half-split RoPE) at the
   same shape: training tokens/s, cached greedy `generate()` tokens/s, and achieved FLOP/s as a fraction of the
   machine's measured matmul peak (nanoGPT's `estimate_mfu`).
2. The book's notebook transformer (tests/book_reference.py, the notebook's code) vs ours with book defaults:
   training tokens/s, and greedy generation of 128 tokens (the notebook re-runs the whole sequence per token;
   ours uses `generate()` with the KV cache).
3. The book's RNN loop vs our RNN (training tokens/s), and our RNN's ms per generated token at context 16 vs 1024.

Bars (from the models issue): training and generation >= 0.95x Llama; >= 1.0x the book transformer's training and
>= 3x its greedy loop; RNN training >= 1.5x the book loop; RNN per-token cost flat (<= 1.3x from 16 to 1024).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from hf_hundredpage import (  # noqa: E402
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from hf_hundredpage.training import model_flops_per_token  # noqa: E402
from tests.book_reference import DecoderLanguageModel, RecurrentLanguageModel  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(fns: dict, rounds: int, device, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each callable, measured A, B, A, B, ... after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(values) for name, values in times.items()}


def matmul_peak_flops(device, dtype) -> float:
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = min(timed(lambda: a @ b, device) for _ in range(5))
    return 2 * n**3 / seconds


def train_step_fn(model, ids, book: bool = False):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        if book:
            logits = model(ids)
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        else:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def book_greedy_fn(model, prompt, new_tokens):
    """The notebook's generation: re-run the whole sequence for every new token, take the argmax."""

    @torch.no_grad()
    def run():
        model.eval()
        ids = prompt
        for _ in range(new_tokens):
            next_id = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
        return ids

    return run


def generate_fn(model, prompt, new_tokens):
    @torch.no_grad()
    def run():
        model.eval()
        return model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    return run


def row(table, name, ours, base, unit, bar):
    ratio = ours / base
    verdict = "ok" if ratio >= bar else "BELOW BAR"
    table.append((name, f"{ours:,.1f} {unit}", f"{base:,.1f} {unit}", f"{ratio:.2f}x", f">= {bar}x", verdict))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    gpu = device.type == "cuda"
    dtype = torch.bfloat16 if gpu else torch.float32

    vocab, hidden, layers, heads, seq = (8192, 256, 4, 8, 256) if not args.quick else (2048, 128, 2, 4, 128)
    batch = 32 if gpu else (8 if not args.quick else 4)
    rounds = args.rounds or (5 if not args.quick else 3)
    if gpu:
        batch, rounds = 64, args.rounds or 10
    table = []
    print(f"device={device} dtype={dtype} threads={torch.get_num_threads()}  shape: vocab {vocab}, hidden {hidden}, "
          f"{layers} layers, {heads} heads, seq {seq}, batch {batch}")

    # ---- 1. ours (Llama-shaped) vs LlamaForCausalLM
    intermediate = 4 * hidden
    ours_config = HundredPageTransformerConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, gated_mlp=True, hidden_act="silu", final_norm=True, rope_interleaved=False,
        mlp_bias=False, rms_norm_eps=1e-6, max_position_embeddings=2048, pad_token_id=0,
    )
    llama_config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, rms_norm_eps=1e-6, max_position_embeddings=2048, pad_token_id=0,
    )
    ours = HundredPageTransformerForCausalLM(ours_config).to(device, dtype)
    llama = LlamaForCausalLM(llama_config).to(device, dtype)
    ours.load_state_dict(llama.state_dict(), strict=False)
    ids = torch.randint(1, vocab, (batch, seq), device=device)
    t = interleaved({"ours": train_step_fn(ours, ids), "llama": train_step_fn(llama, ids)}, rounds, device)
    tokens = batch * seq
    row(table, "train tok/s: ours (Llama-shaped) vs Llama", tokens / t["ours"], tokens / t["llama"], "tok/s", 0.95)
    peak = matmul_peak_flops(device, dtype)
    fpt = model_flops_per_token(llama, seq)  # nanoGPT's 6N + 12·L·H·T, the embedding lookup excluded
    mfu = {name: fpt * tokens / seconds / peak for name, seconds in t.items()}

    prompt = torch.randint(1, vocab, (batch if gpu else 4, 64), device=device)
    new = 128 if not args.quick else 32
    g = interleaved({"ours": generate_fn(ours, prompt, new), "llama": generate_fn(llama, prompt, new)}, rounds, device)
    gen_tokens = prompt.shape[0] * new
    row(table, "generate tok/s: ours vs Llama (KV cache)", gen_tokens / g["ours"], gen_tokens / g["llama"], "tok/s", 0.95)
    del ours, llama

    # ---- 2. ours (book defaults) vs the book's notebook transformer
    book_shape = dict(vocab_size=vocab, emb_dim=hidden, num_heads=heads, num_blocks=layers, pad_idx=0)
    book = DecoderLanguageModel(**book_shape).to(device, dtype)
    ours_book = HundredPageTransformerForCausalLM(
        HundredPageTransformerConfig(
            vocab_size=vocab, hidden_size=hidden, num_attention_heads=heads, num_hidden_layers=layers, pad_token_id=0
        )
    ).to(device, dtype)
    t = interleaved({"ours": train_step_fn(ours_book, ids), "book": train_step_fn(book, ids, book=True)}, rounds, device)
    row(table, "train tok/s: ours (book defaults) vs book notebook", tokens / t["ours"], tokens / t["book"], "tok/s", 1.0)
    prompt = torch.randint(1, vocab, (1, 16), device=device)
    g = interleaved(
        {"ours": generate_fn(ours_book, prompt, 128), "book": book_greedy_fn(book, prompt, 128)},
        max(2, rounds // 2), device,
    )
    row(table, "greedy 128 tok/s: ours generate() vs book loop", 128 / g["ours"], 128 / g["book"], "tok/s", 3.0)
    del book, ours_book

    # ---- 3. the RNN
    rnn_hidden, rnn_seq, rnn_batch = (128, 30, 128) if not gpu else (512, 128, 128)
    book_rnn = RecurrentLanguageModel(vocab_size=vocab, emb_dim=rnn_hidden, num_layers=2, pad_idx=0).to(device, dtype)
    ours_rnn = HundredPageRNNForCausalLM(
        HundredPageRNNConfig(vocab_size=vocab, hidden_size=rnn_hidden, num_hidden_layers=2, pad_token_id=0)
    ).to(device, dtype)
    rnn_ids = torch.randint(1, vocab, (rnn_batch, rnn_seq), device=device)
    t = interleaved(
        {"ours": train_step_fn(ours_rnn, rnn_ids), "book": train_step_fn(book_rnn, rnn_ids, book=True)}, rounds, device
    )
    rnn_tokens = rnn_batch * rnn_seq
    row(table, f"RNN train tok/s (E={rnn_hidden}, ctx {rnn_seq}): ours vs book loop", rnn_tokens / t["ours"],
        rnn_tokens / t["book"], "tok/s", 1.5)

    def stack_step(forward):
        def step():
            forward().sum().backward()
        return step

    # The recurrent stack alone (embedding + Elman units, forward + backward), without the vocabulary projection
    # and softmax that both sides share and that dominate the step at the book's small hidden size.
    t = interleaved(
        {"ours": stack_step(lambda: ours_rnn.model(input_ids=rnn_ids).last_hidden_state),
         "book": stack_step(lambda: book_rnn.rnn(book_rnn.embedding(rnn_ids)))}, rounds, device,
    )
    row(table, "RNN stack only (no vocab projection): ours vs book loop", rnn_tokens / t["ours"],
        rnn_tokens / t["book"], "tok/s", 1.5)

    per_token = {}
    for context in (16, 1024):
        prompt = torch.randint(1, vocab, (1, context), device=device)
        with torch.no_grad():
            ours_rnn.eval()
            out = ours_rnn(prompt, use_cache=True)
            cache, last = out.cache, out.logits[:, -1:].argmax(-1)

            def decode(steps=64, cache=cache, last=last):
                token = last
                for _ in range(steps):
                    step = ours_rnn(token, cache=cache, use_cache=True)
                    token = step.logits[:, -1:].argmax(-1)

            per_token[context] = interleaved({"decode": decode}, rounds, device)["decode"] / 64 * 1e3
    flat = per_token[1024] / per_token[16]
    table.append(("RNN ms/token: context 1024 vs 16", f"{per_token[1024]:.3f} ms", f"{per_token[16]:.3f} ms",
                  f"{flat:.2f}x", "<= 1.3x", "ok" if flat <= 1.3 else "ABOVE BAR"))

    widths = [max(len(str(r[i])) for r in table + [HEADER]) for i in range(len(HEADER))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [HEADER] + table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    print("\n".join(lines))
    print(f"\nmatmul peak ({dtype}): {peak / 1e9:,.1f} GFLOP/s; model FLOPs utilisation (6N + 12LHT per token): "
          f"ours {mfu['ours']:.1%}, Llama {mfu['llama']:.1%}")
    return table


HEADER = ("measure", "ours", "baseline", "ratio", "bar", "")

if __name__ == "__main__":
    main()
