"""``hf-hundredpage prune``: make a language model smaller by pruning (book §6.3, model compression).

Four methods, each on the book's transformer, on any Llama-style `AutoModelForCausalLM` and, where it makes sense, on
the book's Elman RNN:

* ``magnitude`` (unstructured, all three families): the smallest-magnitude weights of the decoder blocks' linear
  layers are set to zero with `torch.nn.utils.prune` (``global_unstructured`` over all of them, or
  ``l1_unstructured`` layer by layer), then made permanent with ``prune.remove``. ``--pattern 2:4`` keeps the 2
  largest of every 4 consecutive input weights of each output row (semi-structured N:M sparsity). The tensors keep
  their shape: the saved file is as large as before, only sparse kernels or compression gain from the zeros.
* ``layers`` (transformer, Llama-style, RNN): removes the K decoder blocks that change the hidden states least on
  calibration text. A block's influence is ``1 - cos(x_in, x_out)`` averaged over calibration tokens (the "angular
  distance" of ShortGPT, Men et al. 2024), computed once on the full model; the K lowest go.
* ``mlp`` (transformer, Llama-style): every MLP keeps the fraction F of its intermediate neurons with the largest
  importance ``mean |activation| x ||down_proj column||`` on calibration text; up/gate/down projections are sliced.
* ``heads`` (transformer, Llama-style): every attention layer keeps the fraction F of its heads with the largest
  importance, the mean norm of a head's contribution ``o_proj(head output)`` on calibration text. With grouped-query
  attention whole KV groups go with their query heads (``--gqa groups``), or every group keeps the same number of
  query heads (``--gqa queries``); ``head_dim`` stays explicit in the config.

The structured methods give a genuinely smaller model whose config describes it: the saved folder loads with
`AutoModelForCausalLM` (``trust_remote_code=True`` for the book's models outside this package), and a model built from
the saved config alone has exactly the pruned model's tensors (checked before saving).

The report (``prune_report.json``, a table on stdout and the model card) compares the model before and after:
parameters, nonzero parameters, bytes of the safetensors weights, bits per byte on the validation text (§2.6) and
greedy generation speed; ``magnitude`` also reports the sparsity measured on the saved weights and, with ``--curve``,
plots bits per byte against sparsity (``sparsity_curve.png``).

```python
>>> from hf_hundredpage.compression import prune_model
>>> report = prune_model("out/model", "out/model-2of3-layers", "layers", remove=1)
```
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..outputs import check_output_dir, save_folder
from ..paths import resolve_model_path


METHODS = ("magnitude", "layers", "mlp", "heads")
SCOPES = ("global", "layer")
GQA_MODES = ("groups", "queries")
REPORT_FILE = "prune_report.json"
CURVE_FILE = "sparsity_curve.png"
# Per-layer list fields of a config, sliced with the blocks when `layers` removes some (e.g. Qwen2's layer_types).
_PER_LAYER_SUFFIX = "layer_types"
_NEEDS = {
    "magnitude": "nn.Linear weights inside a list of decoder blocks (model.layers, h or blocks)",
    "layers": "a stack of decoder blocks (model.layers, h or blocks) and config.num_hidden_layers",
    "mlp": "Llama-style MLPs (mlp.up_proj / mlp.down_proj nn.Linear, optional mlp.gate_proj) and "
    "config.intermediate_size; the book's RNN (hundredpage_rnn) has no MLP: use magnitude or layers",
    "heads": "Llama-style attention (self_attn.q_proj/k_proj/v_proj/o_proj nn.Linear) and config.num_attention_heads"
    "; the book's RNN (hundredpage_rnn) has no attention: use magnitude or layers",
}


# ------------------------------------------------------------------------------------------------- model structure


def decoder_layers(model: nn.Module) -> tuple[nn.Module, str, nn.ModuleList]:
    """``(parent, attribute, blocks)``: the `nn.ModuleList` of decoder blocks of a causal LM (§6.3).

    Looks for ``layers`` (the book's models, Llama, Mistral, Qwen, ...), ``h`` (GPT-2 style) or ``blocks`` on the base
    model, then ``decoder.layers``.
    """
    base = getattr(model, "base_model", model)
    for parent in (base, getattr(base, "decoder", None), model):
        for name in ("layers", "h", "blocks"):
            blocks = getattr(parent, name, None) if parent is not None else None
            if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
                return parent, name, blocks
    raise ValueError(
        f"{type(model).__name__} has no list of decoder blocks: the layers method needs {_NEEDS['layers']}"
    )


def _is_linear(module: Any) -> bool:
    return type(module) is nn.Linear


def _mlp(layer: nn.Module) -> nn.Module | None:
    mlp = getattr(layer, "mlp", None)
    if mlp is None or not (_is_linear(getattr(mlp, "up_proj", None)) and _is_linear(getattr(mlp, "down_proj", None))):
        return None
    gate = getattr(mlp, "gate_proj", None)
    return mlp if gate is None or _is_linear(gate) else None


def _attention(layer: nn.Module) -> nn.Module | None:
    attn = getattr(layer, "self_attn", None)
    if attn is None or not all(_is_linear(getattr(attn, p, None)) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
        return None
    return attn


def _structure_error(model: nn.Module, method: str) -> ValueError:
    return ValueError(
        f"{type(model).__name__} ({getattr(model.config, 'model_type', '?')}) cannot be pruned with "
        f"--method {method}: it needs {_NEEDS[method]}"
    )


def _configs(model: nn.Module) -> list:
    """The model's config and its base model's, once each (they are usually one object)."""
    configs = [model.config]
    base_config = getattr(getattr(model, "base_model", model), "config", None)
    if base_config is not None and base_config is not model.config:
        configs.append(base_config)
    return configs


def _set_config(model: nn.Module, **values) -> None:
    for config in _configs(model):
        for key, value in values.items():
            setattr(config, key, value)


def _unique_parameters(model: nn.Module) -> list[torch.Tensor]:
    return list({id(p): p for p in model.parameters()}.values())


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(parameters, nonzero parameters)`` of `model`, tied tensors counted once."""
    params = _unique_parameters(model)
    return sum(p.numel() for p in params), sum(int(torch.count_nonzero(p)) for p in params)


def check_config_matches(model: nn.Module, trust_remote_code: bool = False) -> None:
    """Raise when a model built from ``model.config`` alone would not have exactly `model`'s tensors (§6.3): the
    pruned shapes must be what the saved config describes, or the folder would not load."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(copy.deepcopy(model.config), trust_remote_code=trust_remote_code)
    expected = {name: tuple(t.shape) for name, t in fresh.state_dict().items()}
    actual = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if expected != actual:
        diff = sorted(
            f"{n}: {actual.get(n)} pruned vs {expected.get(n)} from the config"
            for n in set(expected) | set(actual) if expected.get(n) != actual.get(n)
        )
        raise ValueError(
            f"the config of {type(model).__name__} cannot describe the pruned model ({len(diff)} tensors differ, e.g. "
            f"{diff[0]}): this architecture is not supported by this method"
        )


# ------------------------------------------------------------------------------------------------- calibration


def calibration_batches(
    tokenizer, texts: Iterable[str], num_tokens: int = 8192, seq_len: int = 256, batch_size: int = 8
) -> list[torch.Tensor]:
    """Token id batches of calibration text (§6.3): documents (BOS first when the tokenizer has one) are joined and cut
    into rows of `seq_len` tokens until `num_tokens` tokens; rows of one batch have the same length (no padding)."""
    if num_tokens < 2 or seq_len < 2:
        raise ValueError(
            f"calibration needs at least 2 tokens per row, got num_tokens={num_tokens}, seq_len={seq_len}"
        )
    bos = tokenizer.bos_token_id
    stream: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        stream.extend(([bos] if bos is not None else []) + list(ids))
        if len(stream) >= num_tokens:
            break
    stream = stream[:num_tokens]
    if len(stream) < 2:
        raise ValueError("the calibration text has fewer than 2 tokens: pass a --calibration_dataset with text")
    rows = [stream[i : i + seq_len] for i in range(0, len(stream), seq_len)]
    rows = [row for row in rows if len(row) >= 2]
    full, last = [r for r in rows if len(r) == seq_len], [r for r in rows if len(r) < seq_len]
    batches = [torch.tensor(full[i : i + batch_size]) for i in range(0, len(full), batch_size)]
    return batches + [torch.tensor(last)] if last else batches


def _run_calibration(model: nn.Module, batches: list[torch.Tensor]) -> None:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(input_ids=batch.to(device), use_cache=False)
    finally:
        model.train(was_training)


def _with_hooks(modules_hooks: list[tuple[nn.Module, Callable, str]], run: Callable[[], None]) -> None:
    handles = []
    try:
        for module, hook, kind in modules_hooks:
            if kind == "forward":
                handles.append(module.register_forward_hook(hook, with_kwargs=True))
            else:
                handles.append(module.register_forward_pre_hook(hook))
        run()
    finally:
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------------------------- magnitude


def magnitude_targets(model: nn.Module, include_lm_head: bool = False) -> dict[str, nn.Module]:
    """``{module name: module}`` of the weights `magnitude_prune` prunes: every `nn.Linear` inside the decoder blocks
    (not the embeddings, norms or, unless `include_lm_head`, the output layer)."""
    _, _, blocks = decoder_layers(model)
    block_ids = {id(m) for block in blocks for m in block.modules() if isinstance(m, nn.Linear)}
    targets = {name: m for name, m in model.named_modules() if id(m) in block_ids}
    if include_lm_head:
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        if not isinstance(head, nn.Linear):
            raise ValueError(f"{type(model).__name__} has no nn.Linear output layer for --include_lm_head")
        if embed is not None and head.weight is getattr(embed, "weight", None):
            raise ValueError("--include_lm_head: the output layer is tied to the input embedding; pruning it would "
                             "prune the embedding too: leave --include_lm_head out")
        targets.update({name: m for name, m in model.named_modules() if m is head})
    if not targets:
        raise ValueError(f"{type(model).__name__} has no nn.Linear weights in its decoder blocks to prune")
    return targets


def parse_pattern(pattern: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``: keep N of every M consecutive input weights."""
    try:
        n, m = (int(x) for x in pattern.split(":"))
    except ValueError:
        raise ValueError(f"--pattern must be N:M such as 2:4, got {pattern!r}") from None
    if not 0 < n < m:
        raise ValueError(f"--pattern N:M needs 0 < N < M, got {pattern!r}")
    return n, m


def n_m_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Mask keeping the `n` largest-magnitude weights of every `m` consecutive input weights of each output row."""
    out_features, in_features = weight.shape
    if in_features % m:
        raise ValueError(f"--pattern {n}:{m} needs input widths divisible by {m}; a weight has {in_features}")
    groups = weight.detach().abs().float().reshape(out_features, in_features // m, m)
    mask = torch.zeros_like(groups)
    mask.scatter_(-1, groups.topk(n, dim=-1).indices, 1.0)
    return mask.reshape(out_features, in_features).to(weight.dtype)


def magnitude_prune(
    model: nn.Module, sparsity: float | None = None, *, scope: str = "global", pattern: str | None = None,
    include_lm_head: bool = False,
) -> dict[str, nn.Module]:
    """Zero the smallest-magnitude weights of the decoder blocks' linear layers (§6.3) and make it permanent.

    `scope` ``global`` ranks all those weights together (``prune.global_unstructured``), ``layer`` prunes each weight
    to `sparsity` (``prune.l1_unstructured``); `pattern` ``N:M`` instead keeps N of every M consecutive input weights.
    Returns the pruned modules by name.
    """
    targets = magnitude_targets(model, include_lm_head)
    with torch.no_grad():
        if pattern is not None:
            n, m = parse_pattern(pattern)
            for module in targets.values():
                torch_prune.custom_from_mask(module, "weight", n_m_mask(module.weight, n, m))
        elif scope == "global":
            torch_prune.global_unstructured(
                [(module, "weight") for module in targets.values()], pruning_method=torch_prune.L1Unstructured,
                amount=float(sparsity),
            )
        elif scope == "layer":
            for module in targets.values():
                torch_prune.l1_unstructured(module, "weight", amount=float(sparsity))
        else:
            raise ValueError(f"--scope must be one of {SCOPES}, got {scope!r}")
        for module in targets.values():
            torch_prune.remove(module, "weight")
    return targets


def saved_sparsity(folder: str | os.PathLike, names: Iterable[str] | None = None) -> float:
    """Fraction of zeros in the safetensors weights saved in `folder` (only the tensors `names` when given)."""
    from safetensors import safe_open

    wanted = None if names is None else set(names)
    zeros = total = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                if wanted is None or key in wanted:
                    tensor = f.get_tensor(key)
                    zeros += tensor.numel() - int(torch.count_nonzero(tensor))
                    total += tensor.numel()
    if total == 0:
        raise ValueError(f"no pruned weights found in the safetensors files of {folder}")
    return zeros / total


# ------------------------------------------------------------------------------------------------- layers


def block_influence(model: nn.Module, batches: list[torch.Tensor]) -> list[float]:
    """``1 - cos(block input, block output)`` of every decoder block, averaged over the calibration tokens (§6.3;
    ShortGPT's "angular distance" block influence): near 0 for a block that barely changes the hidden states."""
    _, _, blocks = decoder_layers(model)
    sums, counts = [0.0] * len(blocks), [0] * len(blocks)

    def make_hook(i: int):
        def hook(module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, (tuple, list)) else output
            cos = F.cosine_similarity(x.float(), y.float(), dim=-1)
            sums[i] += float(cos.sum())
            counts[i] += cos.numel()
        return hook

    _with_hooks([(block, make_hook(i), "forward") for i, block in enumerate(blocks)],
                lambda: _run_calibration(model, batches))
    return [1.0 - s / c if c else float("nan") for s, c in zip(sums, counts)]


def remove_layers(model: nn.Module, indices: Iterable[int]) -> nn.Module:
    """Drop the decoder blocks at `indices` (§6.3): the remaining blocks are renumbered (state dict keys, the
    ``layer_idx`` the KV cache is indexed by) and ``config.num_hidden_layers`` and per-layer config lists follow."""
    parent, name, blocks = decoder_layers(model)
    drop = set(indices)
    if any(not 0 <= i < len(blocks) for i in drop):
        raise ValueError(f"layer indices {sorted(drop)} out of range for {len(blocks)} blocks")
    if len(drop) >= len(blocks):
        raise ValueError(f"cannot remove all {len(blocks)} blocks: a model needs at least one")
    kept = nn.ModuleList([block for i, block in enumerate(blocks) if i not in drop])
    for new_idx, block in enumerate(kept):
        for module in block.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_idx
    setattr(parent, name, kept)
    old = len(blocks)
    for config in _configs(model):
        for key, value in list(config.to_dict().items()):
            if key.endswith(_PER_LAYER_SUFFIX) and isinstance(value, list) and len(value) == old:
                setattr(config, key, [v for i, v in enumerate(value) if i not in drop])
        config.num_hidden_layers = len(kept)
    return model


# ------------------------------------------------------------------------------------------------- mlp


def mlp_importance(model: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per block, the importance of each intermediate MLP neuron (§6.3): its mean absolute activation (the input of
    ``down_proj``) on the calibration tokens times the norm of its ``down_proj`` column."""
    _, _, blocks = decoder_layers(model)
    mlps = [_mlp(block) for block in blocks]
    if any(m is None for m in mlps):
        raise _structure_error(model, "mlp")
    sums = [torch.zeros(m.down_proj.in_features, dtype=torch.float64) for m in mlps]
    counts = [0] * len(mlps)

    def make_hook(i: int):
        def hook(module, args):
            x = args[0].detach().float()
            sums[i] += x.abs().reshape(-1, x.shape[-1]).sum(0).double().cpu()
            counts[i] += x.numel() // x.shape[-1]
        return hook

    _with_hooks([(m.down_proj, make_hook(i), "pre") for i, m in enumerate(mlps)],
                lambda: _run_calibration(model, batches))
    return [
        (s / max(c, 1)).float() * m.down_proj.weight.detach().float().norm(dim=0).cpu()
        for s, c, m in zip(sums, counts, mlps)
    ]


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep rows (`dim` 0, outputs, with their bias) or columns (`dim` 1, inputs) `index` of `linear`, in place."""
    index = index.to(linear.weight.device)
    linear.weight = nn.Parameter(linear.weight.detach().index_select(dim, index).clone(),
                                 requires_grad=linear.weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.detach()[index].clone(), requires_grad=linear.bias.requires_grad)
        linear.out_features = len(index)
    else:
        linear.in_features = len(index)


def _kept_count(keep: float, total: int) -> int:
    return min(total, max(1, round(keep * total)))


def prune_mlp(model: nn.Module, keep: float, importance: list[torch.Tensor]) -> list[list[int]]:
    """Narrow every MLP to ``round(keep * intermediate_size)`` neurons, the most important ones (§6.3): rows of
    ``up_proj`` / ``gate_proj`` (and their biases) and columns of ``down_proj``. Returns the kept neurons per block."""
    _, _, blocks = decoder_layers(model)
    mlps = [_mlp(block) for block in blocks]
    if any(m is None for m in mlps) or not isinstance(getattr(model.config, "intermediate_size", None), int):
        raise _structure_error(model, "mlp")
    width = _kept_count(keep, model.config.intermediate_size)
    kept_all = []
    for mlp, scores in zip(mlps, importance):
        kept = scores.topk(width).indices.sort().values
        for name in ("gate_proj", "up_proj"):
            if getattr(mlp, name, None) is not None:
                _slice_linear(getattr(mlp, name), kept, 0)
        _slice_linear(mlp.down_proj, kept, 1)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = width
        kept_all.append(kept.tolist())
    _set_config(model, intermediate_size=width)
    return kept_all


# ------------------------------------------------------------------------------------------------- heads


def _head_layout(model: nn.Module, attn: nn.Module) -> tuple[int, int, int]:
    """``(head_dim, query heads, key/value heads)`` of an attention module."""
    head_dim = getattr(attn, "head_dim", None) or getattr(model.config, "head_dim", None)
    if not head_dim:
        head_dim = model.config.hidden_size // model.config.num_attention_heads
    return int(head_dim), attn.q_proj.out_features // head_dim, attn.k_proj.out_features // head_dim


def head_importance(model: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per block, the importance of each query head (§6.3): the mean norm over calibration tokens of the head's
    contribution to the residual stream, ``o_proj`` applied to that head's output alone."""
    _, _, blocks = decoder_layers(model)
    attns = [_attention(block) for block in blocks]
    if any(a is None for a in attns):
        raise _structure_error(model, "heads")
    layouts = [_head_layout(model, a) for a in attns]
    sums = [torch.zeros(n_heads, dtype=torch.float64) for _, n_heads, _ in layouts]
    counts = [0] * len(attns)

    def make_hook(i: int):
        head_dim, n_heads, _ = layouts[i]
        weight = attns[i].o_proj.weight

        def hook(module, args):
            x = args[0].detach()
            x = x.reshape(-1, n_heads, head_dim)
            for h in range(n_heads):
                part = x[:, h].float() @ weight[:, h * head_dim : (h + 1) * head_dim].detach().float().t()
                sums[i][h] += float(part.norm(dim=-1).sum())
            counts[i] += x.shape[0]
        return hook

    _with_hooks([(a.o_proj, make_hook(i), "pre") for i, a in enumerate(attns)],
                lambda: _run_calibration(model, batches))
    return [(s / max(c, 1)).float() for s, c in zip(sums, counts)]


def _config_accepts(model: nn.Module, **values) -> str | None:
    """None when `model.config` with `values` passes its own validation, else the validation message."""
    config = copy.deepcopy(model.config)
    try:
        for key, value in values.items():
            setattr(config, key, value)
        if hasattr(config, "validate"):
            config.validate()
    except Exception as err:  # noqa: BLE001  (strict dataclass validation errors are not ValueErrors)
        return " ".join(str(getattr(err, "__cause__", None) or err).split())
    return None


def plan_heads(model: nn.Module, keep: float, gqa: str = "groups") -> tuple[int, int]:
    """``(query heads, key/value heads)`` per layer after keeping `keep` of the heads (§6.3).

    ``groups`` keeps whole KV groups with their query heads (for plain multi-head attention every head is its own
    group); ``queries`` keeps every KV head and the same number of query heads in each group. A count that the config
    class refuses (Llama requires ``hidden_size % num_attention_heads == 0`` even with an explicit ``head_dim``) is
    an error that lists the ``keep`` values it accepts.
    """
    if gqa not in GQA_MODES:
        raise ValueError(f"--gqa must be one of {GQA_MODES}, got {gqa!r}")
    n_heads, n_kv = model.config.num_attention_heads, getattr(model.config, "num_key_value_heads", None)
    n_kv = n_kv or n_heads
    group = n_heads // n_kv
    if gqa == "groups" or group == 1:
        units, target = n_kv, _kept_count(keep, n_kv)
        layout = lambda k: (k * group, k)  # noqa: E731
    else:
        units, target = group, _kept_count(keep, group)
        layout = lambda k: (n_kv * k, n_kv)  # noqa: E731
    head_dim = _head_layout(model, _attention(decoder_layers(model)[2][0]))[0]

    def refusal(k: int) -> str | None:
        q, kv = layout(k)
        return _config_accepts(model, num_attention_heads=q, num_key_value_heads=kv, head_dim=head_dim)

    error = refusal(target)
    if error is None:
        return layout(target)
    valid = [f"{k / units:g}" for k in range(1, units + 1) if k == units or refusal(k) is None]
    q, kv = layout(target)
    raise ValueError(
        f"--keep {keep:g} means {q} query / {kv} key-value heads per layer, which {type(model.config).__name__} "
        f"refuses ({error}); valid --keep values here: {', '.join(valid)}"
    )


def prune_heads(
    model: nn.Module, keep: float, importance: list[torch.Tensor], gqa: str = "groups"
) -> list[list[int]]:
    """Keep the most important attention heads of every layer (§6.3): rows of ``q_proj`` (query heads) and
    ``k_proj`` / ``v_proj`` (their KV heads), columns of ``o_proj``; ``num_attention_heads``,
    ``num_key_value_heads`` and an explicit ``head_dim`` go in the config. Returns the kept query heads per block."""
    _, _, blocks = decoder_layers(model)
    attns = [_attention(block) for block in blocks]
    if any(a is None for a in attns) or not isinstance(getattr(model.config, "num_attention_heads", None), int):
        raise _structure_error(model, "heads")
    new_heads, new_kv = plan_heads(model, keep, gqa)
    kept_all = []
    for attn, scores in zip(attns, importance):
        head_dim, n_heads, n_kv = _head_layout(model, attn)
        group = n_heads // n_kv
        if new_kv < n_kv:  # whole groups (each KV head with its query heads)
            group_scores = scores.reshape(n_kv, group).sum(-1)
            kv_kept = group_scores.topk(new_kv).indices.sort().values
            q_kept = (kv_kept[:, None] * group + torch.arange(group)).flatten()
        else:  # every KV head, the same number of query heads per group
            per_group = new_heads // n_kv
            best = scores.reshape(n_kv, group).topk(per_group, dim=-1).indices.sort(dim=-1).values
            q_kept = (torch.arange(n_kv)[:, None] * group + best).flatten()
            kv_kept = torch.arange(n_kv)

        def rows(heads: torch.Tensor) -> torch.Tensor:
            return (heads[:, None] * head_dim + torch.arange(head_dim)).flatten()

        _slice_linear(attn.q_proj, rows(q_kept), 0)
        _slice_linear(attn.k_proj, rows(kv_kept), 0)
        _slice_linear(attn.v_proj, rows(kv_kept), 0)
        _slice_linear(attn.o_proj, rows(q_kept), 1)
        attn.head_dim = head_dim
        if hasattr(attn, "num_key_value_groups"):
            attn.num_key_value_groups = new_heads // new_kv
        for name, value in (("num_heads", new_heads), ("num_attention_heads", new_heads),
                            ("num_key_value_heads", new_kv)):
            if isinstance(getattr(attn, name, None), int):
                setattr(attn, name, value)
        kept_all.append(q_kept.tolist())
    _set_config(model, num_attention_heads=new_heads, num_key_value_heads=new_kv, head_dim=head_dim)
    return kept_all


# ------------------------------------------------------------------------------------------------- measurements


def _eval_window(model: nn.Module, tokenizer) -> int | None:
    """`evaluate_causal_lm`'s window: the model's maximum, else the tokenizer's, else 1024 tokens (the RNN)."""
    if getattr(model.config, "max_position_embeddings", None):
        return None
    limit = getattr(tokenizer, "model_max_length", None)
    return None if limit and limit < 1_000_000 else 1024


def bits_per_byte_of(model: nn.Module, tokenizer, texts: list[str]) -> dict | None:
    """`evaluate_causal_lm` on `texts` (None when there are none)."""
    from ..evaluation.lm import evaluate_causal_lm

    if not texts:
        return None
    return evaluate_causal_lm(model, tokenizer, texts, max_length=_eval_window(model, tokenizer))


def generation_speed(model: nn.Module, tokenizer, prompt_ids: list[int], new_tokens: int = 32) -> float | None:
    """New tokens per second of greedy generation (KV cache on) from `prompt_ids`: the median of 3 timed runs, after
    one short warm-up."""
    if new_tokens < 1:
        return None
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = {"attention_mask": torch.ones_like(ids), "do_sample": False, "pad_token_id": pad}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kwargs)
            speeds = []
            for _ in range(3):
                start = time.perf_counter()
                out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
                speeds.append((out.shape[1] - ids.shape[1]) / max(time.perf_counter() - start, 1e-9))
    finally:
        model.train(was_training)
    return sorted(speeds)[1]


def safetensors_bytes(folder: str | os.PathLike) -> int | None:
    """Total size of the ``*.safetensors`` files of a local model folder (None when it has none)."""
    files = list(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    return sum(f.stat().st_size for f in files) if files else None


def _measure(model, tokenizer, eval_texts, prompt_ids, generate_tokens) -> dict[str, Any]:
    params, nonzero = count_parameters(model)
    evaluation = bits_per_byte_of(model, tokenizer, eval_texts)
    return {
        "parameters": params,
        "nonzero_parameters": nonzero,
        "bits_per_byte": evaluation["bits_per_byte"] if evaluation else None,
        "perplexity": evaluation["perplexity"] if evaluation else None,
        "tokens_per_second": generation_speed(model, tokenizer, prompt_ids, generate_tokens),
    }


def format_report_table(report: dict[str, Any]) -> str:
    """The before/after table of a prune report."""
    rows = [("parameters", "{:,}"), ("nonzero_parameters", "{:,}"), ("safetensors_bytes", "{:,}"),
            ("bits_per_byte", "{:.4f}"), ("perplexity", "{:.2f}"), ("tokens_per_second", "{:.1f}")]
    cells = [["", "before", "after", "after/before"]]
    for key, fmt in rows:
        before, after = report["before"].get(key), report["after"].get(key)
        ratio = f"{after / before:.3f}" if before and after is not None else "–"
        cells.append([key.replace("_", " "), "–" if before is None else fmt.format(before),
                      "–" if after is None else fmt.format(after), ratio])
    if report.get("sparsity") is not None:
        cells.append(["sparsity (saved)", "", f"{report['sparsity']['pruned_weights']:.4f}", ""])
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_sparsity_curve(points: list[dict[str, float]], path: str | os.PathLike, title: str) -> Path:
    """Bits per byte against sparsity (§6.3), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot([p["sparsity"] for p in points], [p["bits_per_byte"] for p in points], "o-", linewidth=1.5)
    ax.set_xlabel("sparsity of the decoder blocks' linear weights")
    ax.set_ylabel("bits per byte (validation)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------- the command


def _check_fraction(name: str, value, high_closed: bool = False) -> float:
    ok = value is not None and not (isinstance(value, float) and math.isnan(value))
    ok = ok and 0 < value and (value <= 1 if high_closed else value < 1)
    if not ok:
        interval = "(0, 1]" if high_closed else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return float(value)


def validate_arguments(
    method: str, *, sparsity=None, scope="global", pattern=None, curve=None, remove=None, keep=None, gqa="groups",
    calibration_tokens: int = 8192, calibration_seq_len: int = 256, eval_max_documents: int | None = 100,
    generate_tokens: int = 32, include_lm_head: bool = False,
) -> None:
    """One ValueError for any bad combination of arguments, before anything is loaded or written."""
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    given = {"--sparsity": sparsity is not None, "--pattern": pattern is not None, "--curve": bool(curve),
             "--include_lm_head": include_lm_head, "--remove": remove is not None, "--keep": keep is not None}
    allowed = {"magnitude": {"--sparsity", "--pattern", "--curve", "--include_lm_head"}, "layers": {"--remove"},
               "mlp": {"--keep"}, "heads": {"--keep"}}[method]
    stray = [flag for flag, is_given in given.items() if is_given and flag not in allowed]
    if stray:
        raise ValueError(
            f"{', '.join(stray)} does not apply to --method {method} (it takes {', '.join(sorted(allowed))})"
        )
    if method == "magnitude":
        if pattern is not None:
            n, m = parse_pattern(pattern)
            if sparsity is not None and abs(sparsity - (1 - n / m)) > 1e-9:
                raise ValueError(f"--pattern {pattern} fixes the sparsity at {1 - n / m:g}: leave --sparsity out")
            if curve:
                raise ValueError("--curve varies an unstructured sparsity: leave --pattern out")
        elif sparsity is None:
            raise ValueError("--method magnitude needs --sparsity S in (0, 1) (or --pattern 2:4)")
        else:
            _check_fraction("--sparsity", sparsity)
        if scope not in SCOPES:
            raise ValueError(f"--scope must be one of {SCOPES}, got {scope!r}")
        for value in curve or []:
            _check_fraction("every --curve sparsity", value)
        if curve and not eval_max_documents:
            raise ValueError("--curve needs the validation text: leave --eval_max_documents at a positive number")
    elif method == "layers":
        if remove is None or isinstance(remove, bool) or not isinstance(remove, int) or remove < 0:
            raise ValueError(f"--method layers needs --remove K, a non-negative integer, got {remove}")
    else:
        _check_fraction("--keep", keep, high_closed=True)
        if gqa not in GQA_MODES:
            raise ValueError(f"--gqa must be one of {GQA_MODES}, got {gqa!r}")
    if calibration_tokens < 2 or calibration_seq_len < 2:
        raise ValueError("--calibration_tokens and --calibration_seq_len must be at least 2")
    if eval_max_documents is not None and eval_max_documents < 0:
        raise ValueError(f"--eval_max_documents must be >= 0 (0 skips the evaluation), got {eval_max_documents}")
    if generate_tokens < 0:
        raise ValueError(f"--generate_tokens must be >= 0 (0 skips the speed test), got {generate_tokens}")


def _check_model(model: nn.Module, method: str, remove: int | None) -> None:
    """The structure `method` needs, before any calibration or output."""
    try:
        _, _, blocks = decoder_layers(model)
    except ValueError:
        raise _structure_error(model, method) from None
    if method == "magnitude" and not any(isinstance(m, nn.Linear) for b in blocks for m in b.modules()):
        raise _structure_error(model, method)
    if method == "layers":
        n = getattr(model.config, "num_hidden_layers", None)
        if n != len(blocks):
            raise _structure_error(model, method)
        if remove >= n:
            raise ValueError(f"--remove {remove} must be smaller than the number of blocks ({n}): a model needs at "
                             "least one block")
    elif method == "mlp" and (any(_mlp(b) is None for b in blocks)
                              or not isinstance(getattr(model.config, "intermediate_size", None), int)):
        raise _structure_error(model, method)
    elif method == "heads" and (any(_attention(b) is None for b in blocks)
                                or not isinstance(getattr(model.config, "num_attention_heads", None), int)):
        raise _structure_error(model, method)


def _texts(dataset, text_column: str, split: str, limit: int | None) -> list[str]:
    data = dataset[split]
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    return list(data[text_column])


def _write_card(folder: Path, output_dir: Path, model_dir: str, model, report: dict) -> None:
    from ..hub import model_family, write_model_card

    lines = ["| | before | after |", "|---|---:|---:|"]
    for key in ("parameters", "nonzero_parameters", "safetensors_bytes", "bits_per_byte", "tokens_per_second"):
        b, a = report["before"].get(key), report["after"].get(key)
        show = (lambda v: "–" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.4g}")  # noqa: E731
        lines.append(f"| {key.replace('_', ' ')} | {show(b)} | {show(a)} |")
    details = ", ".join(f"`{k}={v}`" for k, v in report["arguments"].items() if v is not None)
    calibration = report.get("calibration_dataset")
    calibration = f" Calibration: {report['calibration_tokens']:,} tokens of `{calibration}`." if calibration else ""
    body = (f"Pruned from `{model_dir}` with `hf-hundredpage prune --method {report['method']}` (book §6.3: model "
            f"compression), {details}.{calibration}\n\n" + "\n".join(lines))
    if report.get("sparsity") is not None:
        sparsity = report["sparsity"]["pruned_weights"]
        body += f"\n\nSparsity of the pruned weights, measured on the saved file: {sparsity:.4f}."
    if (folder / CURVE_FILE).is_file():
        body += f"\n\n![bits per byte against sparsity]({CURVE_FILE})"
    before, after = report["before"], report["after"]
    write_model_card(
        folder, model_name=output_dir.name, task="prune", model_family=model_family(model.config),
        base_model=model_dir,
        eval_dataset=report["eval_dataset"], repo_id=str(output_dir),
        metrics={"eval_bits_per_byte": after["bits_per_byte"], "eval_perplexity": after["perplexity"]}
        if after["bits_per_byte"] is not None else None,
        baseline_metrics={"bits_per_byte": before["bits_per_byte"], "perplexity": before["perplexity"]}
        if before["bits_per_byte"] is not None else None,
        baseline_name="unpruned model",
        baseline_description="The baseline is the model before pruning, scored on the same text.",
        extra_sections={"Pruning": body},
    )


def prune_model(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    method: str,
    *,
    sparsity: float | None = None,
    scope: str = "global",
    pattern: str | None = None,
    curve: list[float] | None = None,
    include_lm_head: bool = False,
    remove: int | None = None,
    keep: float | None = None,
    gqa: str = "groups",
    calibration_dataset: str | None = None,
    dataset_config: str | None = None,
    text_column: str = "text",
    calibration_texts: list[str] | None = None,
    eval_texts: list[str] | None = None,
    calibration_tokens: int = 8192,
    calibration_seq_len: int = 256,
    eval_max_documents: int | None = 100,
    generate_tokens: int = 32,
    overwrite_output_dir: bool = False,
    trust_remote_code: bool = False,
    print_fn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Prune the causal LM in `model_dir` with `method` (module docstring; book §6.3) and save it with its tokenizer,
    ``prune_report.json`` and a model card in `output_dir`. Every argument and the model's structure are checked
    before anything is written; a failure leaves no output folder behind.

    Args:
        model_dir: a model folder (or Hub id) loadable with `AutoModelForCausalLM` and `AutoTokenizer`.
        output_dir: where the pruned model goes; must be empty or absent unless `overwrite_output_dir`.
        method: ``magnitude``, ``layers``, ``mlp`` or ``heads``.
        sparsity, scope, pattern, curve, include_lm_head: ``magnitude``'s fraction of zeros in (0, 1), ``global`` or
            ``layer`` ranking, ``N:M`` pattern instead of a sparsity, sparsities to plot bits per byte at, and
            whether the (untied) output layer is pruned too.
        remove: ``layers``: how many blocks to remove (0 leaves the model unchanged).
        keep: ``mlp`` / ``heads``: the fraction in (0, 1] of neurons / heads kept.
        gqa: ``heads`` with grouped-query attention: prune whole KV ``groups`` or ``queries`` within each group.
        calibration_dataset, dataset_config, text_column: the text (`load_text_dataset`): calibration on ``train``,
            evaluation on ``validation``; default the embedded corpus.
        calibration_texts, eval_texts: the texts themselves, instead of a dataset.
        calibration_tokens, calibration_seq_len: how many calibration tokens, in rows of how many tokens.
        eval_max_documents: validation documents for bits per byte (0: no evaluation; None: all).
        generate_tokens: new tokens of the greedy generation speed test (0: none).
        trust_remote_code: allow the model folder's own code.
        print_fn: where the before/after table goes (default `print`).

    Returns:
        The report (also in ``prune_report.json``).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..data import EMBEDDED_CORPUS

    print_fn = print_fn or print
    validate_arguments(
        method, sparsity=sparsity, scope=scope, pattern=pattern, curve=curve, remove=remove, keep=keep, gqa=gqa,
        calibration_tokens=calibration_tokens, calibration_seq_len=calibration_seq_len,
        eval_max_documents=eval_max_documents, generate_tokens=generate_tokens, include_lm_head=include_lm_head,
    )
    output_dir = Path(output_dir).expanduser()
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)
    model_path = resolve_model_path(os.fspath(model_dir))
    if Path(model_path).is_dir() and output_dir.resolve() == Path(model_path).resolve():
        raise ValueError(f"OUT {output_dir} is the model folder: pass another folder for the pruned model")

    # The structure is checked on a weightless (meta) copy first: a bad request fails before any weight is read.
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    _check_model(skeleton, method, remove)
    if include_lm_head:
        magnitude_targets(skeleton, include_lm_head=True)
    if method == "heads":
        plan_heads(skeleton, keep, gqa)
    del skeleton
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ValueError(f"{model_dir} has no loadable tokenizer ({type(err).__name__}): pruning needs one for its "
                         "calibration and evaluation text") from None

    dataset = calibration_dataset or EMBEDDED_CORPUS
    texts_given, eval_source = calibration_texts is not None, "eval_texts" if eval_texts is not None else dataset
    need_calibration = calibration_texts is None and method != "magnitude"
    if need_calibration or (eval_texts is None and eval_max_documents != 0):
        from ..data import load_text_dataset

        data = load_text_dataset(dataset, dataset_config, text_column=text_column)
        if need_calibration:
            calibration_texts = _texts(data, text_column, "train", None)
        if eval_texts is None and eval_max_documents != 0:
            eval_texts = _texts(data, text_column, "validation", eval_max_documents)
    eval_texts = [] if eval_max_documents == 0 else list(eval_texts or [])[:eval_max_documents]
    prompt_source = (eval_texts or calibration_texts or ["The"])[0]
    prompt_ids = tokenizer(prompt_source, add_special_tokens=False)["input_ids"][:8]
    if tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id, *prompt_ids][:8]
    if not prompt_ids:
        raise ValueError("the evaluation text gives no token for the generation prompt: pass text")

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto", trust_remote_code=trust_remote_code)
    model.eval()

    before = _measure(model, tokenizer, eval_texts, prompt_ids, generate_tokens)
    before["safetensors_bytes"] = safetensors_bytes(model_path)
    report: dict[str, Any] = {
        "method": method,
        "model": os.fspath(model_dir),
        "arguments": {"sparsity": sparsity, "scope": scope if method == "magnitude" else None, "pattern": pattern,
                      "remove": remove, "keep": keep, "gqa": gqa if method == "heads" else None},
        "eval_dataset": eval_source if eval_texts else None,
        "eval_documents": len(eval_texts),
        "calibration_dataset": None if method == "magnitude" else "calibration_texts" if texts_given else dataset,
    }

    seq_len = min(calibration_seq_len, getattr(model.config, "max_position_embeddings", None) or calibration_seq_len)
    batches = [] if method == "magnitude" else calibration_batches(tokenizer, calibration_texts, calibration_tokens,
                                                                    seq_len)
    report["calibration_tokens"] = sum(b.numel() for b in batches)

    curve_points = None
    if method == "magnitude":
        if curve:
            curve_points = [{"sparsity": 0.0, "bits_per_byte": before["bits_per_byte"]}]
            for s in sorted(set(curve) - {sparsity}):  # the saved model is the point at `sparsity`
                trial = copy.deepcopy(model)
                magnitude_prune(trial, s, scope=scope, include_lm_head=include_lm_head)
                curve_points.append({"sparsity": s, "bits_per_byte": bits_per_byte_of(trial, tokenizer,
                                                                                      eval_texts)["bits_per_byte"]})
                del trial
            report["curve"] = curve_points
        targets = magnitude_prune(model, sparsity, scope=scope, pattern=pattern, include_lm_head=include_lm_head)
        pruned_names = [f"{name}.weight" for name in targets]
    elif method == "layers":
        influence = block_influence(model, batches)
        removed = sorted(sorted(range(len(influence)), key=lambda i: (influence[i], -i))[:remove])
        remove_layers(model, removed)
        report.update(block_influence=influence, removed_layers=removed)
    elif method == "mlp":
        old = model.config.intermediate_size
        kept = prune_mlp(model, keep, mlp_importance(model, batches))
        report.update(intermediate_size={"before": old, "after": model.config.intermediate_size}, kept_neurons=kept)
    else:
        old = {"num_attention_heads": model.config.num_attention_heads,
               "num_key_value_heads": getattr(model.config, "num_key_value_heads", None)}
        kept = prune_heads(model, keep, head_importance(model, batches), gqa)
        report.update(heads={"before": old, "after": {"num_attention_heads": model.config.num_attention_heads,
                                                      "num_key_value_heads": model.config.num_key_value_heads,
                                                      "head_dim": model.config.head_dim}}, kept_heads=kept)
    if method != "magnitude":
        check_config_matches(model, trust_remote_code)

    after = _measure(model, tokenizer, eval_texts, prompt_ids, generate_tokens)
    report["before"], report["after"] = before, after
    if curve_points is not None and after["bits_per_byte"] is not None:
        curve_points.append({"sparsity": float(sparsity), "bits_per_byte": after["bits_per_byte"]})
        curve_points.sort(key=lambda p: p["sparsity"])
    model.config._name_or_path = str(output_dir)

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        after["safetensors_bytes"] = safetensors_bytes(folder)
        if method == "magnitude":
            report["sparsity"] = {"pruned_weights": saved_sparsity(folder, pruned_names),
                                  "all_weights": saved_sparsity(folder)}
        if curve_points is not None:
            plot_sparsity_curve(curve_points, folder / CURVE_FILE, f"magnitude pruning ({scope}) of {output_dir.name}")
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        _write_card(folder, output_dir, os.fspath(model_dir), model, report)

    save_folder(output_dir, save)
    print_fn(format_report_table(report))
    return report


def _float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.1,0.5,0.9, got {text!r}"
        ) from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage prune``."""
    parser.add_argument("model_dir", metavar="MODEL", help="model folder (AutoModelForCausalLM + tokenizer) or Hub id")
    parser.add_argument("output_dir", metavar="OUT", help="where to save the pruned model and prune_report.json")
    parser.add_argument(
        "--method", required=True, choices=METHODS,
        help="magnitude: zero the smallest weights (transformer, RNN, Llama-style); layers: remove the least "
        "influential blocks (transformer, RNN, Llama-style); mlp: narrow the MLPs; heads: drop attention heads "
        "(mlp and heads: transformer and Llama-style only, the RNN has neither)",
    )
    group = parser.add_argument_group("magnitude")
    group.add_argument("--sparsity", type=float, default=None, help="fraction of block weights set to zero, in (0, 1)")
    group.add_argument("--scope", default="global", choices=SCOPES, help="rank weights over all blocks or per layer")
    group.add_argument("--pattern", default=None, help="N:M semi-structured sparsity instead, e.g. 2:4")
    group.add_argument("--curve", type=_float_list, default=None,
                       help="also plot bits per byte at these sparsities (e.g. 0.1,0.3,0.5,0.7,0.9): "
                       "sparsity_curve.png")
    group.add_argument("--include_lm_head", action="store_true", help="prune the (untied) output layer too")
    group = parser.add_argument_group("layers")
    group.add_argument("--remove", type=int, default=None, help="number of decoder blocks to remove")
    group = parser.add_argument_group("mlp / heads")
    group.add_argument("--keep", type=float, default=None,
                       help="fraction of MLP neurons / attention heads kept, in (0, 1]")
    group.add_argument("--gqa", default="groups", choices=GQA_MODES,
                       help="heads with grouped-query attention: drop whole KV groups (default) or query heads "
                       "in every group")
    group = parser.add_argument_group("data")
    group.add_argument("--calibration_dataset", default=None,
                       help="text dataset: train split for calibration, validation for bits per byte "
                       "(default: the embedded corpus)")
    group.add_argument("--dataset_config", default=None, help="dataset configuration name, if it has several")
    group.add_argument("--text_column", default="text", help="column holding the text (default: text)")
    group.add_argument("--calibration_tokens", type=int, default=8192, help="calibration tokens (default: 8192)")
    group.add_argument("--calibration_seq_len", type=int, default=256,
                       help="tokens per calibration row (default: 256)")
    group.add_argument("--eval_max_documents", type=int, default=100,
                       help="validation documents for bits per byte (default: 100; 0 skips the evaluation)")
    group.add_argument("--generate_tokens", type=int, default=32,
                       help="new tokens of the greedy generation speed test (default: 32; 0 skips it)")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the model folder's own code")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage prune``."""
    prune_model(
        args.model_dir, args.output_dir, args.method, sparsity=args.sparsity, scope=args.scope, pattern=args.pattern,
        curve=args.curve, include_lm_head=args.include_lm_head, remove=args.remove, keep=args.keep, gqa=args.gqa,
        calibration_dataset=args.calibration_dataset, dataset_config=args.dataset_config,
        text_column=args.text_column, calibration_tokens=args.calibration_tokens,
        calibration_seq_len=args.calibration_seq_len, eval_max_documents=args.eval_max_documents,
        generate_tokens=args.generate_tokens, overwrite_output_dir=args.overwrite_output_dir,
        trust_remote_code=args.trust_remote_code,
    )
    print(f"Saved the pruned model to {args.output_dir} ({REPORT_FILE}, README.md)")
    return 0
