"""Reading source models: the packaged zoo, pooled hidden states with early exit, the cache."""

from safesteer.models.cache import StateCache
from safesteer.models.layers import LayerScore, best_layer, choose_layer, score_layers
from safesteer.models.source import SourceReader, load_source
from safesteer.models.zoo import (
    PRESETS,
    LoadedModel,
    cache_dir,
    is_preset,
    load_preset,
    load_pretrained,
)

__all__ = [
    "PRESETS",
    "LayerScore",
    "LoadedModel",
    "SourceReader",
    "StateCache",
    "best_layer",
    "cache_dir",
    "choose_layer",
    "is_preset",
    "load_preset",
    "load_pretrained",
    "load_source",
    "score_layers",
]
