"""The default job's settings: :class:`JobConfig` and the defaults ``safesteer demo`` uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safesteer.evaluation.transfer_metrics import DEFAULT_ALPHAS
from safesteer.maths.alignment import MAPS

#: SmolLM2-135M layer used by default: the ``auto`` rule run once on every SafeSteer direction
#: pair (source side only); see DEFAULT_LAYER_NOTE. ``--layer auto`` reruns the rule on the
#: pairs a run reads.
DEFAULT_LAYER: int | str = 14
DEFAULT_LAYER_NOTE = (
    "layer 14 of 30: the auto rule (best cross-validated AUROC of the difference-of-means "
    "source direction; source-side pairs only, no target data) on all 1,452 SafeSteer "
    "direction pairs with 5 scene-grouped folds (research FINDINGS R4: 0.9445 ± 0.009; layers "
    "13–20 within one fold-to-fold std). The band mean of layers 12–16 ties it (0.9405): the job "
    "keeps one layer, as a pack's source gate reads one. Fixed in advance: the job does not "
    "rerun the 30-layer pass (on the job's thinned pairs with 2 category folds it is noisier: "
    "it picked layer 25 once)"
)
DEFAULT_SOURCE = "smollm2-135m"
DEFAULT_TARGETS: tuple[str, ...] = ("gemma3-270m", "minilm-l6")
#: the probe the summary quotes (every probe is in metrics.json)
QUOTED_PROBE = "linear-probe"

Log = Callable[[str], None]


@dataclass
class JobConfig:
    """Everything the default job takes; the defaults are ``safesteer demo``'s.

    Data (:mod:`~safesteer.jobs.default.splits`): ``pairs`` names the pair source
    (``"safesteer"``, default, or ``"ours"``), ``anchor_set`` the map-fit anchors (``"all"``
    real + ours, default, or ``"ours"``); ``n_anchors`` caps the map-fit anchors (spread evenly
    over the fit sets; test parts as many, calibration and probe parts half) and ``max_pairs``
    the pairs of each pair part — both by a fixed thinning rule; None reads every prompt.
    """

    out: Path
    source: str = DEFAULT_SOURCE
    targets: tuple[str, ...] = DEFAULT_TARGETS
    layer: int | str = DEFAULT_LAYER
    maps: tuple[str, ...] = tuple(MAPS)
    calibration: str = "beta"
    gate_score: str = "whitened"  # the source gate's score (safesteer.maths.gating.GATE_SCORES)
    pairs: str = "safesteer"  # a name in splits.PAIR_SOURCES
    anchor_set: str = "all"  # a name in splits.ANCHOR_SETS
    n_anchors: int | None = 600  # map-fit anchors read (None: every fit part in full)
    max_pairs: int | None = 240  # pairs per pair part (None: all)
    #: issue 11's reported variants (jobs.default.variants): "all" (default) or "none"
    variants: str = "all"
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
