"""Safety directions: safe − unsafe difference of means over pooled states (method.md §1, §5).

``v = mean_i [h(x_i⁺) − h(x_i⁻)]`` — it points to the **safe** side, so a positive strength α
pushes towards safe and α = −1 is the counter-direction. The raw norm is kept: calibration
uses it.

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

import torch
from torch import Tensor

from safesteer.errors import InputError

__all__ = ["Direction", "category_directions", "difference_of_means"]


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
) -> dict[str, Direction]:
    """One :func:`difference_of_means` per category, from that category's pairs only.

    ``categories[i]`` labels pair ``i``. Keys are in order of first appearance.

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
    out: dict[str, Direction] = {}
    for name in dict.fromkeys(categories):
        idx = torch.tensor([i for i, c in enumerate(categories) if c == name])
        out[name] = difference_of_means(
            safe[idx], unsafe[idx], category=name, space=space, provenance=provenance
        )
    return out
