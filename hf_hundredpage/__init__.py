"""hf_hundredpage: the systems of *The Hundred-Page Language Models Book* (A. Burkov, 2025) as Hugging Face software.

Importing the package registers the book's models with the `transformers` Auto classes:

```python
>>> import hf_hundredpage
>>> from transformers import AutoConfig, AutoModelForCausalLM
>>> model = AutoModelForCausalLM.from_config(AutoConfig.for_model("hundredpage_transformer"))
```
"""

from .models import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageRNNForSequenceClassification,
    HundredPageRNNModel,
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
    HundredPageTransformerForSequenceClassification,
    HundredPageTransformerModel,
    register_auto_classes,
)


__version__ = "0.1.0"

register_auto_classes()

__all__ = [
    "HundredPageRNNConfig",
    "HundredPageRNNForCausalLM",
    "HundredPageRNNForSequenceClassification",
    "HundredPageRNNModel",
    "HundredPageTransformerConfig",
    "HundredPageTransformerForCausalLM",
    "HundredPageTransformerForSequenceClassification",
    "HundredPageTransformerModel",
    "register_auto_classes",
]
