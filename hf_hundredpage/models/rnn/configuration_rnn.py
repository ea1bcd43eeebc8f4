"""Configuration of the Elman RNN language model of *The Hundred-Page Language Models Book*, chapter 3."""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig


_BOOK_NAMES = {"emb_dim": "hidden_size", "num_layers": "num_hidden_layers", "pad_index": "pad_token_id"}


@strict
class HundredPageRNNConfig(PreTrainedConfig):
    r"""
    Configuration of [`HundredPageRNNModel`], the Elman RNN language model of the book's chapter 3 (notebook
    `news_RNN_language_model`). The defaults reproduce the notebook: an embedding whose size is also the hidden
    size, `num_hidden_layers` stacked Elman units `h_t = tanh(x_t W + h_{t-1} U + b)` (book §3.1), and an output
    projection with a bias.

    Book name -> field: `emb_dim` -> `hidden_size`, `num_layers` -> `num_hidden_layers`,
    `pad_index` -> `pad_token_id`, `vocab_size` -> `vocab_size`.

    Args:
        vocab_size (`int`, defaults to 8192): number of tokens.
        hidden_size (`int`, defaults to 128): embedding size, which is also every unit's state size.
        num_hidden_layers (`int`, defaults to 2): stacked Elman units.
        dropout (`float`, defaults to 0.0): dropout on each unit's output before the next unit (book §6.8);
            like `torch.nn.RNN`, not after the last unit.
        initializer_range (`float`, defaults to 0.02): std of the normal initialisation of the embedding and
            output projection (the recurrent weights use `torch.nn.RNN`'s uniform(-1/sqrt(E), 1/sqrt(E))).
        tie_word_embeddings (`bool`, defaults to `False`): share `lm_head.weight` with the input embedding.
        use_cache (`bool`, defaults to `True`): return the hidden states in the cache, for O(1) decoding steps.

    `layer_types` is derived (`"linear_attention"` for every unit) so that `transformers.DynamicCache` builds
    recurrent-state layers for this model; it is not meant to be set by hand.
    """

    model_type = "hundredpage_rnn"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = _BOOK_NAMES

    vocab_size: int = 8192
    hidden_size: int = 128
    num_hidden_layers: int = 2
    dropout: int | float = 0.0
    initializer_range: int | float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = False
    layer_types: list[str] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        # The book's names are accepted as aliases (`emb_dim=128`); resolve them before deriving defaults.
        for book_name, field in _BOOK_NAMES.items():
            if book_name in kwargs:
                setattr(self, field, kwargs.pop(book_name))
        self.layer_types = ["linear_attention"] * self.num_hidden_layers
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Checks run by `@strict` validation: each says what to change."""
        if self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {self.num_hidden_layers}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")


__all__ = ["HundredPageRNNConfig"]
