"""Safety directions: safe − unsafe difference of means over pooled states (method.md §1, §5).

``v = mean_i [h(x_i⁺) − h(x_i⁻)]`` — it points to the **safe** side, so a positive strength α
pushes towards safe and α = −1 is the counter-direction. The raw norm is kept: calibration
uses it. :func:`shrunk_lda` [ours, issue 11] is the option that whitens by the within-class
covariance first (it separates better on the source side but transports worse through
anchor-fitted maps; difference of means stays the default). :func:`average_transported`
averages directions carried from several sources.

Example:
    >>> import torch
    >>> safe, unsafe = torch.ones(4, 3), torch.zeros(4, 3)
    >>> d = difference_of_means(safe, unsafe, category="violence")
    >>> d.vector.tolist(), d.n_pairs, round(d.norm, 3)
    ([1.0, 1.0, 1.0], 4, 1.732)
    >>> (-d).vector.tolist()
    [-1.0, -1.0, -1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.maths.covariance import ledoit_wolf_shrinkage, shrunk_solve

__all__ = [
    "DIRECTION_KINDS",
    "Direction",
    "DirectionEstimator",
    "average_transported",
    "category_directions",
    "difference_of_means",
    "direction_estimator",
    "shrunk_lda",
]


@dataclass(frozen=True)
class Direction:
    """A steering vector and where it came from.

    Supports ``d1 + d2``, ``-d``, ``d * 2.0`` / ``2.0 * d``, ``d.norm`` and ``d.unit()``.
    Arithmetic keeps ``space`` and refuses to mix vectors of different spaces or dimensions.
    """

    vector: Tensor
    category: str | None = None
    n_pairs: int = 0
    space: str = ""
    provenance: Mapping[str, str] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Dimension D of the vector."""
        return int(self.vector.shape[-1])

    @property
    def norm(self) -> float:
        """Euclidean length ‖v‖."""
        return float(torch.linalg.vector_norm(self.vector.double()))

    def unit(self) -> Direction:
        """The same direction scaled to length 1 (refuses a zero vector)."""
        n = self.norm
        if n == 0.0:
            raise InputError("cannot normalise a zero direction", hint="check the pairs differ")
        return replace(self, vector=self.vector / n)

    def __add__(self, other: Direction) -> Direction:
        if not isinstance(other, Direction):
            return NotImplemented
        if self.dim != other.dim or (self.space and other.space and self.space != other.space):
            raise InputError(
                f"cannot add directions of space {self.space!r} (dim {self.dim}) and "
                f"{other.space!r} (dim {other.dim})",
                hint="transport both into the same space first",
            )
        category = self.category if self.category == other.category else None
        return Direction(
            vector=self.vector + other.vector,
            category=category,
            n_pairs=self.n_pairs + other.n_pairs,
            space=self.space or other.space,
            provenance=dict(self.provenance),
        )

    def __neg__(self) -> Direction:
        return replace(self, vector=-self.vector)

    def __mul__(self, factor: float) -> Direction:
        if not isinstance(factor, int | float):
            return NotImplemented
        return replace(self, vector=self.vector * float(factor))

    __rmul__ = __mul__


def _check_pairs(safe: Tensor, unsafe: Tensor) -> None:
    if safe.ndim != 2 or unsafe.ndim != 2:
        raise InputError(
            f"pooled states must be [N, D]; got safe {tuple(safe.shape)}, "
            f"unsafe {tuple(unsafe.shape)}",
            hint="pool the token states first (safesteer.maths.pooling.masked_mean)",
        )
    if safe.shape != unsafe.shape:
        raise InputError(
            f"safe and unsafe states must be paired row by row; got {tuple(safe.shape)} "
            f"and {tuple(unsafe.shape)}",
            hint="pass one safe and one unsafe prompt per pair, in the same order",
        )
    if safe.shape[0] == 0:
        raise InputError("no pairs given", hint="pass at least one safe/unsafe pair")


