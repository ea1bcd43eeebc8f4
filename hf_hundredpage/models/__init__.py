"""The book's models, one folder each (self-contained, so that `trust_remote_code` users get working code)."""

from .rnn import (
    HundredPageRNNConfig,
    HundredPageRNNForCausalLM,
    HundredPageRNNForSequenceClassification,
    HundredPageRNNModel,
)
from .transformer import (
    HundredPageTransformerConfig,
    HundredPageTransformerForCausalLM,
    HundredPageTransformerForSequenceClassification,
    HundredPageTransformerModel,
)


MODEL_CLASSES = {
    "rnn": (HundredPageRNNConfig, HundredPageRNNModel, HundredPageRNNForCausalLM, HundredPageRNNForSequenceClassification),
    "transformer": (
        HundredPageTransformerConfig,
        HundredPageTransformerModel,
        HundredPageTransformerForCausalLM,
        HundredPageTransformerForSequenceClassification,
    ),
}


def register_auto_classes() -> None:
    """Register both configs with `AutoConfig`, and the classes with `AutoModel`, `AutoModelForCausalLM` and
    `AutoModelForSequenceClassification`; also mark them for `save_pretrained` to copy their code files and
    write `auto_map`, so a saved folder loads with `trust_remote_code=True` where this package is absent."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    for config_cls, base_cls, lm_cls, cls_cls in MODEL_CLASSES.values():
        if config_cls.model_type not in CONFIG_MAPPING:
            AutoConfig.register(config_cls.model_type, config_cls)
            AutoModel.register(config_cls, base_cls)
            AutoModelForCausalLM.register(config_cls, lm_cls)
            AutoModelForSequenceClassification.register(config_cls, cls_cls)
        config_cls.register_for_auto_class()
        base_cls.register_for_auto_class("AutoModel")
        lm_cls.register_for_auto_class("AutoModelForCausalLM")
        cls_cls.register_for_auto_class("AutoModelForSequenceClassification")


__all__ = ["MODEL_CLASSES", "register_auto_classes"] + [cls.__name__ for classes in MODEL_CLASSES.values() for cls in classes]
