"""The default job's gates: fitted on benign fit and calibration parts only, one rule per side.

* **Source gate** (the default gating mode; FINDINGS R1): decides on the prompt's pooled
  source state with the global source direction (one score, as R1 validated it; a steered
  prompt is steered along the pack's global vector), score ``"whitened"``.
* **Target gate** (the fallback when no source reader runs; FINDINGS R2): decides on the
  pooled target state with the pack's transported (or native) vectors, score ``"projection"``.

Both read only benign prompts: the map-fit anchors (``fit``: centre and covariance) and the
calibration parts of every benign style (``calibration``: set name → states; thresholds by the
``"set-max"`` rule, so the 5% false-trigger rate holds on the worst calibration style).
:data:`GATE_RULES` says in words what each side does; :func:`fit_gate` is the one place the
rule is applied.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> fit = torch.randn(300, 4, generator=g)
    >>> cal = {"a": torch.randn(100, 4, generator=g), "b": torch.randn(100, 4, generator=g) + 1}
    >>> gate = fit_gate("source", fit, cal, {"global": torch.tensor([1.0, 0, 0, 0])})
    >>> gate.score
    'whitened'
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from safesteer.maths.gating import Gate

#: the score each side's gate uses
GATE_SCORE: dict[str, str] = {"source": "whitened", "target": "projection"}
#: how each side's gate is fitted, as metrics.json and the page say it
GATE_RULES: dict[str, str] = {
    side: f"score {score}; "
    + (
        "μ and Σ_b (Ledoit–Wolf) from every benign map-fit anchor"
        if score == "whitened"
        else "μ from every benign map-fit anchor"
    )
    + "; thresholds by the set-max rule: the largest of the benign calibration sets' per-set "
    "quantiles, the level chosen so that the worst calibration set has a 5% false-trigger rate; "
    "benign data only"
    for side, score in GATE_SCORE.items()
}
DEFAULT_GATE_SIDE = "source"


def fit_gate(
    side: str,
    fit: Tensor,
    calibration: Mapping[str, Tensor],
    vectors: Mapping[str, Tensor],
    false_trigger_rate: float = 0.05,
    score: str | None = None,
) -> Gate:
    """The job's gate on ``side`` (``"source"`` or ``"target"``), benign states only.

    ``score`` overrides the side's :data:`GATE_SCORE` (``safesteer demo --gate-score`` sets
    the source gate's)."""
    names = list(calibration)
    cal = torch.cat([calibration[name] for name in names])
    groups = [name for name in names for _ in range(int(calibration[name].shape[0]))]
    chosen = GATE_SCORE[side] if score is None else score
    gate = Gate(false_trigger_rate, score=chosen, threshold_rule="set-max")
    return gate.fit(cal, dict(vectors), groups=groups, covariance_from=fit)


__all__ = ["DEFAULT_GATE_SIDE", "GATE_RULES", "GATE_SCORE", "fit_gate"]