def difference_of_means(
    safe: Tensor,
    unsafe: Tensor,
    *,
    category: str | None = None,
    space: str = "",
    provenance: Mapping[str, str] | None = None,
) -> Direction:
    """``v = mean_i (safe_i − unsafe_i)`` over paired pooled states ``[N, D]``.

    Accumulated in float64 (long sums of large activations lose bits in float32), returned
    in ``safe``'s dtype.

    Example:
        >>> import torch
        >>> difference_of_means(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]])).vector
        tensor([2., 0.])
    """
    _check_pairs(safe, unsafe)
    vector = (safe.double() - unsafe.double()).mean(dim=0).to(safe.dtype)
    return Direction(
        vector=vector,
        category=category,
        n_pairs=int(safe.shape[0]),
        space=space,
        provenance=dict(provenance or {}),
    )


def category_directions(
    safe: Tensor,
    unsafe: Tensor,
    categories: Sequence[str],
    *,
    space: str = "",
    provenance: Mapping[str, str] | None = None,
    kind: str = "difference-of-means",
) -> dict[str, Direction]:
    """One direction per category, from that category's pairs only.

    ``categories[i]`` labels pair ``i``. Keys are in order of first appearance. ``kind`` names
    the estimator in :data:`DIRECTION_KINDS` (default :func:`difference_of_means`).

    Example:
        >>> import torch
        >>> s, u = torch.eye(3), torch.zeros(3, 3)
        >>> ds = category_directions(s, u, ["a", "b", "a"])
        >>> ds["a"].vector.tolist(), ds["a"].n_pairs
        ([0.5, 0.0, 0.5], 2)
    """
    _check_pairs(safe, unsafe)
    if len(categories) != safe.shape[0]:
        raise InputError(
            f"{len(categories)} category labels for {safe.shape[0]} pairs",
            hint="give one category label per pair",
        )
    estimator = direction_estimator(kind)
    out: dict[str, Direction] = {}
    for name in dict.fromkeys(categories):
        idx = torch.tensor([i for i, c in enumerate(categories) if c == name])
        out[name] = estimator(
            safe[idx], unsafe[idx], category=name, space=space, provenance=provenance
        )
    return out


def shrunk_lda(
    safe: Tensor,
    unsafe: Tensor,
    *,
    shrinkage: float | None = None,
    category: str | None = None,
    space: str = "",
    provenance: Mapping[str, str] | None = None,
) -> Direction:
    """Shrunk LDA: ``w = Σ_w⁻¹ (μ_safe − μ_unsafe)`` over paired pooled states ``[N, D]``.

    ``Σ_w = (1−γ)·S_w + γ·(tr S_w / D)·I``, ``S_w`` the pooled within-class scatter of the
    rows centred on their own class mean (``[safe − μ_safe; unsafe − μ_unsafe] / 2N``); γ by
    Ledoit–Wolf unless ``shrinkage`` is given. Float64.

    **Norm convention.** LDA fixes a direction, not a length. The vector returned is
    ``v = w · ‖d‖² / ⟨w, d⟩`` with ``d = μ_safe − μ_unsafe``: its component along ``d`` is
    exactly ``d`` (``⟨v, d̂⟩ = ‖d‖``, as for :func:`difference_of_means`), so a calibration by
    ``‖v_s‖`` and a strength α keep the meaning "α times the class gap along d". Its length is
    ``‖v‖ = ‖d‖ / cos(v, d) ≥ ‖d‖`` (``⟨w, d⟩ > 0`` since ``Σ_w`` is positive definite). When
    ``Σ_w ∝ I`` it is :func:`difference_of_means`.

    ``provenance`` gets ``direction_kind="shrunk-lda"`` and the shrinkage used.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> noise = torch.randn(400, 2, generator=g) * torch.tensor([0.1, 3.0])  # axis 1 is noisy
        >>> safe = noise + torch.tensor([1.0, 1.0])
        >>> unsafe = torch.randn(400, 2, generator=g) * torch.tensor([0.1, 3.0])
        >>> v = shrunk_lda(safe, unsafe).vector
        >>> d = safe.mean(0) - unsafe.mean(0)
        >>> abs(float(v @ d / d.norm() - d.norm())) < 1e-4   # its component along d is d
        True
        >>> float((v / v.norm())[0]) > 0.99                  # but it points along the quiet axis
        True
    """
    _check_pairs(safe, unsafe)
    if safe.shape[0] < 2:
        raise InputError(
            "shrunk LDA needs at least 2 pairs (a within-class covariance)",
            hint="pass more pairs, or use difference_of_means",
        )
    s, u = safe.double(), unsafe.double()
    mu_s, mu_u = s.mean(dim=0), u.mean(dim=0)
    within = torch.cat([s - mu_s, u - mu_u])
    if shrinkage is None:
        gamma = ledoit_wolf_shrinkage(within)
    elif not 0.0 <= float(shrinkage) <= 1.0:
        raise InputError(f"shrinkage must be in [0, 1]; got {shrinkage}")
    else:
        gamma = float(shrinkage)
    d = mu_s - mu_u
    w = shrunk_solve(within, d, gamma)
    wd = float(w @ d)
    if not wd > 0.0:
        raise InputError(
            "the safe and unsafe means coincide: there is no direction between them",
            hint="check that the pairs differ",
        )
    vector = w * (float(d @ d) / wd)
    prov = {**dict(provenance or {}), "direction_kind": "shrunk-lda", "shrinkage": f"{gamma:.6g}"}
    return Direction(
        vector=vector.to(safe.dtype),
        category=category,
        n_pairs=int(safe.shape[0]),
        space=space,
        provenance=prov,
    )


