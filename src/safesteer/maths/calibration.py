"""Magnitude calibration: the map gives a direction, the source gives its length (method.md §3, §9).

Paper rule (default):
    ``β = median_j ‖h̄_t(a_j)‖ / median_j ‖h̄_s(a_j)‖`` over centred benign anchors,
    ``v_t = β · ‖v_s‖ · ṽ / ‖ṽ‖``.

Benign z-score rule [ours, §9]: the shift in units of the benign anchors' spread *along the
direction* is kept: with ``σ_s = std_j ⟨h_s(a_j), v̂_s⟩`` and ``σ_t = std_j ⟨h_t(a_j), ṽ/‖ṽ‖⟩``,
``v_t = (‖v_s‖ / σ_s) · σ_t · ṽ/‖ṽ‖``.

Example:
    >>> import torch
    >>> v = calibrate(torch.tensor([0.0, 2.0, 0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0]), beta=3.0)
    >>> v.tolist()
    [0.0, 3.0, 0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from safesteer.errors import InputError

__all__ = ["CALIBRATIONS", "anchor_scale_ratio", "calibrate", "calibrate_beta", "calibrate_zscore"]


def _centred_median_norm(anchors: Tensor, name: str) -> float:
    if anchors.ndim != 2 or anchors.shape[0] < 2:
        raise InputError(f"{name} must be [N >= 2, D]; got {tuple(anchors.shape)}")
    x = anchors.double()
    return float(torch.linalg.vector_norm(x - x.mean(dim=0), dim=1).median())


def anchor_scale_ratio(source_anchors: Tensor, target_anchors: Tensor) -> float:
    """β = median‖centred target anchors‖ / median‖centred source anchors‖.

    Example:
        >>> import torch
        >>> s = torch.randn(100, 8)
        >>> round(anchor_scale_ratio(s, 4 * s), 6)
        4.0
    """
    if source_anchors.shape[0] != target_anchors.shape[0]:
        raise InputError(
            f"{source_anchors.shape[0]} source anchors but "
            f"{target_anchors.shape[0]} target anchors",
            hint="pass the same anchors, in the same order, through both models",
        )
    s = _centred_median_norm(source_anchors, "source_anchors")
    t = _centred_median_norm(target_anchors, "target_anchors")
    if s == 0.0:
        raise InputError(
            "source anchors are all identical (zero spread)", hint="use varied anchors"
        )
    return t / s


def _unit(v: Tensor, name: str) -> Tensor:
    n = torch.linalg.vector_norm(v.double())
    if not torch.isfinite(n) or n == 0:
        raise InputError(
            f"{name} has zero or non-finite length", hint="check the map and the pairs"
        )
    return v.double() / n


def calibrate(transported: Tensor, source_vector: Tensor, beta: float) -> Tensor:
    """``v_t = β · ‖v_s‖ · ṽ / ‖ṽ‖`` (returned in ``transported``'s dtype)."""
    length = float(beta) * float(torch.linalg.vector_norm(source_vector.double()))
    return (length * _unit(transported, "transported vector")).to(transported.dtype)


def calibrate_zscore(
    transported: Tensor,
    source_vector: Tensor,
    source_anchors: Tensor,
    target_anchors: Tensor,
) -> Tensor:
    """Scale ṽ so its length in benign target spreads equals ‖v_s‖ in benign source spreads.

    ``v_t = (‖v_s‖ / σ_s) · σ_t · ṽ/‖ṽ‖`` with σ the standard deviation of the benign anchors'
    projections on the unit direction on each side. Uses benign data only.
    """
    u_s = _unit(source_vector, "source vector")
    u_t = _unit(transported, "transported vector")
    sigma_s = float((source_anchors.double() @ u_s).std())
    sigma_t = float((target_anchors.double() @ u_t).std())
    if sigma_s == 0.0:
        raise InputError("benign source anchors have no spread along the source direction")
    length = float(torch.linalg.vector_norm(source_vector.double())) / sigma_s * sigma_t
    return (length * u_t).to(transported.dtype)


def calibrate_beta(
    transported: Tensor,
    source_vector: Tensor,
    source_anchors: Tensor,
    target_anchors: Tensor,
) -> Tensor:
    """The paper's rule from the anchors: :func:`calibrate` with β = :func:`anchor_scale_ratio`."""
    return calibrate(transported, source_vector, anchor_scale_ratio(source_anchors, target_anchors))


#: a calibration rule: ``(ṽ, v_s, benign source anchors, benign target anchors) → v_t``
CalibrationRule = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
#: the rules by name; ``build_pack(calibration=...)`` and every ``--calibration`` read this table
CALIBRATIONS: dict[str, CalibrationRule] = {
    "beta": calibrate_beta,
    "zscore": calibrate_zscore,
}
