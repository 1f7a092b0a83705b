"""Steer a pipeline in place: ``attach`` / ``detach`` / ``steered``.

:func:`attach` replaces the pipeline's ``encode_prompt`` **on the instance** by a wrapper that
calls the original and adds ``α·v`` to the positive branch's conditioning states
(``ĥ = h + α·v``, :func:`safesteer.maths.steering.steer_states`), so the user's usual
``pipe(prompt=...)`` is steered. The vector is constant across denoising steps: the cost is one
vector add per prompt (vectors are cached on the states' device and dtype). Options:

- ``tokens``: ``"all"`` positions (the paper) or ``"real"`` tokens only (padding untouched);
- ``steer_negative``: also steer the negative / unconditional CFG branch (off by default);
- ``gated``: steer only prompts whose pooled *unsteered* state crosses the pack's benign-fitted
  gate (:meth:`safesteer.maths.gating.Gate.decide`), and record which were steered;
- ``gate``: which gate decides — ``"target"`` (default: the pack's gate on the pipeline's own
  pooled conditioning states) or ``"source"`` [ours] (the pack's source gate on the prompts'
  pooled source states ``h_s(x)``, read by the ``source_reader`` passed to :func:`attach`,
  which must match ``pack.source_gate_spec``; needs the prompt texts);
- ``categories``: ``None`` (global vector), a list (fixed categories, uniform mean), or
  ``"auto"`` (per prompt, the categories the gate finds active; the global vector where none).

Per-call overrides of ``alpha`` / ``categories`` / ``gated`` go through :func:`steered`.
:func:`detach` restores the pipeline exactly (same bound methods, no leftover attributes or
hooks). :func:`last_steering` says what the last call did, per prompt.

Example:
    >>> import torch
    >>> from safesteer import SafetyPack, tiny_pipeline
    >>> pipe = tiny_pipeline("sd")  # RANDOM weights: the image is noise, the path is real
    >>> pack = SafetyPack(torch.ones(32), {}, "tiny-sd", "sd/clip", {})  # a toy vector
    >>> call = {"num_inference_steps": 2, "height": 32, "width": 32}
    >>> attach(pipe, pack, alpha=5.0)
    >>> image = pipe("a photo of a cat", **call).images[0]
    >>> with steered(pipe, alpha=0.0):  # per-call override: this call is unsteered
    ...     image = pipe("a photo of a cat", **call).images[0]
    >>> detach(pipe)
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, get_args

import torch
from torch import Tensor

from safesteer.errors import InputError, PackError
from safesteer.maths.gating import Gate, GateDecision
from safesteer.maths.pooling import masked_mean
from safesteer.maths.steering import steer_states
from safesteer.pack import SafetyPack
from safesteer.targets.base import RawStates, TargetAdapter, unpad_states

_STATE_ATTR = "_safesteer_state"
Categories = None | Literal["auto"] | tuple[str, ...]
GateSide = Literal["target", "source"]
Tokens = Literal["all", "real"]
#: allowed values, declared once (``--gate`` / ``--tokens`` choices read these)
GATE_SIDES: tuple[str, ...] = get_args(GateSide)
TOKENS: tuple[str, ...] = get_args(Tokens)


class SourceStates(Protocol):
    """What the source gate needs from a reader (:class:`safesteer.models.SourceReader`)."""

    model_id: str

    def pooled(self, prompts: Sequence[str], layer: int) -> Tensor: ...


@dataclass(frozen=True)
class SteeringSettings:
    """How an attached pipeline is steered (see the module docstring)."""

    alpha: float = 1.0
    tokens: Tokens = "all"
    steer_negative: bool = False
    gated: bool = False
    categories: Categories = None
    gate: GateSide = "target"

    @property
    def uses_gate(self) -> bool:
        """Whether a gate decides anything (gated steering or automatic categories)."""
        return self.gated or self.categories == "auto"


@dataclass(frozen=True)
class PromptSteering:
    """What one row of the positive branch received in the last call.

    Attributes:
        prompt: the prompt text (None when the caller passed embeddings).
        steered: whether ``α·v`` was added to this row.
        categories: the categories whose mean vector was used (empty: the global vector).
        alpha: the strength applied (0 where not steered).
        gate_scores: per gate name, the score (higher = more unsafe), when a gate ran.
        gate: which gate decided (``"target"`` or ``"source"``), or None when none ran.
    """

    prompt: str | None
    steered: bool
    categories: list[str]
    alpha: float
    gate_scores: dict[str, float] = field(default_factory=dict)
    gate: GateSide | None = None


def _check_settings(
    pack: SafetyPack, s: SteeringSettings, source_reader: SourceStates | None = None
) -> SteeringSettings:
    if s.tokens not in TOKENS:
        raise InputError(f"tokens must be 'all' or 'real'; got {s.tokens!r}")
    if s.gate not in GATE_SIDES:
        raise InputError(f"gate must be 'target' or 'source'; got {s.gate!r}")
    cats = s.categories
    if cats is not None and cats != "auto":
        names = (cats,) if isinstance(cats, str) else tuple(cats)
        unknown = [c for c in names if c not in pack.category_vectors]
        if unknown:
            raise PackError(
                f"the pack has no category vector for {unknown}",
                hint=f"use some of {pack.categories} or categories=None for the global vector",
            )
        s = replace(s, categories=names)
    if s.uses_gate and s.gate == "target" and pack.gate is None:
        raise PackError(
            "gated / automatic-category steering needs a pack with a gate, and this pack has none",
            hint="use a pack built with a gate, or gated=False with fixed categories",
        )
    if s.uses_gate and s.gate == "source":
        pack.require_source_gate()
        if source_reader is None:
            raise InputError(
                "gate='source' needs the source model's reader",
                hint="attach(..., gate='source', "
                "source_reader=SourceReader.from_spec(pack.source_gate_spec))",
            )
    return s


class _Steering:
    """The state attach leaves on the pipeline (``pipe._safesteer_state``)."""

    def __init__(
        self,
        pipe: Any,
        adapter: TargetAdapter,
        pack: SafetyPack,
        settings: SteeringSettings,
        source_reader: SourceStates | None = None,
    ) -> None:
        self.pipe = pipe
        self.adapter = adapter
        self.pack = pack
        self.settings = settings
        self.source_reader = source_reader
        self.override: contextvars.ContextVar[SteeringSettings | None] = contextvars.ContextVar(
            "safesteer_override", default=None
        )
        self.last: list[PromptSteering] = []
        self.original = pipe.__dict__.get(adapter.encode_method)  # an instance attribute to restore
        self.signature = inspect.signature(getattr(pipe, adapter.encode_method))
        self._vectors: dict[tuple[Any, ...], Tensor] = {}
        # (vectors, alphas) of the last positive call, reused for the negative branch
        self._last_rows: tuple[Tensor, Tensor | float] | None = None
        # two-call families: which encode_prompt call inside one pipeline call is the positive one
        self.encoding_phase = False
        self.calls_in_phase = 0
        self.hooks: list[Any] = []
        self.original_check_inputs = pipe.__dict__.get("check_inputs")

    # ---- vectors -----------------------------------------------------------------------------
    def vector(self, categories: tuple[str, ...], like: Tensor) -> Tensor:
        """The pack's vector for ``categories`` on ``like``'s device and dtype (cached)."""
        key = (categories, like.device, like.dtype)
        v = self._vectors.get(key)
        if v is None:
            v = self.pack.vector(list(categories)).to(device=like.device, dtype=like.dtype)
            self._vectors[key] = v
        return v

    def current(self) -> SteeringSettings:
        return self.override.get() or self.settings

    # ---- the steering itself -----------------------------------------------------------------
    def rows(
        self, states: Tensor, mask: Tensor | None, prompts: list[str] | None, s: SteeringSettings
    ) -> tuple[Tensor, Tensor | float, list[PromptSteering]]:
        """Per-row vectors and strengths for the positive branch, and the record of them."""
        n = states.shape[0]
        names: list[str | None] = [None] * n
        if prompts and n % len(prompts) == 0:  # rows repeat each prompt num_images_per_prompt times
            names = [p for p in prompts for _ in range(n // len(prompts))]
        if not s.gated and s.categories != "auto":
            cats = s.categories if isinstance(s.categories, tuple) else ()
            record = [PromptSteering(p, s.alpha != 0, list(cats), s.alpha) for p in names]
            return self.vector(cats, states), s.alpha, record
        decision = self.decide(states, mask, names, s)
        vectors, alphas, record = [], [], []
        for i in range(n):
            steer = bool(decision.steer[i]) or not s.gated
            if s.categories == "auto":
                cats = tuple(decision.active[i])
            elif isinstance(s.categories, tuple):
                cats = s.categories
            else:
                cats = ()
            a = s.alpha if steer else 0.0
            vectors.append(self.vector(cats, states))
            alphas.append(a)
            scores = {k: float(v[i]) for k, v in decision.scores.items()}
            record.append(PromptSteering(names[i], steer and a != 0, list(cats), a, scores, s.gate))
        alpha_t = torch.tensor(alphas, device=states.device, dtype=states.dtype)
        return torch.stack(vectors), alpha_t, record

    def decide(
        self, states: Tensor, mask: Tensor | None, prompts: list[str | None], s: SteeringSettings
    ) -> GateDecision:
        """The chosen gate's decision per row.

        Target gate: on ``masked_mean`` of the pipeline's unsteered conditioning states.
        Source gate: on the reader's pooled source states ``h_s(x)`` of each row's prompt, at
        the layer of ``pack.source_gate_spec`` (checked against the reader at attach).
        """
        if s.gate == "target":
            gate: Gate | None = self.pack.gate
            assert gate is not None and mask is not None  # checked at attach / computed
            space_states, space_mask = self.adapter.view(states, mask)
            return gate.decide(masked_mean(space_states.float(), space_mask).cpu())
        source_gate, reader = self.pack.source_gate, self.source_reader
        assert source_gate is not None and reader is not None  # checked at attach
        texts = [p for p in prompts if p is not None]
        if len(texts) != len(prompts):
            raise InputError(
                "the source gate reads the prompt text, and this call passed embeddings "
                "(or a prompt count that does not divide the batch)",
                hint="pass prompt=... to the pipeline, or use gate='target'",
            )
        layer = int(self.pack.source_gate_spec["layer"])
        return source_gate.decide(reader.pooled(texts, layer).float().cpu())

    def apply(
        self,
        states: Tensor,
        mask: Tensor | None,
        vectors: Tensor,
        alpha: Tensor | float,
        s: SteeringSettings,
    ) -> Tensor:
        token_mask = mask if s.tokens == "real" else None
        region = self.adapter.region(states)
        if region is not None:
            token_mask = region if token_mask is None else token_mask & region
        return steer_states(states, vectors, alpha, token_mask)

    def steer_output(self, out: Any, arguments: dict[str, Any], positive_call: bool) -> Any:
        s = self.current()
        adapter = self.adapter
        pos_prompts, neg_prompts = adapter.call_prompts(arguments)
        if not positive_call:  # the second call of a two-call family encodes the negative prompt
            if not s.steer_negative or self._last_rows is None:
                return out
            raw, mask = adapter.positive(out)
            new = self._steer_raw(raw, mask, pos_prompts, s, rows=self._last_rows)
            return adapter.replace(out, new, None)
        raw, mask = adapter.positive(out)
        new = self._steer_raw(raw, mask, pos_prompts, s, rows=None)
        negative = None
        if s.steer_negative:
            neg_raw, neg_mask = adapter.negative(out)
            if neg_raw is not None and self._last_rows is not None:
                negative = self._steer_raw(neg_raw, neg_mask, neg_prompts, s, rows=self._last_rows)
        return adapter.replace(out, new, negative)

    def _steer_raw(
        self,
        raw: RawStates,
        mask: Tensor | None,
        prompts: list[str] | None,
        s: SteeringSettings,
        rows: tuple[Tensor, Tensor | float] | None,
    ) -> RawStates:
        need_mask = s.tokens == "real" or (s.uses_gate and s.gate == "target")
        if isinstance(raw, Tensor) and mask is None and not need_mask:
            states, mask = raw, None  # fast path: no mask needed for "all" tokens, ungated
        else:
            states, mask = self.adapter.states_and_mask(raw, mask, prompts if need_mask else None)
        if rows is None:
            vectors, alpha, record = self.rows(states, mask, prompts, s)
            self._last_rows = (vectors, alpha)
            self.last = record
        else:
            vectors, alpha = rows
            if isinstance(alpha, Tensor) and alpha.shape[0] != states.shape[0]:
                return raw  # branch sizes differ (user-made embeddings): leave it alone
        if isinstance(alpha, float) and alpha == 0.0:
            return raw
        steered = self.apply(states, mask, vectors, alpha, s)
        return unpad_states(steered, raw)


def _state(pipe: Any) -> _Steering | None:
    state = pipe.__dict__.get(_STATE_ATTR)
    return state if isinstance(state, _Steering) else None


def _denoiser(pipe: Any) -> Any:
    for name in ("transformer", "unet"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


def attach(
    pipe: Any,
    pack: SafetyPack,
    alpha: float = 1.0,
    *,
    tokens: Tokens = "all",
    steer_negative: bool = False,
    gated: bool = False,
    categories: str | Sequence[str] | None = None,
    adapter: TargetAdapter | None = None,
    gate: GateSide = "target",
    source_reader: SourceStates | None = None,
) -> None:
    """Steer every later ``pipe(prompt=...)`` call with ``pack``: ``ĥ = h + α·v``.

    Args:
        pipe: a diffusers pipeline of a supported family (see :func:`safesteer.adapter_for`).
        pack: a :class:`~safesteer.pack.SafetyPack` fitted on this pipeline's conditioning
            space; refused with :class:`PackError` (naming what fits) otherwise.
        alpha: strength (the paper: 5 for FLUX and Qwen-Image, 3 for Z-Image; 0 = no change).
        tokens: ``"all"`` positions or ``"real"`` tokens only.
        steer_negative: also steer the negative / unconditional branch.
        gated: steer only prompts the pack's gate flags.
        categories: ``None``, a list of category names, or ``"auto"``.
        adapter: an adapter to use instead of :func:`adapter_for`'s choice.
        gate: ``"target"`` (the pack's gate on the pipeline's pooled states) or ``"source"``
            (the pack's source gate on ``source_reader``'s pooled states of the prompts).
        source_reader: a :class:`safesteer.models.SourceReader` matching
            ``pack.source_gate_spec`` (model id, pooling settings, layer range), for
            ``gate="source"``; refused with :class:`PackError` otherwise
            (``SourceReader.from_spec(pack.source_gate_spec)`` builds the right one).

    Example:
        >>> attach(pipe, pack, alpha=5.0, gated=True)  # doctest: +SKIP
        >>> pipe("a photo of a cat"); last_steering(pipe)[0].steered  # doctest: +SKIP
        False
    """
    from safesteer.targets.registry import adapter_for

    if _state(pipe) is not None:
        raise InputError(
            "this pipeline is already steered",
            hint="call safesteer.detach(pipe) first, or use steered(...)",
        )
    if not isinstance(pack, SafetyPack):
        raise PackError(
            f"expected a SafetyPack, got {type(pack).__name__}",
            hint="load one with SafetyPack.load(path)",
        )
    adapter = adapter or adapter_for(pipe, conditioning_space=pack.conditioning_space)
    pack.check_fits(dim=adapter.dim, conditioning_space=adapter.conditioning_space)
    cats: Categories
    if categories is None or categories == "auto":
        cats = categories  # type: ignore[assignment]
    else:
        cats = (categories,) if isinstance(categories, str) else tuple(categories)
    settings = _check_settings(
        pack,
        SteeringSettings(float(alpha), tokens, steer_negative, gated, cats, gate),
        source_reader,
    )
    if source_reader is not None and pack.source_gate is not None:
        pack.check_source_reader(source_reader)  # here, so steered(gate="source") may use it
    state = _Steering(pipe, adapter, pack, settings, source_reader)
    original = getattr(pipe, adapter.encode_method)

    @functools.wraps(original)
    def encode_prompt(*args: Any, **kwargs: Any) -> Any:
        arguments = dict(state.signature.bind_partial(*args, **kwargs).arguments)
        positive_call = True
        if adapter.two_call_cfg and state.encoding_phase:
            state.calls_in_phase += 1
            positive_call = state.calls_in_phase == 1
        # prompts are copied before the call: some pipelines rewrite the list in place
        arguments = {k: (list(v) if isinstance(v, list) else v) for k, v in arguments.items()}
        out = original(*args, **kwargs)
        with torch.no_grad():
            return state.steer_output(out, arguments, positive_call)

    setattr(pipe, adapter.encode_method, encode_prompt)
    if adapter.two_call_cfg:
        check_inputs = pipe.check_inputs

        @functools.wraps(check_inputs)
        def check_inputs_wrapper(*args: Any, **kwargs: Any) -> Any:
            state.encoding_phase, state.calls_in_phase = True, 0  # a pipeline call begins
            return check_inputs(*args, **kwargs)

        def end_phase(module: Any, args: Any) -> None:
            state.encoding_phase = False  # denoising began: later encodes are fresh calls

        pipe.check_inputs = check_inputs_wrapper
        denoiser = _denoiser(pipe)
        if denoiser is not None:
            state.hooks.append(denoiser.register_forward_pre_hook(end_phase))
    # cache the vectors now on the denoiser's device/dtype (the usual states' home)
    denoiser = _denoiser(pipe)
    if denoiser is not None:
        like = torch.empty(0, device=denoiser.device, dtype=denoiser.dtype)
        state.vector(settings.categories if isinstance(settings.categories, tuple) else (), like)
    pipe.__dict__[_STATE_ATTR] = state


def detach(pipe: Any) -> None:
    """Undo :func:`attach`: the pipeline's methods, attributes and hooks are as before."""
    state = _state(pipe)
    if state is None:
        raise InputError(
            "this pipeline is not steered", hint="call safesteer.attach(pipe, pack) first"
        )
    name = state.adapter.encode_method
    if state.original is not None:
        pipe.__dict__[name] = state.original
    else:
        pipe.__dict__.pop(name, None)
    if state.adapter.two_call_cfg:
        if state.original_check_inputs is not None:
            pipe.__dict__["check_inputs"] = state.original_check_inputs
        else:
            pipe.__dict__.pop("check_inputs", None)
    for handle in state.hooks:
        handle.remove()
    del pipe.__dict__[_STATE_ATTR]


