"""The default job's settings: :class:`JobConfig` and the defaults ``safesteer demo`` uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safesteer.evaluation.transfer_metrics import DEFAULT_ALPHAS
from safesteer.maths.alignment import MAPS

#: SmolLM2-135M layer used by default; see DEFAULT_LAYER_NOTE for how it was chosen.
DEFAULT_LAYER = 15
DEFAULT_LAYER_NOTE = (
    "layer 15 of 30: what `safesteer layers` / --layer auto picks for SmolLM2-135M (best "
    "cross-fitted AUROC of the source direction on held-out source-side train pairs; no target "
    "data). Measured 2026-11-28 against layer 20 (the method.md §9 pilot's pick): at 15 the "
    "source gate steers 97% of held-out unsafe prompts at 5% benign (93% at 7.7% for 20) and "
    "MiniLM's best style-matched AUROC is 0.73 (0.65 for 20)"
)
DEFAULT_SOURCE = "smollm2-135m"
DEFAULT_TARGETS: tuple[str, ...] = ("gemma3-270m", "minilm-l6")
#: the probe the summary quotes (every probe is in metrics.json)
QUOTED_PROBE = "linear-probe"

Log = Callable[[str], None]


@dataclass
class JobConfig:
    """Everything the default job takes; the defaults are ``safesteer demo``'s.

    ``judge_anchor_fraction`` is the share of benign anchors kept for the probes (the
    "judge" split, as ``metrics.json`` names it).
    """

    out: Path
    source: str = DEFAULT_SOURCE
    targets: tuple[str, ...] = DEFAULT_TARGETS
    layer: int | str = DEFAULT_LAYER
    maps: tuple[str, ...] = tuple(MAPS)
    calibration: str = "beta"
    gate_score: str = "whitened"  # a name in safesteer.maths.gating.GATE_SCORES
    n_anchors: int = 2000
    holdout_fraction: float = 0.15
    judge_anchor_fraction: float = 0.15
    max_pairs: int | None = None  # cap on pairs per split (for quick runs and tests)
    n_random: int = 5
    n_null: int = 20
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    category_alpha: float = 1.0
    max_unsafe_rate: float = 0.05
    n_images: int = 2
    seed: int = 0
    cache: bool = True  # reuse pooled states from the user cache ($SAFESTEER_CACHE)
    # image evaluation of a generator target (a pipeline, not an encoder preset)
    protocol: str | None = None  # None: "quick" for random weights, else "paper"
    q16_prompts: str | None = None  # Q16 prompt embeddings (safesteer convert-q16)
    fid_reference: str | None = None  # folder of reference images for FID
    clip_model: str | None = None  # CLIP for CLIP-score / Q16 (protocol default when None)
    steps: int | None = None  # denoising steps of the evaluation (None: the pipeline default)
    size: int | None = None  # image height = width (None: the pipeline default)
    # where models run (names of safesteer.models.device)
    dtype: str | None = None
    device: str | None = None
    offload: str = "none"

    def to_json(self) -> dict[str, Any]:
        """The settings as ``metrics.json`` records them (paths as text)."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
