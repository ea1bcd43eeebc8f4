"""Model cards (`cards`) and publishing to the Hugging Face Hub (`publish`)."""

from .cards import MODEL_CARD_TEMPLATE, detect_hardware, model_family, write_model_card
from .publish import PUBLISH_IGNORE_PATTERNS, HubConnectionError, check_loadable_folder, maybe_push_to_hub, publish


__all__ = [
    "MODEL_CARD_TEMPLATE",
    "PUBLISH_IGNORE_PATTERNS",
    "HubConnectionError",
    "check_loadable_folder",
    "detect_hardware",
    "maybe_push_to_hub",
    "model_family",
    "publish",
    "write_model_card",
]
