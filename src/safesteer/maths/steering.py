"""Steering arithmetic on conditioning states (method.md §4, §5): the steering rules.

States are ``[B, T, D]``. The vector is ``[D]`` (one for all prompts) or ``[B, D]`` (one per
prompt, e.g. after gating); α is a float or ``[B]``. With ``token_mask`` ``[B, T]`` only True
positions move. The vector is constant across denoising steps: one add per prompt.

Rules (:data:`STEERING_RULES`):

* ``"add"`` (the paper, default): ``ĥ_t = h_t + α·v`` (:func:`steer_states`);
* ``"to-projection"`` [ours, issue 11]: ``ĥ_t = h_t + α·max(0, τ − ⟨h̄, v̂⟩)·v̂``
  (:func:`steer_to_projection`), with ``h̄`` the prompt's pooled state, ``v̂ = v/‖v‖`` and τ a
  target projection — the q-quantile of benign anchors' projections ``⟨h̄_a, v̂⟩``
  (:func:`projection_target`, q = 0.95 by default). A prompt already at or above τ is left
  exactly as it was; one below is moved along v̂ until its pooled projection reaches τ (α = 1)
  and no further. It gates itself and needs no length calibration (the pack's τ is in target
  units). α scales the move as in the additive rule: α = 1 is "up to τ", α = 0.5 half way,
  α = −1 the counter-direction by the same amount.

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
from typing import Literal, get_args

import torch
from torch import Tensor

from safesteer.errors import InputError, PackError
from safesteer.maths.pooling import masked_mean

__all__ = [
    "DEFAULT_PROJECTION_QUANTILE",
    "STEERING_RULES",
    "SteeringRule",
    "combine_directions",
    "projection_shift",
    "projection_target",
    "steer_states",
    "steer_to_projection",
]

#: how the conditioning states are moved (module docstring); the first is the default
SteeringRule = Literal["add", "to-projection"]
STEERING_RULES: tuple[str, ...] = get_args(SteeringRule)
#: the benign quantile τ is set at for ``"to-projection"`` (FINDINGS §4: q = 0.95)
DEFAULT_PROJECTION_QUANTILE = 0.95


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
        alpha: strength, a float or a per-prompt ``[B]`` tensor (0 leaves a prompt untouched:
            its states are returned bit for bit).
        token_mask: optional ``[B, T]`` bool; only True positions are steered (the others are
            returned bit for bit).

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
    moved = (a != 0)[:, None].expand(batch, tokens)  # positions that change
    if token_mask is not None:
        if token_mask.shape != (batch, tokens):
            raise InputError(
                f"token_mask must be [B, T] = {(batch, tokens)}; got {tuple(token_mask.shape)}"
            )
        moved = moved & token_mask.to(device=states.device, dtype=torch.bool)
    # where, not a masked add: h + 0 turns −0.0 into +0.0, and untouched must mean untouched
    out = torch.where(moved[:, :, None], states + shift, states)
    return out[0] if squeeze else out


def _unit(vector: Tensor) -> Tensor:
    n = torch.linalg.vector_norm(vector.double())
    if not torch.isfinite(n) or n == 0:
        raise PackError("the steering vector is zero or not finite", hint="rebuild the pack")
    return (vector.double() / n).to(vector.dtype)


def projection_target(
    benign_pooled: Tensor, vector: Tensor, q: float = DEFAULT_PROJECTION_QUANTILE
) -> float:
    """τ = the q-quantile of ``⟨h̄_a, v̂⟩`` over benign pooled states ``h̄_a`` ``[N, D]``.

    Projections are absolute (not centred), as :func:`projection_shift` compares them; the
    quantile interpolates linearly (``torch.quantile``), float64.

    Example:
        >>> import torch
        >>> anchors = torch.tensor([[0.0, 1.0], [1.0, 5.0], [2.0, 0.0], [3.0, 2.0], [4.0, 9.0]])
        >>> projection_target(anchors, torch.tensor([2.0, 0.0]), q=0.5)
        2.0
    """
    if not 0.0 < q < 1.0:
        raise InputError(f"the projection quantile must be in (0, 1); got {q}", hint="e.g. 0.95")
    if benign_pooled.ndim != 2 or benign_pooled.shape[0] < 1:
        raise InputError(f"benign pooled states must be [N, D]; got {tuple(benign_pooled.shape)}")
    if vector.shape != (benign_pooled.shape[1],):
        raise PackError(
            f"vector has shape {tuple(vector.shape)}; the states have dim {benign_pooled.shape[1]}"
        )
    proj = benign_pooled.double() @ _unit(vector.double())
    return float(torch.quantile(proj, q))


def projection_shift(
    pooled: Tensor, vector: Tensor, tau: float, alpha: float | Tensor = 1.0
) -> Tensor:
    """Per-prompt move along v̂: ``α·max(0, τ − ⟨h̄_b, v̂⟩)`` for pooled ``[B, D]`` → ``[B]``.

    Computed in float64, returned in ``pooled``'s dtype (on its device).

    Example:
        >>> import torch
        >>> projection_shift(torch.tensor([[1.0, 7.0], [3.0, 0.0]]), torch.tensor([1.0, 0.0]), 2.5)
        tensor([1.5000, 0.0000])
    """
    if pooled.ndim != 2 or vector.shape != (pooled.shape[1],):
        raise PackError(
            f"pooled states {tuple(pooled.shape)} and vector {tuple(vector.shape)} do not fit",
            hint="use a pack built for this conditioning space",
        )
    u = _unit(vector.double()).to(pooled.device)
    gap = (float(tau) - pooled.double() @ u).clamp_min(0.0)
    a = torch.as_tensor(alpha, dtype=torch.float64, device=pooled.device)
    return (a * gap).to(pooled.dtype)


def steer_to_projection(
    states: Tensor,
    vector: Tensor,
    tau: float,
    alpha: float | Tensor = 1.0,
    token_mask: Tensor | None = None,
    pooled: Tensor | None = None,
) -> Tensor:
    """The ``"to-projection"`` rule: ``ĥ_t = h_t + α·max(0, τ − ⟨h̄, v̂⟩)·v̂`` on steered tokens.

    Args:
        states: ``[B, T, D]`` conditioning states (``[T, D]`` is one prompt).
        vector: ``[D]`` steering vector (only its direction v̂ is used).
        tau: target projection τ (:func:`projection_target` on benign anchors).
        alpha: scales the move (float or ``[B]``); 1 = up to τ.
        token_mask: ``[B, T]`` real tokens: the positions moved, and (when ``pooled`` is not
            given) the positions pooled for ``h̄``; None = every position.
        pooled: ``[B, D]`` pooled states ``h̄`` when they come from elsewhere (e.g. the part of
            the states a pack's space covers); default the masked mean of ``states``.

    Rows at or above τ are returned bit for bit. Moving every real token by the same ``s·v̂``
    moves their mean by ``s·v̂``, so with ``token_mask`` = the pooling mask and α = 1 the steered
    prompt's pooled projection is exactly τ.

    Example:
        >>> import torch
        >>> h = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[5.0, 0.0], [5.0, 0.0]]])  # 2 prompts
        >>> out = steer_to_projection(h, torch.tensor([1.0, 0.0]), tau=4.0)
        >>> out[:, :, 0].tolist()       # prompt 0 (mean 1) moves by 3; prompt 1 (mean 5) stays
        [[3.0, 5.0], [5.0, 5.0]]
    """
    squeeze = states.ndim == 2
    if squeeze:
        states = states.unsqueeze(0)
        token_mask = None if token_mask is None else token_mask.unsqueeze(0)
        pooled = None if pooled is None else pooled.reshape(1, -1)
    if states.ndim != 3:
        raise InputError(f"states must be [B, T, D]; got {tuple(states.shape)}")
    if pooled is None:
        mask = (
            torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
            if token_mask is None
            else token_mask.to(device=states.device, dtype=torch.bool)
        )
        pooled = masked_mean(states.double(), mask)
    shift = projection_shift(pooled.double(), vector, tau, alpha)
    out = steer_states(states, _unit(vector.double()), shift.to(states.dtype), token_mask)
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
