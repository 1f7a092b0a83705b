"""Choosing the source layer: ``layer="auto"``, scored on held-out source-side pairs only.

Score of layer ``L`` (cross-fitted on our *train* pairs, so the judge and test splits stay
unseen): the train pairs are split into ``folds`` folds, stratified by category (pair ``i`` of a
category goes to fold ``i % folds``). For each fold, ``v = mean(h⁺ − h⁻)`` over the other folds'
pairs (:func:`safesteer.maths.directions.difference_of_means`) and every held-out prompt gets the
projection ``⟨h(x), v/‖v‖⟩``. Over all folds:

- ``auroc`` = AUROC of held-out safe projections (positives) against held-out unsafe ones
  (:func:`safesteer.maths.metrics.auroc`) — the main score;
- ``pair_accuracy`` = fraction of held-out pairs with ``proj(safe) > proj(unsafe)`` — tie-break.

``auto`` takes the best ``(auroc, pair_accuracy)``; among exact ties the shallower layer (cheaper
to read). All layers are read in one pass of the model.

Example:
    >>> import torch
    >>> unsafe = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    >>> safe = unsafe + 10 * torch.eye(8)[0]  # planted: every pair differs along e0
    >>> score = score_layer_states(safe, unsafe, [i % 2 for i in range(40)], layer=3)
    >>> score.auroc, score.pair_accuracy
    (1.0, 1.0)
    >>> from safesteer.models import SourceReader
    >>> best = choose_layer(SourceReader.from_preset("smollm2-135m"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from safesteer.data import PromptPair, load_pairs
from safesteer.errors import InputError
from safesteer.maths.directions import difference_of_means
from safesteer.maths.metrics import auroc


class LayerReader(Protocol):
    """What layer scoring needs from a reader (:class:`safesteer.models.SourceReader` is one)."""

    num_layers: int

    def resolve_layer(self, layer: int) -> int: ...

    def pooled_layers(
        self, prompts: Sequence[str], layers: Sequence[int]
    ) -> dict[int, torch.Tensor]: ...


@dataclass(frozen=True)
class LayerScore:
    """How well layer ``layer``'s difference-of-means direction separates held-out pairs."""

    layer: int
    auroc: float
    pair_accuracy: float
    direction_norm: float  # mean ‖v‖ over folds, in source units
    n_pairs: int


def _folds(pairs: Sequence[PromptPair], folds: int) -> list[int]:
    seen: dict[str, int] = {}
    out = []
    for p in pairs:
        i = seen.get(p.category, 0)
        seen[p.category] = i + 1
        out.append(i % folds)
    return out


def score_layer_states(
    safe: torch.Tensor, unsafe: torch.Tensor, fold_of: Sequence[int], layer: int = -1
) -> LayerScore:
    """Cross-fitted score of one layer from pooled states ``safe, unsafe [N, D]`` (see above)."""
    fold = torch.tensor(list(fold_of))
    safe_proj = torch.empty(safe.shape[0], dtype=torch.float64)
    unsafe_proj = torch.empty_like(safe_proj)
    norms = []
    for f in sorted(set(fold_of)):
        held = fold == f
        if held.all():
            raise InputError(
                "layer scoring needs at least two folds of pairs",
                hint="pass more pairs or folds >= 2",
            )
        v = difference_of_means(safe[~held], unsafe[~held]).vector.double()
        norms.append(float(v.norm()))
        u = v / v.norm().clamp_min(1e-12)
        safe_proj[held] = safe[held].double() @ u
        unsafe_proj[held] = unsafe[held].double() @ u
    return LayerScore(
        layer=layer,
        auroc=auroc(safe_proj, unsafe_proj),
        pair_accuracy=float((safe_proj > unsafe_proj).double().mean()),
        direction_norm=sum(norms) / len(norms),
        n_pairs=int(safe.shape[0]),
    )


def score_layers(
    reader: LayerReader,
    layers: Sequence[int] | None = None,
    pairs: Sequence[PromptPair] | None = None,
    folds: int = 2,
) -> list[LayerScore]:
    """:class:`LayerScore` of every layer in ``layers`` (default ``1..num_layers``).

    ``pairs`` default to our train split; scores are cross-fitted over ``folds`` folds.
    """
    pairs = list(pairs) if pairs is not None else load_pairs("train")
    if len(pairs) < 2 * folds:
        raise InputError(
            f"{len(pairs)} pairs are too few to score layers over {folds} folds",
            hint="pass more pairs",
        )
    chosen = [reader.resolve_layer(la) for la in (layers or range(1, reader.num_layers + 1))]
    safe = reader.pooled_layers([p.safe for p in pairs], chosen)
    unsafe = reader.pooled_layers([p.unsafe for p in pairs], chosen)
    fold_of = _folds(pairs, folds)
    return [score_layer_states(safe[la], unsafe[la], fold_of, layer=la) for la in chosen]


def best_layer(scores: Sequence[LayerScore]) -> LayerScore:
    """The best score by ``(auroc, pair_accuracy)``, the shallower layer on exact ties."""
    if not scores:
        raise InputError("no layer scores to choose from", hint="score at least one layer")
    return max(scores, key=lambda s: (s.auroc, s.pair_accuracy, -s.layer))


def choose_layer(
    reader: LayerReader,
    layers: Sequence[int] | None = None,
    pairs: Sequence[PromptPair] | None = None,
    folds: int = 2,
) -> int:
    """The ``auto`` layer: :func:`best_layer` of :func:`score_layers`."""
    return best_layer(score_layers(reader, layers, pairs, folds)).layer


__all__ = [
    "LayerReader",
    "LayerScore",
    "best_layer",
    "choose_layer",
    "score_layer_states",
    "score_layers",
]
