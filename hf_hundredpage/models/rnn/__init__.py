"""Book chapter 3: the Elman RNN language model."""

from .configuration_rnn import HundredPageRNNConfig
from .modeling_rnn import (
    HundredPageRNNForCausalLM,
    HundredPageRNNForSequenceClassification,
    HundredPageRNNModel,
    HundredPageRNNPreTrainedModel,
)


__all__ = [
    "HundredPageRNNConfig",
    "HundredPageRNNPreTrainedModel",
    "HundredPageRNNModel",
    "HundredPageRNNForCausalLM",
    "HundredPageRNNForSequenceClassification",
]