class DirectionEstimator(Protocol):
    """``(safe [N, D], unsafe [N, D], *, category, space, provenance) → Direction``."""

    def __call__(
        self,
        safe: Tensor,
        unsafe: Tensor,
        *,
        category: str | None = None,
        space: str = "",
        provenance: Mapping[str, str] | None = None,
    ) -> Direction: ...


#: direction estimators by name; the first, difference of means, is the default
DIRECTION_KINDS: dict[str, DirectionEstimator] = {
    "difference-of-means": difference_of_means,
    "shrunk-lda": shrunk_lda,
}


def direction_estimator(kind: str) -> DirectionEstimator:
    """The estimator named ``kind`` in :data:`DIRECTION_KINDS` (clear error otherwise)."""
    if kind not in DIRECTION_KINDS:
        raise InputError(
            f"unknown direction kind {kind!r}", hint=f"use one of {', '.join(DIRECTION_KINDS)}"
        )
    return DIRECTION_KINDS[kind]


def average_transported(vectors: Sequence[Tensor], norms: Sequence[float] | None = None) -> Tensor:
    """Average of directions carried from several sources (issue 11, multi-source transfer).

    ``v = L · u / ‖u‖`` with ``u = (1/K) Σ_k v_k / ‖v_k‖`` (the mean of the **unit** vectors,
    so no source dominates by its length) and ``L = (1/K) Σ_k n_k`` the mean calibrated norm:
    ``norms`` when given, else the vectors' own norms ``‖v_k‖`` (pass calibrated vectors). So
    α means what it means with one source. Float64 inside, returned in the first vector's dtype.

    Example:
        >>> import torch
        >>> average_transported([torch.tensor([2.0, 0.0]), torch.tensor([0.0, 4.0])]).tolist()
        [2.1213202476501465, 2.1213202476501465]
    """
    if not vectors:
        raise InputError("no vectors to average", hint="pass one transported vector per source")
    dims = {tuple(v.shape) for v in vectors}
    if len(dims) != 1 or len(next(iter(dims))) != 1:
        raise InputError(
            f"vectors to average must all be [D] of one D; got shapes {sorted(dims)}",
            hint="transport every source into the same target space first",
        )
    if norms is not None and len(norms) != len(vectors):
        raise InputError(f"{len(norms)} norms for {len(vectors)} vectors", hint="one per vector")
    units = []
    for k, v in enumerate(vectors):
        n = torch.linalg.vector_norm(v.double())
        if not torch.isfinite(n) or n == 0:
            raise InputError(f"vector {k} is zero or not finite", hint="check that source's map")
        units.append(v.double() / n)
    mean_unit = torch.stack(units).mean(dim=0)
    length_u = float(torch.linalg.vector_norm(mean_unit))
    if length_u < 1e-12:
        raise InputError(
            "the sources' directions cancel out (their unit vectors sum to zero)",
            hint="check the sources' signs: every direction must point to the safe side",
        )
    lengths = [float(torch.linalg.vector_norm(v.double())) for v in vectors]
    length = sum(norms if norms is not None else lengths) / len(vectors)
    return (length * mean_unit / length_u).to(vectors[0].dtype)
