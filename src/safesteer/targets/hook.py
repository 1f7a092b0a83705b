"""The pack on the denoiser: a forward pre-hook that adds ``α·v`` once per pipeline call.

How :func:`safesteer.attach` steers (the design and its reasons: ``docs/integration.md``):

- **Where.** A :class:`SteeringHook` is a forward pre-hook (``register_forward_pre_hook``,
  with keyword arguments) on the pipeline's denoiser(s) (``transformer``, ``transformer_2``,
  ``unet``). Not diffusers' ``HookRegistry``: that one replaces ``module.forward``, which
  accelerate's model offload also replaces and restores after every call (dropping a hook
  registered after it), and forward pre-hooks registered by others would see the input
  unsteered. Steering is a property of the denoiser, like a LoRA: every pipeline that holds the
  same module
  (``from_pipe``, ``AutoPipelineForImage2Image.from_pipe``, ``Cls(**pipe.components)``) is
  steered, and :func:`safesteer.detach` un-steers them all.
- **What.** At the denoiser's input, on the rows of the prompt (positive) branch:
  ``ĥ = h + α·v`` (:func:`safesteer.maths.steering.steer_states`), or with
  ``rule="to-projection"`` ``ĥ = h + α·max(0, τ − ⟨h̄, v̂⟩)·v̂`` per row (the same add, with the
  unit vector and a per-row strength). Each distinct conditioning
  tensor is steered once per pipeline call and the same steered object is passed at every step.
- **Which rows.** An *observer* of the pipeline class's own ``encode_prompt`` records, per call,
  which tensor is the positive branch, its real-token mask and its text (a *plan*); it never
  changes what ``encode_prompt`` returns. So embeddings from ``pipe.encode_prompt(...)`` are
  unsteered, and passing them back as ``prompt_embeds=`` is steered exactly once, with the same
  gate decision as the text (the plan of a tensor ``encode_prompt`` returned is remembered).
- **Fail closed.** A steered denoiser called outside an observed pipeline call raises
  :class:`~safesteer.errors.SteeringError`, and so does a call whose plan never reached the
  denoiser (e.g. another hook manager replaced its forward), or whose prompt rows were not found
  among the denoiser's inputs. ``save_pretrained`` of the pipeline or of the denoiser refuses
  while steered (:mod:`safesteer.targets.saving` saves steered folders).

The observer is installed on the pipeline classes compatible with the attached one
(:func:`safesteer.targets.registry.compatible_classes`) while any hook is live, and removed when
the last one is detached. It does nothing for a pipeline whose denoiser carries no hook.

Example:
    >>> import torch
    >>> from safesteer import SafetyPack, attach, detach, tiny_pipeline
    >>> pipe = tiny_pipeline("sd")  # RANDOM weights
    >>> attach(pipe, SafetyPack(torch.ones(32), {}, "tiny-sd", "sd/clip", {}), alpha=2.0)
    >>> type(steering_hook(pipe)).__name__
    'SteeringHook'
    >>> embeds = pipe.encode_prompt("a cat", "cpu", 1, False)[0]  # unsteered: plain states
    >>> detach(pipe); steering_hook(pipe) is None
    True
"""

from __future__ import annotations

import contextvars
import copy
import functools
import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from safesteer.errors import InputError, SteeringError
from safesteer.maths.gating import Gate, GateDecision
from safesteer.maths.pooling import masked_mean
from safesteer.maths.steering import projection_shift, steer_states
from safesteer.pack import SafetyPack
from safesteer.targets.base import RawStates, TargetAdapter
from safesteer.targets.settings import (
    PROJECTION_TAU,
    PromptSteering,
    SourceStates,
    SteeringSettings,
)

#: pipeline attributes that hold a denoiser (Wan 2.2 has two experts)
DENOISER_NAMES = ("transformer", "transformer_2", "unet")

_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "safesteer_scope", default=None
)
_IN_ENCODE: contextvars.ContextVar[bool] = contextvars.ContextVar("safesteer_encode", default=False)
_SAVING: contextvars.ContextVar[bool] = contextvars.ContextVar("safesteer_saving", default=False)
#: hooks registered on some denoiser now; the class observers stay installed while any is
_LIVE: weakref.WeakSet[SteeringHook] = weakref.WeakSet()
#: (class, attribute) -> the class's own attribute before the observer replaced it
_PATCHED: dict[tuple[type, str], Any] = {}


