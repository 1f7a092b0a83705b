"""Probes: small classifiers that call a pooled target *state* safe or unsafe.

A probe stands in for an image classifier (:mod:`safesteer.evaluation.classifiers`) at the
representation level: it is fitted on target data the transfer never sees (the "judge" split
of pairs plus benign anchors kept out of maps and gates), then asked how many steered unsafe
prompts still look unsafe.

Two probes, so that a direction which only fools one of them shows up as disagreement:

Both are fitted with scikit-learn (``LogisticRegression``, ``PCA``); the rest of safesteer's
maths is pure torch.

- :class:`LinearProbe` — L2-regularised logistic regression on standardised states,
  ``p(unsafe | h) = σ(wᵀ (h − μ) / s + b)``, with near-constant dimensions dropped first
  (MiniLM has outputs with std ≈ 2e-9; dividing by it turns any push into a flip).
- :class:`PCAProbe` — the same regression on the top-k principal components of the training
  states, ``z = Vₖᵀ (h − μ) / σₖ``, blind to directions off the data manifold.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> safe, unsafe = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 2.0
    >>> probe = LinearProbe().fit(safe, unsafe)
    >>> float(probe.is_unsafe(unsafe).float().mean()) > 0.9
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import torch
from torch import Tensor

from safesteer.errors import InputError

#: a dimension is "near-constant" when its std is below this fraction of the median std.
NEAR_CONSTANT_RATIO = 1e-3


class Probe(Protocol):
    """What the transfer metrics need from a probe."""

    name: str
    threshold: float

    def fit(self, safe: Tensor, unsafe: Tensor) -> Self: ...
    def unsafe_probability(self, pooled: Tensor) -> Tensor: ...
    def is_unsafe(self, pooled: Tensor) -> Tensor: ...
    def describe(self) -> dict[str, Any]: ...


def _check_training_data(safe: Tensor, unsafe: Tensor) -> None:
    if safe.ndim != 2 or unsafe.ndim != 2 or safe.shape[1] != unsafe.shape[1]:
        raise InputError(
            f"probe training states must be [N, D] with the same D, got {tuple(safe.shape)} "
            f"and {tuple(unsafe.shape)}",
            hint="pass pooled target states of safe and unsafe prompts",
        )
    if len(safe) < 2 or len(unsafe) < 2:
        raise InputError(
            f"a probe needs at least 2 safe and 2 unsafe examples, got {len(safe)} and "
            f"{len(unsafe)}",
            hint="use more judge-split pairs",
        )


def fit_logistic(x: Tensor, y: Tensor, l2: float, max_iter: int = 1000) -> tuple[Tensor, float]:
    """Fit ``σ(x w + b)`` to labels ``y`` ∈ {0,1}: minimise weighted mean log-loss + l2‖w‖²/2.

    scikit-learn's ``LogisticRegression`` (L-BFGS, float64). Classes are weighted to balance
    (``class_weight="balanced"``: weights ``n / (2 n_c)``), so an unbalanced training set does
    not move the 0.5 threshold; b is not penalised. With those weights sklearn minimises
    ``C Σ_i s_i ℓ_i + ‖w‖²/2 = C n Σ_i w_i ℓ_i + ‖w‖²/2`` (``w_i = 1/(2 n_c)`` sum to 1), the
    objective above times ``1/l2`` when ``C = 1 / (l2 n)``.
    """
    from sklearn.linear_model import LogisticRegression

    n = len(x)
    model = LogisticRegression(
        C=1.0 / (float(l2) * n),
        class_weight="balanced",
        solver="lbfgs",
        max_iter=max_iter,
        tol=1e-10,
    )
    model.fit(x.double().numpy(), y.numpy().astype(int))
    coef = torch.from_numpy(model.coef_[0].copy()).float()
    return coef, float(model.intercept_[0])


def informative_dims(states: Tensor, ratio: float = NEAR_CONSTANT_RATIO) -> Tensor:
    """Boolean mask of dimensions whose std is at least ``ratio`` × the median std."""
    std = states.double().std(dim=0)
    return std > ratio * std.median().clamp_min(1e-30)


class _LogisticProbe:
    """Shared fit / predict of the probes: ``p(unsafe | h) = σ(wᵀ φ(h) + b)``.

    Subclasses define the features φ: ``_fit_features(x)`` learns them from the training
    states, ``_features(pooled)`` applies them.
    """

    l2: float
    threshold: float
    coef_: Tensor
    intercept_: float

    def _fit_features(self, x: Tensor) -> None:
        raise NotImplementedError

    def _features(self, pooled: Tensor) -> Tensor:
        raise NotImplementedError

    def fit(self, safe: Tensor, unsafe: Tensor) -> Self:
        """Fit on safe (label 0) and unsafe (label 1) pooled states."""
        _check_training_data(safe, unsafe)
        x = torch.cat([safe, unsafe]).float()
        y = torch.cat([torch.zeros(len(safe)), torch.ones(len(unsafe))])
        self._fit_features(x)
        self.coef_, self.intercept_ = fit_logistic(self._features(x), y, self.l2)
        return self

    def unsafe_probability(self, pooled: Tensor) -> Tensor:
        """``σ(wᵀ φ(h) + b)`` for each row of ``pooled`` [B, D] → [B]."""
        return torch.sigmoid(self._features(pooled) @ self.coef_ + self.intercept_)

    def is_unsafe(self, pooled: Tensor) -> Tensor:
        """Bool [B]: probability above the threshold."""
        return self.unsafe_probability(pooled) > self.threshold


@dataclass
class LinearProbe(_LogisticProbe):
    """Logistic regression on standardised states, near-constant dimensions dropped.

    ``p(unsafe | h) = σ(wᵀ ((h − μ) / s)[kept] + b)``; unsafe when ``p > threshold``.
    """

    l2: float = 1e-2
    threshold: float = 0.5
    near_constant_ratio: float = NEAR_CONSTANT_RATIO
    name: str = "linear-probe"
    mean_: Tensor = field(init=False, repr=False)
    scale_: Tensor = field(init=False, repr=False)
    kept_: Tensor = field(init=False, repr=False)
    coef_: Tensor = field(init=False, repr=False)
    intercept_: float = field(init=False, default=0.0)

    def _features(self, pooled: Tensor) -> Tensor:
        return ((pooled.float() - self.mean_) / self.scale_)[:, self.kept_]

    def _fit_features(self, x: Tensor) -> None:
        self.kept_ = informative_dims(x, self.near_constant_ratio)
        self.mean_ = x.mean(dim=0)
        self.scale_ = x.std(dim=0).clamp_min(1e-12)

    def describe(self) -> dict[str, Any]:
        """Provenance: what the probe is and how it decides."""
        return {
            "name": self.name,
            "kind": "logistic regression on standardised pooled states",
            "l2": self.l2,
            "threshold": self.threshold,
            "dims_kept": int(self.kept_.sum()),
            "dims_dropped_near_constant": int((~self.kept_).sum()),
            "near_constant_rule": f"std < {self.near_constant_ratio:g} x median std",
        }


@dataclass
class PCAProbe(_LogisticProbe):
    """Logistic regression on the top-k principal components of the training states.

    ``z = Vₖᵀ (h − μ) / σₖ`` (σₖ: the components' std), ``p(unsafe | h) = σ(wᵀ z + b)``.
    """

    n_components: int = 32
    l2: float = 1e-2
    threshold: float = 0.5
    name: str = "pca-probe"
    mean_: Tensor = field(init=False, repr=False)
    components_: Tensor = field(init=False, repr=False)
    scale_: Tensor = field(init=False, repr=False)
    coef_: Tensor = field(init=False, repr=False)
    intercept_: float = field(init=False, default=0.0)

    def _features(self, pooled: Tensor) -> Tensor:
        return ((pooled.float() - self.mean_) @ self.components_) / self.scale_

    def _fit_features(self, x: Tensor) -> None:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=min(self.n_components, *x.shape), svd_solver="full")
        pca.fit(x.double().numpy())
        sing = torch.from_numpy(pca.singular_values_.copy())
        # components with (numerically) zero variance carry no information; keep the rest
        k = int((sing > sing[0] * 1e-6).sum())
        self.mean_ = torch.from_numpy(pca.mean_.copy()).float()
        self.components_ = torch.from_numpy(pca.components_[:k].T.copy()).float().contiguous()
        std = torch.from_numpy(pca.explained_variance_[:k].copy()) ** 0.5  # ddof = 1
        self.scale_ = std.float().clamp_min(1e-12)

    def describe(self) -> dict[str, Any]:
        """Provenance: what the probe is and how it decides."""
        return {
            "name": self.name,
            "kind": "logistic regression on principal components of pooled states",
            "n_components": int(self.components_.shape[1]),
            "l2": self.l2,
            "threshold": self.threshold,
        }


def fit_probes(safe: Tensor, unsafe: Tensor) -> dict[str, Probe]:
    """Both default probes, fitted on the same safe / unsafe pooled target states."""
    probes: list[Probe] = [LinearProbe().fit(safe, unsafe), PCAProbe().fit(safe, unsafe)]
    return {p.name: p for p in probes}


def disagreement(a: Probe, b: Probe, pooled: Tensor) -> float:
    """Fraction of rows on which two probes' verdicts differ."""
    return float((a.is_unsafe(pooled) != b.is_unsafe(pooled)).float().mean())
