"""Model merging (book §6.2): ``hf-hundredpage merge`` over mergekit's YAML schema and engine."""

from .merge import METHODS as MERGE_METHODS
from .merge import check_merge_config, merge_models, read_merge_config


__all__ = ["MERGE_METHODS", "check_merge_config", "merge_models", "read_merge_config"]
