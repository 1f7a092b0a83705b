"""Steering arithmetic: ``ĥ = h + α·v`` on conditioning states (method.md §4, §5).

States are ``[B, T, D]``. The vector is ``[D]`` (one for all prompts) or ``[B, D]`` (one per
prompt, e.g. after gating); α is a float or ``[B]``. With ``token_mask`` ``[B, T]`` only True
positions move. The vector is constant across denoising steps: one add per prompt.

Example:
    >>> import torch
    >>> h = torch.zeros(1, 2, 3)
    >>> steer_states(h, torch.tensor([1.0, 0.0, 0.0]), 5.0)[0, :, 0].tolist()
    [5.0, 5.0]
    >>> steer_states(h, torch.tensor([1.0, 0.0, 0.0]), 5.0,
    ...              token_mask=torch.tensor([[True, False]]))[0, :, 0].tolist()
    [5.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from safesteer.errors import InputError, PackError

__all__ = ["combine_directions", "steer_states"]


def steer_states(
    states: Tensor,
    vector: Tensor,
    alpha: float | Tensor,
    token_mask: Tensor | None = None,
) -> Tensor:
    """Return ``states + α·vector`` (a new tensor; ``states`` is not modified).

    Args:
        states: ``[B, T, D]`` conditioning states (``[T, D]`` is taken as one prompt).
        vector: ``[D]`` or per-prompt ``[B, D]``; moved to ``states``' device and dtype.
        alpha: strength, a float or a per-prompt ``[B]`` tensor (0 leaves a prompt untouched).
        token_mask: optional ``[B, T]`` bool; only True positions are steered.

    Raises:
        PackError: the vector's dimension differs from the states' (both are named).
    """
    squeeze = states.ndim == 2
    if squeeze:
        states = states.unsqueeze(0)
    if states.ndim != 3:
        raise InputError(f"states must be [B, T, D]; got {tuple(states.shape)}")
    batch, tokens, dim = states.shape
    if vector.shape[-1] != dim:
        raise PackError(
            f"steering vector has dimension {vector.shape[-1]} but the conditioning states have "
            f"dimension {dim}",
            hint="use a pack built for this conditioning space (safesteer build --target ...)",
        )
    v = vector.to(device=states.device, dtype=states.dtype)
    if v.ndim == 1:
        v = v.expand(batch, dim)
    elif v.ndim != 2 or v.shape[0] != batch:
        raise InputError(f"vector must be [D] or [B={batch}, D]; got {tuple(vector.shape)}")
    a = torch.as_tensor(alpha, device=states.device, dtype=states.dtype)
    if a.ndim == 0:
        a = a.expand(batch)
    elif a.shape != (batch,):
        raise InputError(f"alpha must be a float or [B={batch}]; got {tuple(a.shape)}")
    shift = (a[:, None] * v)[:, None, :]  # [B, 1, D], broadcast over tokens
    if token_mask is not None:
        if token_mask.shape != (batch, tokens):
            raise InputError(
                f"token_mask must be [B, T] = {(batch, tokens)}; got {tuple(token_mask.shape)}"
            )
        shift = shift * token_mask.to(device=states.device, dtype=states.dtype)[:, :, None]
    out = states + shift
    return out[0] if squeeze else out


def combine_directions(
    vectors: Mapping[str, Tensor],
    active: Sequence[str],
    weights: Mapping[str, float] | None = None,
) -> Tensor:
    """``Σ_{c∈A} w_c · v_c`` over the active categories A (method.md §5).

    Default weights are uniform ``w_c = 1/|A|`` [ours: keeps the combined vector on the scale
    of one calibrated vector, so α means the same with one or many categories]; pass
    ``weights={c: 1.0 ...}`` for the plain sum. An empty ``active`` gives the zero vector.

    Example:
        >>> import torch
        >>> vs = {"a": torch.tensor([2.0, 0.0]), "b": torch.tensor([0.0, 2.0])}
        >>> combine_directions(vs, ["a", "b"]).tolist()
        [1.0, 1.0]
        >>> combine_directions(vs, ["a", "b"], weights={"a": 1.0, "b": 1.0}).tolist()
        [2.0, 2.0]
    """
    if not vectors:
        raise InputError("no vectors to combine", hint="pass at least one category vector")
    unknown = [c for c in active if c not in vectors]
    if unknown:
        raise InputError(
            f"unknown categories {unknown}; known: {sorted(vectors)}",
            hint="choose categories that the pack contains",
        )
    dims = {int(v.shape[-1]) for v in vectors.values()}
    if len(dims) != 1:
        raise PackError(f"category vectors have different dimensions {sorted(dims)}")
    first = next(iter(vectors.values()))
    out = torch.zeros_like(first)
    if not active:
        return out
    if weights is not None and (missing := [c for c in active if c not in weights]):
        raise InputError(
            f"no weight for active categories {missing}", hint="give every one a weight"
        )
    for c in active:
        w = 1.0 / len(active) if weights is None else float(weights[c])
        out = out + w * vectors[c]
    return out