def is_steered(pipe: Any) -> bool:
    """Whether :func:`attach` is in effect on ``pipe``."""
    return _state(pipe) is not None


def steering_settings(pipe: Any) -> SteeringSettings | None:
    """The settings in effect now (overrides included), or None if not steered."""
    state = _state(pipe)
    return state.current() if state else None


def last_steering(pipe: Any) -> list[PromptSteering]:
    """Per row of the last call's positive branch: steered or not, categories, strength."""
    state = _state(pipe)
    if state is None:
        raise InputError(
            "this pipeline is not steered", hint="call safesteer.attach(pipe, pack) first"
        )
    return list(state.last)


@contextmanager
def steered(
    pipe: Any,
    pack: SafetyPack | None = None,
    alpha: float | None = None,
    **options: Any,
) -> Iterator[Any]:
    """Steer ``pipe`` inside a ``with`` block.

    On a pipeline not yet steered: attach ``pack`` for the block and detach after. On one
    already attached (``pack`` None or the same pack): override ``alpha`` and the other
    options (``tokens``, ``steer_negative``, ``gated``, ``categories``, ``gate``; the source
    reader is the one given to :func:`attach`) for calls made inside
    the block only (a context variable, so threads and async tasks do not see each other's).

    Example:
        >>> attach(pipe, pack, alpha=5.0)  # doctest: +SKIP
        >>> with steered(pipe, alpha=0.0):  # doctest: +SKIP
        ...     baseline = pipe("a photo of a cat")
    """
    state = _state(pipe)
    if state is None:
        if pack is None:
            raise InputError("steered(pipe) on a pipeline that is not attached needs a pack")
        attach(pipe, pack, 1.0 if alpha is None else alpha, **options)
        try:
            yield pipe
        finally:
            detach(pipe)
        return
    if pack is not None and pack is not state.pack:
        raise InputError(
            "this pipeline is attached to another pack",
            hint="detach(pipe) first, or pass the attached pack",
        )
    unknown = set(options) - {"tokens", "steer_negative", "gated", "categories", "gate"}
    if unknown:
        raise InputError(f"unknown steering options {sorted(unknown)}")
    changes: dict[str, Any] = dict(options)
    if alpha is not None:
        changes["alpha"] = float(alpha)
    cats = changes.get("categories")
    if cats is not None and cats != "auto":
        changes["categories"] = tuple([cats] if isinstance(cats, str) else cats)
    settings = _check_settings(state.pack, replace(state.current(), **changes), state.source_reader)
    token = state.override.set(settings)
    try:
        yield pipe
    finally:
        state.override.reset(token)
