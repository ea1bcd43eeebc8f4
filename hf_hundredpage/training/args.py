"""What the pretraining recipe builds: one of the book's architectures from scratch (ch. 3 RNN, ch. 4 transformer),
sized for a tokenizer, or an existing checkpoint to continue from."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedModel

from ..models import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
)
from ..paths import resolve_model_path


ARCHITECTURE_KEYS = {
    "transformer": (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
        "hidden_act", "gated_mlp", "mlp_bias", "attention_bias", "final_norm", "rope_interleaved", "rope_theta",
        "rms_norm_eps", "tie_word_embeddings", "attention_dropout", "hidden_dropout", "max_position_embeddings",
        "num_local_experts", "num_experts_per_tok", "decoder_sparse_step", "router_aux_loss_coef", "router_z_loss_coef",
        "router_jitter_noise", "output_router_logits",
    ),
    "rnn": ("hidden_size", "num_hidden_layers", "dropout", "tie_word_embeddings"),
}


@dataclass
class ModelArguments:
    """Which model to train: one of the book's architectures from scratch, or an existing checkpoint."""

    model_type: str = field(default="transformer", metadata={"help": "transformer (book ch. 4) or rnn (book ch. 3)"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from this model folder or Hub id instead of a fresh init"}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "tokenizer folder or Hub id (default: the embedded corpus tokenizer)"}
    )
    hidden_size: int = field(default=128, metadata={"help": "book emb_dim"})
    num_hidden_layers: int = field(default=2, metadata={"help": "book num_blocks / num_layers"})
    num_attention_heads: int = field(default=8, metadata={"help": "book num_heads (transformer)"})
    num_key_value_heads: int | None = field(default=None, metadata={"help": "grouped-query attention (transformer)"})
    intermediate_size: int | None = field(default=None, metadata={"help": "MLP width, default 4 x hidden_size"})
    hidden_act: str = field(default="relu")
    gated_mlp: bool = field(default=False, metadata={"help": "SwiGLU-style gate_proj"})
    mlp_bias: bool = field(default=True)
    attention_bias: bool = field(default=False)
    final_norm: bool = field(default=False)
    rope_interleaved: bool = field(default=True)
    rope_theta: float = field(default=10000.0)
    rms_norm_eps: float = field(default=1e-8)
    tie_word_embeddings: bool = field(default=False)
    attention_dropout: float = field(default=0.0)
    hidden_dropout: float = field(default=0.0, metadata={"help": "transformer dropout (book §6.8)"})
    dropout: float = field(default=0.0, metadata={"help": "RNN dropout between units (book §6.8)"})
    max_position_embeddings: int | None = field(default=None, metadata={"help": "default: block_size"})
    num_local_experts: int = field(default=0, metadata={"help": "sparse mixture of experts (book §6.1): experts per block, 0 = dense"})
    num_experts_per_tok: int = field(default=2, metadata={"help": "MoE: experts per token (top-k)"})
    decoder_sparse_step: int = field(default=1, metadata={"help": "MoE: every k-th block is sparse"})
    router_aux_loss_coef: float = field(default=0.001, metadata={"help": "MoE: weight of the load-balancing loss"})
    router_z_loss_coef: float = field(default=0.0, metadata={"help": "MoE: weight of the router z-loss"})
    router_jitter_noise: float = field(default=0.0, metadata={"help": "MoE: multiplicative router input noise in training"})
    output_router_logits: bool | None = field(
        default=None, metadata={"help": "MoE: train with the load-balancing loss (default: on when num_local_experts > 0)"}
    )

    def __post_init__(self):
        if self.model_type not in ARCHITECTURE_KEYS:
            raise ValueError(f"model_type must be one of {sorted(ARCHITECTURE_KEYS)}, got {self.model_type!r}")


def build_model(args: ModelArguments, tokenizer, block_size: int) -> PreTrainedModel:
    """A fresh book model sized for `tokenizer` (vocabulary, pad/bos/eos ids), or `args.model_name_or_path`."""
    if args.model_name_or_path:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(resolve_model_path(args.model_name_or_path))
    arch = {key: getattr(args, key) for key in ARCHITECTURE_KEYS[args.model_type]}
    if args.model_type == "transformer":
        arch["max_position_embeddings"] = arch["max_position_embeddings"] or block_size
        if arch["output_router_logits"] is None:  # an MoE trains with its load-balancing loss (Mixtral)
            arch["output_router_logits"] = arch["num_local_experts"] > 0
        config_cls, model_cls = HundredPageTransformerConfig, HundredPageTransformerForCausalLM
    else:
        config_cls, model_cls = HundredPageRNNConfig, HundredPageRNNForCausalLM
    from huggingface_hub.errors import StrictDataclassClassValidationError

    try:
        config = config_cls(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **{k: v for k, v in arch.items() if v is not None},
        )
    except StrictDataclassClassValidationError as err:  # the config's own checks: one line saying what to change
        raise ValueError(str(err.__cause__ or err).strip()) from None
    return model_cls(config)