def denoisers(pipe: Any) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of each denoiser the pipeline holds."""
    found = []
    for name in DENOISER_NAMES:
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            found.append((name, module))
    return found


def module_hook(module: Any) -> SteeringHook | None:
    """The safesteer hook registered on ``module``, if any."""
    for hook in getattr(module, "_forward_pre_hooks", {}).values():
        if isinstance(hook, SteeringHook):
            return hook
    return None


def steering_hook(pipe: Any) -> SteeringHook | None:
    """The hook steering ``pipe`` (found on its denoiser), or None when it is not steered."""
    for _, module in denoisers(pipe):
        hook = module_hook(module)
        if hook is not None:
            return hook
    return None


# ---- plans ---------------------------------------------------------------------------------
@dataclass
class Branch:
    """One branch's conditioning as ``encode_prompt`` returned it, and what we know of it.

    ``mask_source`` says where the gate's mask comes from (:data:`~.settings.GATE_MASKS`).
    """

    raw: RawStates
    mask: Tensor | None
    prompts: list[str] | None
    mask_source: str


@dataclass
class Rows:
    """The positive branch's steering, decided once per call: per-row vectors and strengths."""

    vectors: Tensor  # [D] or [B, D]
    alpha: Tensor | float  # float or [B]
    token_mask: Tensor | None  # [B, T] for tensors (None: every position)
    rows: int


def _same(a: Tensor, b: Tensor) -> bool:
    """``a`` is ``b``, or holds the same values (a copy, or a dtype/device cast of it)."""
    if a is b:
        return True
    if a.shape != b.shape:
        return False
    return bool(torch.equal(a, b.to(device=a.device, dtype=a.dtype)))


