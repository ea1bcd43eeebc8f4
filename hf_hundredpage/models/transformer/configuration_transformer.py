"""Configuration of the decoder transformer of *The Hundred-Page Language Models Book*, chapter 4."""

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
    attribute_map = _BOOK_NAMES
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
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
        super().__post_init__(**kwargs)

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


__all__ = ["HundredPageTransformerConfig"]
