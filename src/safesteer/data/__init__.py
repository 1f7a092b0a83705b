"""Our prompt sets (labelled as ours) and loaders for the prompt files users bring."""

from safesteer.data.anchors import ANCHORS_SOURCE, benign_anchors, read_anchors
from safesteer.data.categories import CATEGORIES
from safesteer.data.loaders import FORMATS, PromptRecord, guess_format, load_prompts
from safesteer.data.pairs import PAIRS_SOURCE, SPLITS, PromptPair, load_pairs, read_pairs

__all__ = [
    "ANCHORS_SOURCE",
    "CATEGORIES",
    "FORMATS",
    "PAIRS_SOURCE",
    "SPLITS",
    "PromptPair",
    "PromptRecord",
    "benign_anchors",
    "guess_format",
    "load_pairs",
    "load_prompts",
    "read_anchors",
    "read_pairs",
]