class Scope:
    """One observed pipeline call: its encodes in order, the plans, and the steered inputs."""

    def __init__(
        self, pipe: Any, hook: SteeringHook, adapter: TargetAdapter, call_embeds: Any
    ) -> None:
        self.pipe = pipe
        self.hook = hook
        self.adapter = adapter
        self.settings = hook.current()
        self.call_embeds = call_embeds  # the call's prompt_embeds (used when no encode ran)
        self.encodes = 0
        self.positive: Branch | None = None
        self.negative: Branch | None = None
        self.applied = False  # the denoiser ran through the hook
        self.found = False  # the positive rows were found among its inputs
        self._rows: Rows | None = None
        self._negative_mask: tuple[Tensor | None] | None = None
        self._memo: dict[Any, tuple[Any, Any]] = {}

    # -- decided once per call --
    def rows(self) -> Rows:
        if self._rows is None:
            assert self.positive is not None
            self._rows = self.hook.decide_rows(self.adapter, self.positive, self.settings)
        return self._rows

    def negative_token_mask(self) -> Tensor | None:
        if self._negative_mask is None:
            neg = self.negative
            mask = None
            if neg is not None and isinstance(neg.raw, Tensor):
                mask = self.hook.token_mask(self.adapter, neg, self.settings)
            self._negative_mask = (mask,)
        return self._negative_mask[0]

    def ensure_positive(self) -> Branch:
        if self.positive is None and self.call_embeds is not None:
            # the pipeline took the caller's embeddings without calling encode_prompt (Z-Image)
            known = self.hook.known_prompts(self.call_embeds)
            self.positive = self.hook.branch(self.call_embeds, None, known)
        if self.positive is None:
            raise SteeringError(
                f"{type(self.pipe).__name__} ran its steered denoiser before safesteer saw its "
                "prompt encoded",
                hint="call the pipeline with prompt= or prompt_embeds=; custom pipelines must "
                "encode through their encode_prompt",
            )
        return self.positive

    # -- the denoiser side --
    def steer(self, value: Any) -> Any:
        key: Any = tuple(id(t) for t in value) if isinstance(value, list) else id(value)
        hit = self._memo.get(key)
        if hit is None:
            out = self._steer_list(value) if isinstance(value, list) else self._steer(value)
            hit = (out, value)  # keep `value` alive so its id stays unique within the call
            self._memo[key] = hit
        return hit[0]

    def _apply(self, x: Tensor, token_mask: Tensor | None, rows: Rows) -> Tensor:
        if isinstance(rows.alpha, float) and rows.alpha == 0.0:
            return x
        if token_mask is not None:
            token_mask = token_mask.to(x.device)
        return steer_states(x, self.hook.vector_like(rows.vectors, x), rows.alpha, token_mask)

    def _steer_negative(self, x: Tensor, rows: Rows) -> Tensor:
        if not self.settings.steer_negative:
            return x
        if isinstance(rows.alpha, Tensor) and rows.alpha.shape[0] != x.shape[0]:
            return x  # branch sizes differ (the caller's own embeddings): leave it alone
        if rows.vectors.ndim == 2 and rows.vectors.shape[0] != x.shape[0]:
            return x
        mask = self.negative_token_mask()
        if mask is not None and mask.shape != x.shape[:2]:
            return x
        if mask is None and self.settings.tokens == "real":
            return x  # no text for the negative rows: their real tokens are unknown
        return self._apply(x, mask, rows)

    def _steer(self, value: Tensor) -> Tensor:
        pos = self.ensure_positive().raw
        if not isinstance(pos, Tensor):
            raise SteeringError(
                f"{type(self.pipe).__name__} encoded a list of states but its denoiser received "
                "one tensor",
                hint="this pipeline class is not supported by its family's adapter",
            )
        rows = self.rows()
        b, n = pos.shape[0], value.shape[0]
        if _same(value, pos):
            self.found = True
            return self._apply(value, rows.token_mask, rows)
        if n > b and _same(value[n - b :], pos):  # one CFG batch: [negative; positive]
            self.found = True
            steered = self._apply(value[n - b :], rows.token_mask, rows)
            negative = self._steer_negative(value[: n - b], rows)
            if steered is value[n - b :] and negative is value[: n - b]:
                return value
            return torch.cat([negative, steered])
        neg = self.negative
        if neg is not None and isinstance(neg.raw, Tensor) and _same(value, neg.raw):
            return self._steer_negative(value, rows)  # the negative call of a two-call family
        return value

    def _steer_list(self, value: list[Tensor]) -> list[Tensor]:
        pos = self.ensure_positive().raw
        if not isinstance(pos, list):
            raise SteeringError(
                f"{type(self.pipe).__name__} encoded one tensor but its denoiser received a list",
                hint="this pipeline class is not supported by its family's adapter",
            )
        rows = self.rows()
        neg = self.negative.raw if self.negative is not None else None
        neg_list = neg if isinstance(neg, list) else []
        pos_of = _locate(value, pos)
        neg_of = _locate(value, neg_list) if self.settings.steer_negative else {}
        if pos_of:
            self.found = True
        out = []
        for j, t in enumerate(value):
            if j in pos_of:
                out.append(self._apply_row(t, pos_of[j], rows))
            elif j in neg_of and len(neg_list) == rows.rows:
                out.append(self._apply_row(t, neg_of[j], rows))
            else:
                out.append(t)
        return out

    def _apply_row(self, t: Tensor, i: int, rows: Rows) -> Tensor:
        """Row ``i``'s ``α·v`` on one ``[T_i, D]`` element (all its positions are real tokens)."""
        alpha = rows.alpha if isinstance(rows.alpha, float) else rows.alpha[i : i + 1]
        if isinstance(alpha, float) and alpha == 0.0:
            return t
        vectors = rows.vectors if rows.vectors.ndim == 1 else rows.vectors[i : i + 1]
        return steer_states(t[None], self.hook.vector_like(vectors, t), alpha)[0]


def _locate(value: Sequence[Tensor], plan: Sequence[Tensor]) -> dict[int, int]:
    """For each element of ``value`` that is an element of ``plan``: its index there.

    By identity first (the pipeline passes the same objects, repeated per image); by equal
    values only when nothing matched by identity (a copy made by an offload hook).
    """
    ids = {id(t): i for i, t in enumerate(plan)}
    found = {j: ids[id(t)] for j, t in enumerate(value) if id(t) in ids}
    if found or not plan:
        return found
    for j, t in enumerate(value):
        for i, p in enumerate(plan):
            if _same(t, p):
                found[j] = i
                break
    return found


