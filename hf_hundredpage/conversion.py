"""Convert the book notebooks' checkpoints into Hugging Face model folders.

The notebooks (`news_RNN_language_model`, book ch. 3; `news_decoder_language_model`, book ch. 4) save a dict
with `torch.save`:

- RNN: `{prefix}_model.pth` = `{"state_dict", "vocab_size", "emb_dim", "num_layers", "pad_index", ...}`,
  tokenizer beside it in `{prefix}_tokenizer/`;
- transformer: `models/{name}/{name}.pth` = `{"model_state_dict", "model_config": {"vocab_size", "emb_dim",
  "num_heads", "num_blocks", "pad_idx"}}`, tokenizer in `models/{name}/tokenizer/`.

`convert_book_checkpoint` detects which, loads it with `torch.load(weights_only=True)`, maps every parameter to
our models (row-vector `x @ W` matrices become `nn.Linear` weights `W.T`; the per-head `W_Q/W_K/W_V` are stacked
in head order), checks that nothing is missing or left over, and writes the folder atomically: a failure leaves
nothing behind.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from .models import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from .outputs import check_output_dir, save_folder


RNN_KEYS = ("state_dict", "vocab_size", "emb_dim", "num_layers", "pad_index")
TRANSFORMER_KEYS = ("model_state_dict", "model_config")
TRANSFORMER_CONFIG_KEYS = ("vocab_size", "emb_dim", "num_heads", "num_blocks", "pad_idx")


class CheckpointError(ValueError):
    """A checkpoint that is not one the notebooks write, or that does not match its own config."""


def load_book_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass the .pth file the notebook's save_model wrote")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/corrupt/pickled-code files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Weights only load failed" in first_line:  # book §6.6: never execute a stranger's pickle
            raise CheckpointError(
                f"{path} holds pickled objects other than tensors, and loading them could run arbitrary code: refused "
                "(the book's notebooks save plain state dicts; re-save yours with torch.save(model.state_dict(), ...))"
            ) from None
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({first_line})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not the dict the book notebooks save")
    return checkpoint


def detect_kind(checkpoint: dict) -> str:
    """`"rnn"` or `"transformer"`, from the keys the two notebooks write."""
    if all(key in checkpoint for key in TRANSFORMER_KEYS):
        return "transformer"
    if all(key in checkpoint for key in RNN_KEYS):
        return "rnn"
    raise CheckpointError(
        f"unrecognised checkpoint keys {sorted(checkpoint)}: expected the RNN notebook's {list(RNN_KEYS)} "
        f"or the transformer notebook's {list(TRANSFORMER_KEYS)}"
    )


def _take(state: dict, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"parameter {key!r} is missing from the checkpoint's state dict")
    tensor = state.pop(key)
    if tuple(tensor.shape) != shape:
        raise CheckpointError(f"parameter {key!r} has shape {tuple(tensor.shape)}, expected {shape} from its config")
    return tensor.to(torch.float32)


def _check_empty(state: dict) -> None:
    if state:
        raise CheckpointError(f"unexpected parameters in the checkpoint: {sorted(state)[:5]}")


def rnn_from_book(checkpoint: dict) -> HundredPageRNNForCausalLM:
    """The ch. 3 `RecurrentLanguageModel` as a `HundredPageRNNForCausalLM` with the same function."""
    vocab, emb, layers = int(checkpoint["vocab_size"]), int(checkpoint["emb_dim"]), int(checkpoint["num_layers"])
    config = HundredPageRNNConfig(
        vocab_size=vocab, hidden_size=emb, num_hidden_layers=layers, pad_token_id=int(checkpoint["pad_index"])
    )
    state = dict(checkpoint["state_dict"])
    new = {"model.embed_tokens.weight": _take(state, "embedding.weight", (vocab, emb))}
    for l in range(layers):
        prefix = f"rnn.rnn_units.{l}"
        new[f"model.layers.{l}.input_proj.weight"] = _take(state, f"{prefix}.Wh", (emb, emb)).t()
        new[f"model.layers.{l}.input_proj.bias"] = _take(state, f"{prefix}.b", (emb,))
        new[f"model.layers.{l}.hidden_proj.weight"] = _take(state, f"{prefix}.Uh", (emb, emb)).t()
    new["lm_head.weight"] = _take(state, "fc.weight", (vocab, emb))
    new["lm_head.bias"] = _take(state, "fc.bias", (vocab,))
    _check_empty(state)
    return _build(HundredPageRNNForCausalLM, config, new)


def transformer_from_book(checkpoint: dict) -> HundredPageTransformerForCausalLM:
    """The ch. 4 `DecoderLanguageModel` as a `HundredPageTransformerForCausalLM` with the same function."""
    book_config = checkpoint["model_config"]
    missing = [key for key in TRANSFORMER_CONFIG_KEYS if key not in book_config]
    if missing:
        raise CheckpointError(f"model_config lacks {missing}: expected {list(TRANSFORMER_CONFIG_KEYS)}")
    vocab, emb = int(book_config["vocab_size"]), int(book_config["emb_dim"])
    heads, blocks = int(book_config["num_heads"]), int(book_config["num_blocks"])
    if emb % heads:
        raise CheckpointError(f"emb_dim {emb} is not divisible by num_heads {heads}")
    d = emb // heads
    config = HundredPageTransformerConfig(
        vocab_size=vocab,
        hidden_size=emb,
        num_attention_heads=heads,
        num_hidden_layers=blocks,
        pad_token_id=int(book_config["pad_idx"]),
    )
    state = dict(checkpoint["model_state_dict"])
    new = {"model.embed_tokens.weight": _take(state, "embedding.weight", (vocab, emb))}
    for i in range(blocks):
        src, dst = f"layers.{i}", f"model.layers.{i}"
        new[f"{dst}.input_layernorm.weight"] = _take(state, f"{src}.norm1.scale", (emb,))
        new[f"{dst}.post_attention_layernorm.weight"] = _take(state, f"{src}.norm2.scale", (emb,))
        for book_name, ours in (("W_Q", "q_proj"), ("W_K", "k_proj"), ("W_V", "v_proj")):
            per_head = [_take(state, f"{src}.attn.heads.{h}.{book_name}", (emb, d)) for h in range(heads)]
            new[f"{dst}.self_attn.{ours}.weight"] = torch.cat(per_head, dim=1).t()
        new[f"{dst}.self_attn.o_proj.weight"] = _take(state, f"{src}.attn.W_O", (emb, emb)).t()
        new[f"{dst}.mlp.up_proj.weight"] = _take(state, f"{src}.mlp.W_1", (emb, 4 * emb)).t()
        new[f"{dst}.mlp.up_proj.bias"] = _take(state, f"{src}.mlp.B_1", (4 * emb,))
        new[f"{dst}.mlp.down_proj.weight"] = _take(state, f"{src}.mlp.W_2", (4 * emb, emb)).t()
        new[f"{dst}.mlp.down_proj.bias"] = _take(state, f"{src}.mlp.B_2", (emb,))
    new["lm_head.weight"] = _take(state, "output", (emb, vocab)).t()
    _check_empty(state)
    return _build(HundredPageTransformerForCausalLM, config, new)


def _build(model_cls, config, state_dict):
    model = model_cls(config)
    result = model.load_state_dict({k: v.contiguous() for k, v in state_dict.items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return model.eval()


def find_book_tokenizer(checkpoint_path: str | os.PathLike, kind: str) -> Path | None:
    """Where the notebooks save the tokenizer: `{prefix}_tokenizer/` (RNN) or `tokenizer/` beside the .pth."""
    path = Path(checkpoint_path)
    if kind == "rnn" and path.name.endswith("_model.pth"):
        candidate = path.with_name(path.name[: -len("_model.pth")] + "_tokenizer")
    else:
        candidate = path.parent / "tokenizer"
    return candidate if candidate.is_dir() else None


def convert_book_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    tokenizer_path: str | os.PathLike | None = None,
    overwrite_output_dir: bool = False,
):
    """Convert a notebook checkpoint into `output_dir` (safetensors, config with `auto_map`, code files,
    generation config and, when found or given, the tokenizer). Returns the converted model."""
    check_output_dir(output_dir, overwrite_output_dir, resuming=False)
    checkpoint = load_book_checkpoint(checkpoint_path)
    kind = detect_kind(checkpoint)
    model = rnn_from_book(checkpoint) if kind == "rnn" else transformer_from_book(checkpoint)

    tokenizer = None
    tokenizer_dir = Path(tokenizer_path) if tokenizer_path else find_book_tokenizer(checkpoint_path, kind)
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        if not tokenizer_dir.is_dir():
            raise FileNotFoundError(f"tokenizer directory {tokenizer_dir} does not exist")
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        for name in ("bos_token_id", "eos_token_id"):
            if getattr(tokenizer, name) is not None:
                setattr(model.config, name, getattr(tokenizer, name))
                setattr(model.generation_config, name, getattr(tokenizer, name))
    model.generation_config.pad_token_id = model.config.pad_token_id

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    save_folder(output_dir, save)
    return model


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the notebook's .pth file ({prefix}_model.pth or {name}.pth)")
    parser.add_argument("output_dir", help="folder to write the Hugging Face model into")
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer folder saved by the notebook (default: the one beside the checkpoint, if any)",
    )
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty output_dir")


def run_from_args(args: argparse.Namespace) -> int:
    model = convert_book_checkpoint(args.checkpoint, args.output_dir, args.tokenizer, args.overwrite_output_dir)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"converted {model.config.model_type} ({n_params:,} parameters) -> {args.output_dir}")
    print(f"load it with AutoModelForCausalLM.from_pretrained({str(args.output_dir)!r}, trust_remote_code=True)")
    return 0
