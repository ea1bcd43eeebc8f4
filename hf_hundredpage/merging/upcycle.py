"""``hf-hundredpage upcycle DENSE OUT``: sparse upcycling (book §6.1) — a trained dense transformer becomes a mixture of
experts whose experts start as copies of each MLP.

Every sparse block's experts are copies of that block's MLP and its router (``mlp.gate``) starts small (normal,
std `router_std`): whatever the router picks, the top-k weights are renormalised to sum to one over identical experts,
so right after upcycling the MoE computes the dense model's function (its logits equal the dense ones within float
rounding; tested). Pretraining or SFT then continues from OUT and the experts drift apart.

``--experts_from A B ...`` builds the experts from several finetuned dense models of the same base instead (one
expert per model, as mergekit-moe does): expert j of every sparse block is model j's MLP of that block, everything
else (embeddings, attention, norms, output layer) is DENSE's. With ``--expert_prompts`` (one text per expert, saying
what it is good at) each block's router row j is the mean input of that block's MLP over expert j's prompt, run
through DENSE (mergekit-moe's "hidden" gate mode), so tokens like the prompt go to its expert; otherwise the router
starts small as above.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from ..outputs import check_output_dir, save_folder
from ..paths import resolve_model_path


def _check_dense(config, name: str) -> None:
    if config.model_type != "hundredpage_transformer":
        raise ValueError(
            f"{name} is a {config.model_type} model: upcycling copies the MLPs of the book's transformer's blocks "
            "(the RNN has no MLP)" if config.model_type == "hundredpage_rnn" else
            f"{name} is a {config.model_type} model: upcycle the book's transformer (hundredpage_transformer)"
        )
    if getattr(config, "num_local_experts", 0):
        raise ValueError(f"{name} is already a mixture of experts ({config.num_local_experts} experts): pass a dense model")


def upcycled_config(dense_config, num_local_experts: int, num_experts_per_tok: int, **moe: Any):
    """The MoE config of a dense config: the same architecture with `num_local_experts` experts per sparse block."""
    if num_local_experts < 2:
        raise ValueError(f"--num_local_experts must be at least 2 (an MoE of one expert is the dense model), got {num_local_experts}")
    values = dense_config.to_dict()
    for key in ("auto_map", "architectures", "transformers_version", "_name_or_path", "model_type", "dtype"):
        values.pop(key, None)
    values.update(num_local_experts=num_local_experts, num_experts_per_tok=num_experts_per_tok, **moe)
    from huggingface_hub.errors import StrictDataclassClassValidationError

    try:  # the config's own checks (top-k within the experts, some block sparse), one line each
        return type(dense_config)(**values)
    except StrictDataclassClassValidationError as err:
        raise ValueError(str(err.__cause__ or err).strip()) from None


def _mlp_inputs(model, tokenizer, prompt: str) -> list[torch.Tensor]:
    """Mean over the prompt's tokens of each block's MLP input (the post-attention norm's output)."""
    captured: dict[int, torch.Tensor] = {}
    hooks = [layer.post_attention_layernorm.register_forward_hook(
        lambda module, args, output, i=i: captured.__setitem__(i, output[0].mean(dim=0)))
        for i, layer in enumerate(model.model.layers)]
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        for hook in hooks:
            hook.remove()
    return [captured[i] for i in range(len(model.model.layers))]


def upcycle(
    dense: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    num_local_experts: int = 8,
    num_experts_per_tok: int = 2,
    experts_from: list[str] | None = None,
    expert_prompts: list[str] | None = None,
    router_std: float = 0.02,
    decoder_sparse_step: int = 1,
    router_aux_loss_coef: float = 0.001,
    seed: int = 0,
    overwrite_output_dir: bool = False,
) -> dict[str, Any]:
    """Upcycle the dense transformer `dense` into a mixture of experts saved in `output_dir` (module docstring).

    Returns:
        ``{"num_parameters", "dense_num_parameters", "sparse_layers", "num_local_experts", "num_experts_per_tok"}``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from .. import models  # noqa: F401  (registers the book's models with the Auto classes)

    dense_path = resolve_model_path(os.fspath(dense))
    dense_config = AutoConfig.from_pretrained(dense_path)
    _check_dense(dense_config, os.fspath(dense))
    sources = [resolve_model_path(os.fspath(p)) for p in experts_from or []]
    if experts_from:
        num_local_experts = len(sources)
        for path, name in zip(sources, experts_from):
            config = AutoConfig.from_pretrained(path)
            _check_dense(config, name)
            for key in ("hidden_size", "num_hidden_layers", "intermediate_size", "gated_mlp", "mlp_bias", "vocab_size"):
                if getattr(config, key, None) != getattr(dense_config, key, None):
                    raise ValueError(f"{name} differs from {dense} in {key}: experts must come from models of one base")
    if expert_prompts is not None and len(expert_prompts) != num_local_experts:
        raise ValueError(f"--expert_prompts gives {len(expert_prompts)} texts for {num_local_experts} experts: one per expert")
    if router_std < 0:
        raise ValueError(f"--router_std must be 0 or more, got {router_std}")
    config = upcycled_config(dense_config, num_local_experts, num_experts_per_tok,
                             decoder_sparse_step=decoder_sparse_step, router_aux_loss_coef=router_aux_loss_coef)
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)

    dense_model = AutoModelForCausalLM.from_pretrained(dense_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(dense_path)
    torch.manual_seed(seed)
    moe = type(dense_model)(config).eval()
    state = dense_model.state_dict()
    expert_states = [AutoModelForCausalLM.from_pretrained(p).state_dict() for p in sources] or [state] * num_local_experts
    prompt_inputs = [_mlp_inputs(dense_model, tokenizer, text) for text in expert_prompts] if expert_prompts else None
    new_state = {}
    sparse = [i for i in range(config.num_hidden_layers) if config.is_sparse_layer(i)]
    for name, tensor in moe.state_dict().items():
        if ".mlp.experts." in name:  # model.layers.{i}.mlp.experts.{j}.up_proj.weight <- model.layers.{i}.mlp.up_proj.weight
            prefix, rest = name.split(".mlp.experts.", 1)
            j, leaf = rest.split(".", 1)
            new_state[name] = expert_states[int(j)][f"{prefix}.mlp.{leaf}"].clone()
        elif name.endswith(".mlp.gate.weight"):
            layer = int(name.split(".layers.", 1)[1].split(".", 1)[0])
            if prompt_inputs is not None:
                rows = torch.stack([inputs[layer] for inputs in prompt_inputs])
                new_state[name] = rows / rows.norm(dim=-1, keepdim=True).clamp(min=1e-8)
            else:
                new_state[name] = torch.randn_like(tensor) * router_std
        else:
            new_state[name] = state[name].clone()
    moe.load_state_dict(new_state, strict=True)
    moe.generation_config = dense_model.generation_config
    moe.config._name_or_path = str(output_dir)
    result = {"num_parameters": moe.num_parameters(), "dense_num_parameters": dense_model.num_parameters(),
              "sparse_layers": sparse, "num_local_experts": num_local_experts,
              "num_experts_per_tok": num_experts_per_tok}

    def save(folder: Path) -> None:
        moe.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _write_card(folder, Path(output_dir), os.fspath(dense), experts_from, expert_prompts, result)

    save_folder(output_dir, save)
    return result


def _write_card(folder: Path, output_dir: Path, dense: str, experts_from, expert_prompts, result: dict) -> None:
    from ..hub import write_model_card

    if experts_from:
        rows = "\n".join(f"| {j} | `{name}` | {expert_prompts[j] if expert_prompts else '–'} |"
                         for j, name in enumerate(experts_from))
        origin = ("One expert per finetuned model (mergekit-moe style); embeddings, attention and norms from the base."
                  f"\n\n| expert | from | router prompt |\n|---:|---|---|\n{rows}")
    else:
        origin = ("Every expert starts as a copy of its block's MLP and the router starts small, so the upcycled model "
                  "computes the dense model's function until training moves the experts apart.")
    body = (f"Sparse upcycling (book §6.1) of `{dense}` with `hf-hundredpage upcycle`: {result['num_local_experts']} "
            f"experts per sparse block (blocks {result['sparse_layers']}), top-{result['num_experts_per_tok']} routing; "
            f"{result['dense_num_parameters']:,} → {result['num_parameters']:,} parameters.\n\n{origin}")
    write_model_card(folder, model_name=output_dir.name, task="upcycle", model_family="moe", base_model=dense,
                     repo_id=str(output_dir), tags=["moe", "upcycling"], extra_sections={"Upcycling": body})


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hf-hundredpage upcycle``."""
    parser.description = ("Sparse upcycling (§6.1): a dense transformer becomes a mixture of experts whose experts start "
                          "as copies of each MLP (or as the MLPs of --experts_from models); its logits equal the dense "
                          "model's right after upcycling.")
    parser.add_argument("dense", metavar="DENSE", help="trained dense transformer folder")
    parser.add_argument("output_dir", metavar="OUT", help="folder for the mixture of experts")
    parser.add_argument("--num_local_experts", type=int, default=8, help="experts per sparse block (default: 8)")
    parser.add_argument("--num_experts_per_tok", type=int, default=2, help="experts per token, top-k (default: 2)")
    parser.add_argument("--experts_from", nargs="+", default=None, metavar="MODEL",
                        help="one expert per model: finetuned dense models of DENSE (their MLPs)")
    parser.add_argument("--expert_prompts", nargs="+", default=None, metavar="TEXT",
                        help="one text per expert describing its domain; initialises the routers")
    parser.add_argument("--router_std", type=float, default=0.02, help="std of the router's initial weights")
    parser.add_argument("--decoder_sparse_step", type=int, default=1, help="every k-th block is sparse (default: 1)")
    parser.add_argument("--router_aux_loss_coef", type=float, default=0.001, help="load-balancing loss weight")
    parser.add_argument("--seed", type=int, default=0, help="seed of the router initialisation")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty OUT")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``hf-hundredpage upcycle``."""
    result = upcycle(args.dense, args.output_dir, num_local_experts=args.num_local_experts,
                     num_experts_per_tok=args.num_experts_per_tok, experts_from=args.experts_from,
                     expert_prompts=args.expert_prompts, router_std=args.router_std,
                     decoder_sparse_step=args.decoder_sparse_step, router_aux_loss_coef=args.router_aux_loss_coef,
                     seed=args.seed, overwrite_output_dir=args.overwrite_output_dir)
    print(f"Upcycled {args.dense} into {result['num_local_experts']} experts (top-{result['num_experts_per_tok']}) in "
          f"blocks {result['sparse_layers']}: {result['dense_num_parameters']:,} -> {result['num_parameters']:,} "
          f"parameters. Folder: {args.output_dir}")
    return 0