# ---- the hook --------------------------------------------------------------------------------
class SteeringHook:
    """Adds the pack's ``α·v`` at the denoiser input (see the module docstring).

    One instance per :func:`safesteer.attach`, registered on every denoiser of the pipeline. It
    holds the pack, the settings (plus per-call overrides from :func:`safesteer.steered`), the
    adapter of the attached pipeline (copied, with its ``pipe`` swapped, for pipelines that share
    the denoiser) and the record of the last call (:func:`safesteer.last_steering`).
    """

    def __init__(
        self,
        pack: SafetyPack,
        settings: SteeringSettings,
        adapter: TargetAdapter | None = None,
        *,
        source_reader: SourceStates | None = None,
        adapter_factory: Callable[[Any], TargetAdapter] | None = None,
        encoding: dict[str, Any] | None = None,
    ) -> None:
        self.pack = pack
        self.settings = settings
        self.source_reader = source_reader
        self.adapter = adapter
        self.adapter_factory = adapter_factory
        self.override: contextvars.ContextVar[SteeringSettings | None] = contextvars.ContextVar(
            "safesteer_override", default=None
        )
        self.last: list[PromptSteering] = []
        #: how the attached pipeline encodes prompts (adapter.encoding_attributes); another
        #: pipeline sharing the denoiser must encode the same way
        self.encoding: dict[str, Any] = dict(encoding or {})
        if adapter is not None and adapter.pipe is not None and not self.encoding:
            self.encoding = _encoding_of(adapter, adapter.pipe)
        self.handles: list[tuple[torch.nn.Module, Any]] = []
        self.classes: list[type] = []
        self._adapters: weakref.WeakKeyDictionary[Any, TargetAdapter] = weakref.WeakKeyDictionary()
        if adapter is not None and adapter.pipe is not None:
            self._adapters[adapter.pipe] = adapter
        self._vectors: dict[tuple[Any, ...], Tensor] = {}
        self._known: dict[int, tuple[weakref.ref[Tensor], list[str] | None]] = {}

    def __repr__(self) -> str:
        return (
            f"SteeringHook(space={self.pack.conditioning_space!r}, alpha={self.settings.alpha:g}, "
            f"gated={self.settings.gated})"
        )

    def current(self) -> SteeringSettings:
        """The settings in effect now (a :func:`safesteer.steered` override, else attach's)."""
        return self.override.get() or self.settings

    # -- adapters per pipeline --
    def adapter_for(self, pipe: Any) -> TargetAdapter:
        """The adapter for ``pipe`` (a pipeline sharing the denoiser: a copy bound to it)."""
        found = self._adapters.get(pipe)
        if found is not None:
            return found
        if self.adapter is None:
            if self.adapter_factory is None:  # pragma: no cover - every hook gets one or other
                raise SteeringError("this steering hook has no adapter")
            token = _IN_ENCODE.set(True)  # the adapter's own probe encode is not a user call
            try:
                adapter = self.adapter_factory(pipe)
                self.pack.check_fits(dim=adapter.dim, conditioning_space=adapter.conditioning_space)
            finally:
                _IN_ENCODE.reset(token)
            self.adapter = adapter
            self.encoding = self.encoding or _encoding_of(adapter, pipe)
        else:
            adapter = copy.copy(self.adapter)
            adapter.pipe = pipe
        mismatch = {
            k: (getattr(pipe, k, None), v)
            for k, v in self.encoding.items()
            if getattr(pipe, k, None) != v
        }
        if mismatch:
            raise SteeringError(
                f"{type(pipe).__name__} shares a steered denoiser but encodes prompts unlike the "
                f"pipeline the pack was attached to ("
                + "; ".join(f"{k} {got!r} vs {want!r}" for k, (got, want) in mismatch.items())
                + ")",
                hint="the pack was fitted on another conditioning space; detach and use a pack "
                "built for this pipeline",
            )
        self._adapters[pipe] = adapter
        return adapter

    # -- vectors --
    def vector(self, categories: tuple[str, ...], like: Tensor) -> Tensor:
        """The pack's vector for ``categories`` on ``like``'s device and dtype (cached)."""
        key = (categories, like.device, like.dtype)
        v = self._vectors.get(key)
        if v is None:
            v = self.pack.vector(list(categories)).to(device=like.device, dtype=like.dtype)
            self._vectors[key] = v
        return v

    def unit_vector(self, like: Tensor) -> Tensor:
        """The pack's global vector over its norm, ``v̂``, on ``like``'s device and dtype."""
        key = ("unit", like.device, like.dtype)
        v = self._vectors.get(key)
        if v is None:
            g = self.pack.global_vector.double()
            v = (g / torch.linalg.vector_norm(g)).to(device=like.device, dtype=like.dtype)
            self._vectors[key] = v
        return v

    @staticmethod
    def vector_like(vectors: Tensor, like: Tensor) -> Tensor:
        return vectors.to(device=like.device, dtype=like.dtype)

    # -- plans --
    def remember(self, raw: RawStates, prompts: list[str] | None) -> None:
        """Note the prompts of states ``encode_prompt`` returned, so passing them back as
        ``prompt_embeds`` is gated like their text."""
        if isinstance(raw, Tensor):
            self._remember_one(raw, prompts)
        elif prompts is not None and len(prompts) == len(raw):
            for t, p in zip(raw, prompts, strict=True):
                self._remember_one(t, [p])

    def _remember_one(self, t: Tensor, prompts: list[str] | None) -> None:
        key = id(t)
        known = self._known

        def forget(_: Any, key: int = key) -> None:
            known.pop(key, None)

        known[key] = (weakref.ref(t, forget), prompts)

    def known_prompts(self, given: Any) -> list[str] | None:
        """The prompts of embeddings an observed ``encode_prompt`` returned, else None."""
        if isinstance(given, Tensor):
            hit = self._known.get(id(given))
            return hit[1] if hit is not None and hit[0]() is given else None
        if isinstance(given, list | tuple) and given:
            texts: list[str] = []
            for t in given:
                hit = self._known.get(id(t)) if isinstance(t, Tensor) else None
                if hit is None or hit[0]() is not t or not hit[1]:
                    return None
                texts += hit[1]
            return texts
        return None

    def branch(self, raw: RawStates, mask: Tensor | None, prompts: list[str] | None) -> Branch:
        if prompts is not None:
            source = "real tokens"
        elif mask is not None or isinstance(raw, list):
            source = "pipeline mask"
        else:
            source = "all positions"
        return Branch(raw, mask, prompts, source)

    def observe(self, pipe: Any, arguments: dict[str, Any], out: Any) -> None:
        """Record what one ``encode_prompt`` call returned (never changes it)."""
        scope = _SCOPE.get()
        if scope is not None and scope.pipe is not pipe:
            scope = None  # another pipeline's call: a direct encode as far as we know
        adapter = scope.adapter if scope is not None else self.adapter_for(pipe)
        self.check_call(adapter, arguments)
        prompts, negative_prompts = adapter.call_prompts(arguments)
        raw, mask = adapter.positive(out)
        given = arguments.get("prompt_embeds")
        if prompts is None and given is not None:
            prompts = self.known_prompts(given)
        if scope is not None and adapter.two_call_cfg:
            scope.encodes += 1
            if scope.encodes > 1:  # FLUX / Qwen: the 2nd encode of a call is the negative one
                scope.negative = self.branch(raw, mask, prompts)
                return
        self.remember(raw, prompts)
        if scope is None:
            return
        scope.positive = self.branch(raw, mask, prompts)
        neg_raw, neg_mask = adapter.negative(out)
        if neg_raw is not None:
            scope.negative = self.branch(neg_raw, neg_mask, negative_prompts)

    def check_call(self, adapter: TargetAdapter, arguments: dict[str, Any]) -> None:
        """Per-call encoding check: an ``encode_prompt`` call that passes a
        ``max_sequence_length`` other than the pack's is refused naming both (a pipeline call
        that passes none gets the pack's, set by the ``__call__`` observer)."""
        from safesteer.targets.encoding import call_length

        asked = arguments.get("max_sequence_length")
        if asked is not None:
            call_length(self.pack.encoding, asked, None)

    # -- decisions --
    def token_mask(
        self, adapter: TargetAdapter, branch: Branch, s: SteeringSettings
    ) -> Tensor | None:
        """Positions to steer on a tensor branch: real tokens (``tokens="real"``) ∩ the
        adapter's region (SD3's T5 part); None for every position."""
        raw = branch.raw
        assert isinstance(raw, Tensor)
        mask = None
        if s.tokens == "real":
            _, mask = adapter.states_and_mask(raw, branch.mask, branch.prompts)
        region = adapter.region(raw)
        if region is not None:
            mask = region if mask is None else mask & region
        return mask

    def decide_rows(self, adapter: TargetAdapter, pos: Branch, s: SteeringSettings) -> Rows:
        """Per-row vectors and strengths of the positive branch, and the call's record.

        With ``rule="to-projection"`` the vector is the pack's unit global vector and each row's
        strength its move ``α·max(0, τ − ⟨h̄, v̂⟩)`` (:meth:`projection_shifts`).
        """
        to_projection = s.rule == "to-projection"
        need_mask = (s.uses_gate and s.gate == "target") or to_projection
        if isinstance(pos.raw, Tensor) and pos.mask is None and not need_mask:
            states, mask = pos.raw, None  # fast path: no mask needed, ungated
        else:
            states, mask = adapter.states_and_mask(pos.raw, pos.mask, pos.prompts)
        n = states.shape[0]
        names: list[str | None] = [None] * n
        prompts = pos.prompts
        if prompts and n % len(prompts) == 0:  # rows repeat each prompt per image
            names = [p for p in prompts for _ in range(n // len(prompts))]
        token_mask = self.token_mask(adapter, pos, s) if isinstance(pos.raw, Tensor) else None
        if not s.uses_gate and not to_projection:
            cats = s.categories if isinstance(s.categories, tuple) else ()
            self.last = [PromptSteering(p, s.alpha != 0, list(cats), s.alpha) for p in names]
            return Rows(self.vector(cats, states), s.alpha, token_mask, n)
        decision = self.decide(adapter, states, mask, names, s) if s.uses_gate else None
        gate_mask = pos.mask_source if decision is not None and s.gate == "target" else None
        shifts = None
        if to_projection:
            assert mask is not None  # states_and_mask ran
            shifts = self.projection_shifts(adapter, states, mask, s.alpha).tolist()
        vectors, alphas, record = [], [], []
        for i in range(n):
            flagged = None if decision is None else bool(decision.steer[i])
            steer = bool(flagged) or not s.gated
            if decision is not None and s.categories == "auto":
                cats = tuple(decision.active[i])
            elif isinstance(s.categories, tuple):
                cats = s.categories
            else:
                cats = ()
            a = s.alpha if steer else 0.0
            shift = None if shifts is None else (shifts[i] if steer else 0.0)
            applied = a if shift is None else shift  # the multiple of the row's vector added
            vectors.append(self.unit_vector(states) if to_projection else self.vector(cats, states))
            alphas.append(applied)
            scores = (
                {} if decision is None else {k: float(v[i]) for k, v in decision.scores.items()}
            )
            record.append(
                PromptSteering(
                    names[i],
                    steer and applied != 0,
                    list(cats),
                    a,
                    scores,
                    None if decision is None else s.gate,
                    gate_mask,
                    flagged,
                    s.rule,
                    shift,
                )
            )
        self.last = record
        alpha_t = torch.tensor(alphas, device=states.device, dtype=states.dtype)
        return Rows(torch.stack(vectors), alpha_t, token_mask, n)

    def pooled_rows(self, adapter: TargetAdapter, states: Tensor, mask: Tensor) -> Tensor:
        """Pooled states ``h̄`` ``[B, D]`` of the rows as the target gate and the pack's anchors
        pool them: the mean over the real tokens of the pack's space (``adapter.view``)."""
        space_states, space_mask = adapter.view(states, mask)
        return masked_mean(space_states.float(), space_mask).cpu()

    def projection_shifts(
        self, adapter: TargetAdapter, states: Tensor, mask: Tensor, alpha: float
    ) -> Tensor:
        """``α·max(0, τ − ⟨h̄_b, v̂⟩)`` per row for the ``"to-projection"`` rule (float64 [B])."""
        tau = float(self.pack.calibration[PROJECTION_TAU])
        pooled = self.pooled_rows(adapter, states, mask).double()
        return projection_shift(pooled, self.pack.global_vector.double(), tau, alpha)

    def decide(
        self,
        adapter: TargetAdapter,
        states: Tensor,
        mask: Tensor | None,
        prompts: list[str | None],
        s: SteeringSettings,
    ) -> GateDecision:
        """The chosen gate's decision per row.

        Target gate: on ``masked_mean`` of the pipeline's unsteered conditioning states (the
        same states and mask for a prompt's text and for its embeddings passed back). Source
        gate: on the reader's pooled source states ``h_s(x)`` of each row's prompt, at the layer
        of ``pack.source_gate_spec`` (checked against the reader at attach).
        """
        if s.gate == "target":
            gate: Gate | None = self.pack.gate
            assert gate is not None and mask is not None  # checked at attach / computed
            return gate.decide(self.pooled_rows(adapter, states, mask))
        source_gate, reader = self.pack.source_gate, self.source_reader
        assert source_gate is not None and reader is not None  # checked at attach
        texts = [p for p in prompts if p is not None]
        if len(texts) != len(prompts):
            raise InputError(
                "the source gate reads the prompt text, and this call passed embeddings "
                "safesteer did not see come out of this pipeline's encode_prompt",
                hint="pass prompt=..., or embeddings from pipe.encode_prompt, or use gate='target'",
            )
        layer = int(self.pack.source_gate_spec["layer"])
        return source_gate.decide(reader.pooled(texts, layer).float().cpu())

    # -- the forward pre-hook --
    def __call__(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        scope = _SCOPE.get()
        if scope is None:
            raise SteeringError(
                f"a steered {type(module).__name__} ran outside a pipeline call that safesteer "
                "observes (a pipeline class its adapter does not serve, or a direct call)",
                hint="call a pipeline of the attached family, or safesteer.detach(pipe) first",
            )
        name, index = scope.adapter.denoiser_input
        with torch.no_grad():
            if name in kwargs:
                kwargs[name] = scope.steer(kwargs[name])
            elif index is not None and len(args) > index:
                args = (*args[:index], scope.steer(args[index]), *args[index + 1 :])
            else:
                raise SteeringError(
                    f"{type(module).__name__} was called without {name!r}: safesteer cannot find "
                    "the prompt's conditioning",
                    hint="this denoiser is not served by the pack's family adapter",
                )
        scope.applied = True
        return args, kwargs


def _encoding_of(adapter: TargetAdapter, pipe: Any) -> dict[str, Any]:
    return {k: getattr(pipe, k, None) for k in adapter.encoding_attributes}


def _with_pack_length(
    hook: SteeringHook, signature: inspect.Signature, pipe: Any, args: Any, kwargs: Any
) -> dict[str, Any]:
    """``kwargs`` with ``max_sequence_length`` set to the pack's recorded length when the call
    passes none; a different length is refused naming both
    (:func:`safesteer.targets.encoding.call_length`)."""
    from safesteer.targets.encoding import call_length

    asked = signature.bind_partial(pipe, *args, **kwargs).arguments.get("max_sequence_length")
    length = call_length(hook.pack.encoding, asked, None)
    if length is None or length == asked:
        return dict(kwargs)
    return {**kwargs, "max_sequence_length": length}  # asked is None: not passed positionally


# ---- the class observers ------------------------------------------------------------------
def _observed_call(call: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(call)

    @functools.wraps(call)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        hook = steering_hook(self)
        outer = _SCOPE.get()
        if hook is None or (outer is not None and outer.pipe is self):
            return call(self, *args, **kwargs)
        embeds = None
        if "prompt_embeds" in signature.parameters:
            bound = signature.bind_partial(self, *args, **kwargs).arguments
            embeds = bound.get("prompt_embeds")
        if "max_sequence_length" in signature.parameters:  # encode at the pack's length
            kwargs = _with_pack_length(hook, signature, self, args, kwargs)
        scope = Scope(self, hook, hook.adapter_for(self), embeds)
        token = _SCOPE.set(scope)
        try:
            out = call(self, *args, **kwargs)
        finally:
            _SCOPE.reset(token)
        if scope.positive is not None and not scope.applied:
            raise SteeringError(
                f"safesteer planned steering for this {type(self).__name__} call but the "
                "denoiser never ran through its hook (it was replaced or wrapped after attach)",
                hint="detach and attach again on the pipeline you call",
            )
        if scope.applied and not scope.found:
            raise SteeringError(
                f"safesteer did not find the prompt's states among the inputs of the steered "
                f"denoiser in this {type(self).__name__} call; the images are unsteered",
                hint="this pipeline class changes the states after encode_prompt; detach it or "
                "report the class",
            )
        return out

    __call__._safesteer_original = call  # type: ignore[attr-defined]
    return __call__


def _observed_encode(encode: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(encode)

    @functools.wraps(encode)
    def encode_prompt(self: Any, *args: Any, **kwargs: Any) -> Any:
        hook = steering_hook(self)
        if hook is None or _IN_ENCODE.get():
            return encode(self, *args, **kwargs)
        bound = signature.bind_partial(self, *args, **kwargs).arguments
        # copied before the call: some pipelines rewrite the prompt list in place (Z-Image)
        arguments = {
            k: (list(v) if isinstance(v, list) else v) for k, v in bound.items() if k != "self"
        }
        token = _IN_ENCODE.set(True)
        try:
            out = encode(self, *args, **kwargs)
        finally:
            _IN_ENCODE.reset(token)
        with torch.no_grad():
            hook.observe(self, arguments, out)
        return out  # unchanged: states leaving encode_prompt are never steered

    encode_prompt._safesteer_original = encode  # type: ignore[attr-defined]
    return encode_prompt


def _guarded_save(save: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(save)
    def save_pretrained(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _SAVING.get() and steering_hook(self) is not None:
            raise SteeringError(
                f"this {type(self).__name__} is steered by safesteer; save_pretrained would write "
                "it unsteered (nothing was written)",
                hint="use safesteer.save_pretrained(pipe, folder) to save it steered, or "
                "safesteer.detach(pipe) first to save the plain pipeline",
            )
        return save(self, *args, **kwargs)

    save_pretrained._safesteer_original = save  # type: ignore[attr-defined]
    return save_pretrained


def _patch(cls: type, name: str, wrap: Callable[[Any], Any]) -> None:
    owner = next((c for c in cls.__mro__ if name in c.__dict__), None)
    if owner is None or (owner, name) in _PATCHED:
        return
    original = owner.__dict__[name]
    _PATCHED[(owner, name)] = original
    setattr(owner, name, wrap(original))


def install(classes: Iterable[type]) -> None:
    """Observe ``encode_prompt`` and ``__call__`` of ``classes``; guard pipeline saves."""
    from diffusers import DiffusionPipeline

    for cls in classes:
        _patch(cls, "encode_prompt", _observed_encode)
        _patch(cls, "__call__", _observed_call)
    _patch(DiffusionPipeline, "save_pretrained", _guarded_save)


def _uninstall_if_idle() -> None:
    """Put every patched class attribute back once no hook is live."""
    if len(_LIVE):
        return
    for (owner, name), original in list(_PATCHED.items()):
        setattr(owner, name, original)
    _PATCHED.clear()


def _module_guard(module: torch.nn.Module) -> Callable[..., Any]:
    save = type(module).save_pretrained  # type: ignore[attr-defined]
    ref = weakref.ref(module)

    def save_pretrained(*args: Any, **kwargs: Any) -> Any:
        target = ref()
        if not _SAVING.get() and target is not None and module_hook(target) is not None:
            raise SteeringError(
                f"this {type(target).__name__} is steered by safesteer; save_pretrained would "
                "write it unsteered (nothing was written)",
                hint="use safesteer.save_pretrained(pipe, folder), or safesteer.detach(pipe) first",
            )
        return save(target, *args, **kwargs)

    save_pretrained._safesteer_guard = True  # type: ignore[attr-defined]
    return save_pretrained


def register(
    hook: SteeringHook, modules: Sequence[torch.nn.Module], classes: Iterable[type]
) -> None:
    """Put ``hook`` on ``modules`` (the denoisers), guard their saves, observe ``classes``."""
    for module in modules:
        handle = module.register_forward_pre_hook(hook, with_kwargs=True)
        if "save_pretrained" not in module.__dict__:
            module.__dict__["save_pretrained"] = _module_guard(module)
        hook.handles.append((module, handle))
    hook.classes = list(classes)
    _LIVE.add(hook)
    install(hook.classes)


def unregister(hook: SteeringHook) -> None:
    """Undo :func:`register`: the denoisers' hooks and attributes are as before."""
    for module, handle in hook.handles:
        handle.remove()
        if getattr(module.__dict__.get("save_pretrained"), "_safesteer_guard", False):
            del module.__dict__["save_pretrained"]
    hook.handles = []
    _LIVE.discard(hook)
    _uninstall_if_idle()


@contextmanager
def saving() -> Iterator[None]:
    """Lift the save guards inside this block (for :func:`safesteer.save_pretrained`)."""
    token = _SAVING.set(True)
    try:
        yield
    finally:
        _SAVING.reset(token)
