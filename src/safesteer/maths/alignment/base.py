"""The shape every alignment map shares (scikit-learn style; method.md §2).

A map T carries pooled source states into the target's conditioning space. It is fitted on
**benign anchors only**: the same prompts through both models, ``source [N, ds]`` and
``target [N, dt]``. Both sides are centred on their anchor means, then

* ``transform(x) = target_mean_ + T(x − source_mean_)`` maps points,
* ``transport(v) = T(v)`` maps a difference vector (exact for linear maps: centring cancels
  in differences),
* ``score(source, target)`` reports R² and mean cosine on held-out anchors
  (cosine between centred predictions and centred targets, centred with the fitted means);
* ``direction_fidelity(source, target, v)`` scores how well *one direction* is carried:
  :func:`safesteer.maths.metrics.transport_fidelity` of ``v`` and ``transport(v)`` on held-out
  anchors (issue 11's benign-only selection rule).

Learned attributes end in ``_``; ``fit`` returns ``self``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.metrics import mean_cosine, r2_score, transport_fidelity

__all__ = ["AlignmentMap", "FitReport"]


@dataclass(frozen=True)
class FitReport:
    """Fit quality of a map on (held-out) anchors.

    Attributes:
        r2: ``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ‖²`` over all target dimensions.
        mean_cosine: mean cos(ŷ_i − μ_t, y_i − μ_t) — direction agreement, blind to scale
            (a pure rotation between spaces of different scale has a poor R² but can have a
            high mean cosine).
        n_anchors: number of anchors scored.
    """

    r2: float
    mean_cosine: float
    n_anchors: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict, for provenance."""
        return {"r2": self.r2, "mean_cosine": self.mean_cosine, "n_anchors": self.n_anchors}


class AlignmentMap:
    """Base class: validation, centring and scoring; subclasses fit and apply T on centred data."""

    kind: ClassVar[str] = ""

    # ---- subclass hooks ------------------------------------------------------------------
    def _fit_centred(self, source: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def _apply(self, centred: Tensor) -> Tensor:
        """T on centred source points ``[N, ds]`` → ``[N, dt]`` (or a vector ``[ds]``)."""
        raise NotImplementedError

    def params(self) -> dict[str, float | int | str]:
        """Hyper-parameters (and chosen values), for provenance."""
        return {"kind": self.kind}

    # ---- public API ----------------------------------------------------------------------
    def fit(self, source: Tensor, target: Tensor) -> Self:
        """Fit on paired benign anchors ``source [N, ds]``, ``target [N, dt]``; returns self."""
        _check_anchors(source, target, minimum=2)
        self.source_mean_ = source.double().mean(dim=0)
        self.target_mean_ = target.double().mean(dim=0)
        self.source_dim_ = int(source.shape[1])
        self.target_dim_ = int(target.shape[1])
        self.n_anchors_ = int(source.shape[0])
        self._fit_centred(
            (source.double() - self.source_mean_).float(),
            (target.double() - self.target_mean_).float(),
        )
        self.source_mean_ = self.source_mean_.float()
        self.target_mean_ = self.target_mean_.float()
        return self

    def _check_input(self, x: Tensor, what: str) -> None:
        if not hasattr(self, "source_mean_"):
            raise InputError(
                f"{type(self).__name__} is not fitted", hint="call .fit(source, target)"
            )
        if x.shape[-1] != self.source_dim_:
            raise InputError(
                f"{what} has dimension {x.shape[-1]}; the map was fitted on source dim "
                f"{self.source_dim_}",
                hint="use states from the same source model and layer as the anchors",
            )

    def transform(self, source: Tensor) -> Tensor:
        """Map points: ``target_mean_ + T(x − source_mean_)`` for ``[N, ds]`` or ``[ds]``."""
        self._check_input(source, "source")
        return self.target_mean_ + self._apply(source.float() - self.source_mean_)

    def transport(self, vector: Tensor) -> Tensor:
        """Map a difference vector ``[ds] → [dt]`` (``T(v)``; no means involved)."""
        self._check_input(vector, "vector")
        return self._apply(vector.float())

    def score(self, source: Tensor, target: Tensor) -> FitReport:
        """R² and mean cosine of ``transform(source)`` against ``target`` (use held-out anchors)."""
        _check_anchors(source, target, minimum=1)
        pred = self.transform(source)
        if pred.shape != target.shape:
            raise InputError(
                f"target has shape {tuple(target.shape)}; the map predicts {tuple(pred.shape)}"
            )
        centred_pred = pred - self.target_mean_
        centred_target = target.float() - self.target_mean_
        return FitReport(
            r2=r2_score(pred, target.float()),
            mean_cosine=mean_cosine(centred_pred, centred_target),
            n_anchors=int(source.shape[0]),
        )

    def direction_fidelity(
        self,
        source: Tensor,
        target: Tensor,
        vector: Tensor,
        transported: Tensor | None = None,
    ) -> float:
        """ρ of :func:`~safesteer.maths.metrics.transport_fidelity` on held-out benign anchors.

        ``transported`` defaults to ``self.transport(vector)``; pass the vector a pack actually
        carries when it comes another way (an MLP's ``transport_means``).
        """
        _check_anchors(source, target, minimum=2)
        moved = self.transport(vector) if transported is None else transported
        return transport_fidelity(source, target, vector, moved)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items() if k != "kind")
        return f"{type(self).__name__}({args})"


def _check_anchors(source: Any, target: Any, *, minimum: int) -> None:
    if not isinstance(source, Tensor) or not isinstance(target, Tensor):
        raise InputError("anchors must be torch tensors [N, D]")
    if source.ndim != 2 or target.ndim != 2:
        raise InputError(
            f"anchors must be [N, D]; got source {tuple(source.shape)}, "
            f"target {tuple(target.shape)}",
            hint="pool the token states first",
        )
    if source.shape[0] != target.shape[0]:
        raise InputError(
            f"{source.shape[0]} source anchors but {target.shape[0]} target anchors",
            hint="pass the same anchors, in the same order, through both models",
        )
    if source.shape[0] < minimum:
        raise InputError(f"need at least {minimum} anchors; got {source.shape[0]}")
    if not (bool(torch.isfinite(source).all()) and bool(torch.isfinite(target).all())):
        raise InputError("anchors contain NaN or Inf", hint="check the model's pooled states")
