"""Configuration of the decoder transformer of *The Hundred-Page Language Models Book*, chapter 4 (+ §6.1 MoE)."""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig


_BOOK_NAMES = {"emb_dim": "hidden_size", "num_heads": "num_attention_heads", "num_blocks": "num_hidden_layers", "pad_idx": "pad_token_id"}


@strict
class HundredPageTransformerConfig(PreTrainedConfig):
    r"""
    Configuration of [`HundredPageTransformerModel`], the decoder-only transformer of the book's chapter 4
    (notebook `news_decoder_language_model`). The defaults reproduce the notebook's architecture exactly:

    - per-head rotary position embedding on *interleaved* pairs of dimensions (0/1, 2/3, ...) with base 10000
      (book §4.4);
    - RMSNorm with a learned scale and epsilon 1e-8 before attention and before the MLP (book §4.7);
    - multi-head attention without biases (§4.5), MLP of width 4x with ReLU and biases (§4.3), residual connections
      (§4.6);
    - no final norm, an untied output projection, and a padding row in the embedding at `pad_token_id`.

    Modern choices are options, never silent changes: `num_key_value_heads` (grouped-query attention),
    `gated_mlp=True` with `hidden_act="silu"` (SwiGLU), `final_norm=True`, `rope_interleaved=False`
    (Llama's half split), `tie_word_embeddings=True`. With `gated_mlp=True, hidden_act="silu", final_norm=True,
    rope_interleaved=False, mlp_bias=False, attention_bias=False` the model computes the same function as
    `transformers.LlamaForCausalLM` with the same weights.

    Book name -> field: `emb_dim` -> `hidden_size`, `num_heads` -> `num_attention_heads`,
    `num_blocks` -> `num_hidden_layers`, `pad_idx` -> `pad_token_id`, `vocab_size` -> `vocab_size`.

    Sparse mixture of experts (book §6.1) is an option with Mixtral's field names: with `num_local_experts > 0` the
    MLP of the chosen blocks becomes a router (`mlp.gate`) that sends each token to its `num_experts_per_tok` best
    experts (`mlp.experts.{j}`, each an MLP as above), whose outputs are summed with the renormalised router
    probabilities. The blocks are chosen as in Qwen2-MoE: block `i` is sparse unless `i` is in `mlp_only_layers`,
    and only if `(i + 1) % decoder_sparse_step == 0`. `num_local_experts=0` (the default) is the dense model,
    unchanged. With the Llama-shaped options above and experts, the model computes `MixtralForCausalLM`'s function.

    Args:
        vocab_size (`int`, defaults to 8192): number of tokens.
        hidden_size (`int`, defaults to 128): embedding / residual width (book `emb_dim`).
        num_hidden_layers (`int`, defaults to 2): decoder blocks (book `num_blocks`).
        num_attention_heads (`int`, defaults to 8): query heads (book `num_heads`).
        num_key_value_heads (`int`, *optional*): key/value heads for grouped-query attention; defaults to
            `num_attention_heads` (plain multi-head attention, as in the book).
        head_dim (`int`, *optional*): per-head width, defaults to `hidden_size // num_attention_heads`.
        intermediate_size (`int`, *optional*): MLP width, defaults to `4 * hidden_size` (book §4.3).
        hidden_act (`str`, defaults to `"relu"`): MLP activation (any key of `transformers.activations.ACT2FN`).
        gated_mlp (`bool`, defaults to `False`): add a `gate_proj` and compute `down(act(gate(x)) * up(x))`.
        mlp_bias (`bool`, defaults to `True`): biases in the MLP linears (the book has them).
        attention_bias (`bool`, defaults to `False`): biases in q/k/v/o projections (the book has none).
        final_norm (`bool`, defaults to `False`): an RMSNorm after the last block (the book has none).
        rope_interleaved (`bool`, defaults to `True`): rotate pairs (2j, 2j+1) as the book does; `False` rotates
            (j, j + d/2) as Llama does.
        rope_theta (`float`, defaults to 10000.0): RoPE base.
        rms_norm_eps (`float`, defaults to 1e-8): RMSNorm epsilon (the book's value).
        max_position_embeddings (`int`, defaults to 1024): longest sequence the model is meant to see.
        attention_dropout (`float`, defaults to 0.0): dropout on attention probabilities (book §6.8).
        hidden_dropout (`float`, defaults to 0.0): dropout on the attention and MLP outputs before each
            residual addition, and on the embeddings (book §6.8).
        initializer_range (`float`, defaults to 0.02): std of the normal initialisation of weights.
        tie_word_embeddings (`bool`, defaults to `False`): share `lm_head` with the input embedding.
        use_cache (`bool`, defaults to `True`): return the KV cache.
        num_local_experts (`int`, defaults to 0): experts per sparse block (§6.1); 0 keeps every MLP dense.
        num_experts_per_tok (`int`, defaults to 2): experts each token is routed to (top-k).
        decoder_sparse_step (`int`, defaults to 1): every `decoder_sparse_step`-th block is sparse (1 = all).
        mlp_only_layers (`list[int]`, *optional*): indices of blocks that keep a dense MLP whatever the step.
        output_router_logits (`bool`, defaults to `False`): return each sparse block's router logits and the
            load-balancing `aux_loss`; with `labels`, add `router_aux_loss_coef * aux_loss` to the loss (Mixtral).
        router_aux_loss_coef (`float`, defaults to 0.001): weight of the Switch/Mixtral load-balancing loss; 0.0 for a
            dense config (no router), which TRL's trainers then leave alone.
        router_z_loss_coef (`float`, defaults to 0.0): weight of the router z-loss (mean squared logsumexp of the
            router logits, ST-MoE), added with the balancing loss.
        router_jitter_noise (`float`, defaults to 0.0): in training, multiply the sparse block's input (what the
            router and the experts see) by noise drawn uniformly from `[1 - r, 1 + r]`, as Mixtral does.

    Example:

    ```python
    >>> import hf_hundredpage  # registers the model with the Auto classes
    >>> from transformers import AutoConfig, AutoModelForCausalLM
    >>> config = AutoConfig.for_model("hundredpage_transformer", vocab_size=1000)
    >>> model = AutoModelForCausalLM.from_config(config)
    ```
    """

    model_type = "hundredpage_transformer"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {**_BOOK_NAMES, "num_experts": "num_local_experts"}
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
        "layers.*.mlp.experts.*.gate_proj": "colwise",
        "layers.*.mlp.experts.*.up_proj": "colwise",
        "layers.*.mlp.experts.*.down_proj": "rowwise",
    }

    vocab_size: int = 8192
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    hidden_act: str = "relu"
    gated_mlp: bool = False
    mlp_bias: bool = True
    attention_bias: bool = False
    final_norm: bool = False
    rope_interleaved: bool = True
    rope_theta: int | float = 10000.0
    rms_norm_eps: int | float = 1e-8
    max_position_embeddings: int = 1024
    attention_dropout: int | float = 0.0
    hidden_dropout: int | float = 0.0
    initializer_range: int | float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    num_local_experts: int = 0
    num_experts_per_tok: int = 2
    decoder_sparse_step: int = 1
    mlp_only_layers: list[int] | None = None
    output_router_logits: bool = False
    router_aux_loss_coef: int | float = 0.001
    router_z_loss_coef: int | float = 0.0
    router_jitter_noise: int | float = 0.0

    def __post_init__(self, **kwargs):
        # The book's names are accepted as aliases (`emb_dim=128`); resolve them before deriving defaults.
        for book_name, field in _BOOK_NAMES.items():
            if book_name in kwargs:
                setattr(self, field, kwargs.pop(book_name))
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                    f"({self.num_attention_heads}), or set head_dim explicitly."
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        if self.mlp_only_layers is None:
            self.mlp_only_layers = []
        if self.num_local_experts == 0:
            # No router: TRL's trainers read a non-zero coefficient as "this model returns router logits".
            self.router_aux_loss_coef = 0.0
        super().__post_init__(**kwargs)

    def is_sparse_layer(self, layer_idx: int) -> bool:
        """Whether block `layer_idx` holds a sparse MoE block instead of a dense MLP (Qwen2-MoE's rule)."""
        return (
            self.num_local_experts > 0
            and layer_idx not in self.mlp_only_layers
            and (layer_idx + 1) % self.decoder_sparse_step == 0
        )

    def validate_architecture(self):
        """Checks run by `@strict` validation: each says what to change."""
        # hidden_size % num_attention_heads is checked where head_dim is derived (__post_init__): an explicit
        # head_dim (e.g. after pruning heads, §6.3) need not divide hidden_size.
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads})."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for rotary position embeddings.")
        self.validate_experts()

    def validate_experts(self):
        """The mixture-of-experts options (§6.1): one line per mistake, each naming the field to change."""
        if self.num_local_experts < 0:
            raise ValueError(f"num_local_experts ({self.num_local_experts}) must be 0 (dense) or a positive count.")
        if self.num_local_experts == 0:
            return
        if not 1 <= self.num_experts_per_tok <= self.num_local_experts:
            raise ValueError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 and num_local_experts "
                f"({self.num_local_experts})."
            )
        if self.decoder_sparse_step < 1:
            raise ValueError(f"decoder_sparse_step ({self.decoder_sparse_step}) must be at least 1.")
        outside = [i for i in self.mlp_only_layers if not 0 <= i < self.num_hidden_layers]
        if outside:
            raise ValueError(f"mlp_only_layers {outside} are not block indices in [0, {self.num_hidden_layers}).")
        if not any(self.is_sparse_layer(i) for i in range(self.num_hidden_layers)):
            raise ValueError(
                f"num_local_experts={self.num_local_experts} but no block is sparse: check decoder_sparse_step "
                f"({self.decoder_sparse_step}) and mlp_only_layers ({self.mlp_only_layers})."
            )
        for name in ("router_aux_loss_coef", "router_z_loss_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} ({getattr(self, name)}) must be non-negative.")
        if not 0 <= self.router_jitter_noise < 1:
            raise ValueError(f"router_jitter_noise ({self.router_jitter_noise}) must be in [0, 1).")


__all__ = ["HundredPageTransformerConfig"]
