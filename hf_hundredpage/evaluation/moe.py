"""How a sparse mixture of experts (book §6.1) spreads tokens over its experts: the expert load on held-out text.

The load of expert j in block i is the share of the top-k assignments of block i's router that go to j (each token
counts `num_experts_per_tok` times), over every token of the texts; a perfectly balanced router gives 1/E each. The
balance is max load / min load over all sparse blocks (1 is perfect; an expert no token reaches makes it infinite).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch


def expert_load(model, tokenizer, texts: list[str], *, max_length: int = 128, batch_size: int = 16,
                max_tokens: int = 200_000) -> dict[str, Any]:
    """Expert load of every sparse block of `model` on `texts` (module docstring).

    The texts are tokenized, concatenated (BOS before each) and cut into full windows of `max_length` tokens (no
    padding, so every routed token is a real one), at most `max_tokens` tokens.

    Returns:
        ``{"expert_load": {block index: [share per expert]}, "expert_load_balance": max/min, "expert_load_tokens": n,
        "eval_aux_loss": the mean load-balancing loss as Mixtral computes it (E · Σ load · mean router probability;
        num_experts_per_tok when perfectly balanced)}``.
    """
    config = model.config
    if not getattr(config, "num_local_experts", 0):
        raise ValueError("expert_load needs a mixture-of-experts model (num_local_experts > 0)")
    ids: list[int] = []
    for text in texts:
        ids += [tokenizer.bos_token_id, *tokenizer(text)["input_ids"]] if tokenizer.bos_token_id is not None else \
            tokenizer(text)["input_ids"]
        if len(ids) >= max_tokens:
            break
    n = min(len(ids), max_tokens) // max_length
    if n == 0:
        raise ValueError(f"the texts hold fewer than {max_length} tokens: pass more validation text")
    windows = torch.tensor(ids[: n * max_length]).view(n, max_length)
    sparse = [i for i in range(config.num_hidden_layers) if config.is_sparse_layer(i)]
    counts = torch.zeros(len(sparse), config.num_local_experts, dtype=torch.long)
    aux_losses = []
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out = model(input_ids=windows[start : start + batch_size].to(device), output_router_logits=True,
                        use_cache=False)
            if getattr(out, "aux_loss", None) is not None:
                aux_losses.append(float(out.aux_loss))
            for row, logits in enumerate(out.router_logits):
                chosen = logits.float().topk(config.num_experts_per_tok, dim=-1).indices.flatten().cpu()
                counts[row] += torch.bincount(chosen, minlength=config.num_local_experts)
    model.train(was_training)
    shares = counts.double() / counts.sum(dim=1, keepdim=True)
    low = float(shares.min())
    return {
        "expert_load": {str(layer): [round(float(x), 6) for x in shares[row]] for row, layer in enumerate(sparse)},
        "expert_load_balance": float(shares.max()) / low if low > 0 else math.inf,
        "expert_load_tokens": n * max_length,
        **({"eval_aux_loss": sum(aux_losses) / len(aux_losses)} if aux_losses else {}),
    }


def plot_expert_load(load: dict[str, list[float]], path: str | os.PathLike, title: str = "") -> Path:
    """One bar group per sparse block: each expert's share of the routed tokens, with the balanced share dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(load)
    experts = len(load[layers[0]])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(layers)
    for k, layer in enumerate(layers):
        ax.bar([j + k * width for j in range(experts)], load[layer], width=width, label=f"block {layer}")
    ax.axhline(1 / experts, linestyle="--", color="gray", linewidth=1, label="balanced")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(experts)], [str(j) for j in range(experts)])
    ax.set_xlabel("expert")
    ax.set_ylabel("share of routed tokens")
    ax.set_title(title or "expert load on validation text (§6.1)")
    ax.legend(fontsize=7, ncol=min(4, len(layers) + 1))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def expert_load_section(model, tokenizer, dataset, folder: Path, *, text_column: str = "text", max_length: int,
                        max_documents: int | None = None) -> tuple[dict, dict]:
    """For a recipe's end: (metrics, card sections) of the expert load on `dataset`'s validation split, the PNG written
    into `folder`; empty for a dense model."""
    if not getattr(model.config, "num_local_experts", 0):
        return {}, {}
    from .lm import _split_texts

    texts = _split_texts(dataset, "validation", text_column, max_documents)
    result = expert_load(model, tokenizer, texts, max_length=max_length)
    plot_expert_load(result["expert_load"], folder / "expert_load.png")
    worst = max(result["expert_load"].items(), key=lambda item: max(item[1]) / max(min(item[1]), 1e-12))
    text = (f"Share of the top-{model.config.num_experts_per_tok} routing assignments each of the "
            f"{model.config.num_local_experts} experts receives on {result['expert_load_tokens']:,} validation tokens "
            f"(balanced: {1 / model.config.num_local_experts:.3f} each). Balance (max/min over all sparse blocks): "
            f"{result['expert_load_balance']:.2f}; least balanced block {worst[0]}; load-balancing loss "
            f"{result.get('eval_aux_loss', float('nan')):.3f} ({model.config.num_experts_per_tok} when perfectly balanced).\n\n![Expert load](expert_load.png)")
    return result, {"Expert load (§6.1)": text}
