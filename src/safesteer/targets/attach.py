"""Steer a pipeline in place: ``attach`` / ``detach`` / ``steered``.

:func:`attach` puts the pack on the pipeline's **denoiser** as a forward pre-hook
(:mod:`safesteer.targets.hook`; the design: ``docs/integration.md``), so the user's usual
``pipe(prompt=...)`` is steered: ``ĥ = h + α·v`` on the prompt's conditioning states
(:func:`safesteer.maths.steering.steer_states`), added at the denoiser's input once per call
(the vector is constant across steps). What follows from it:

- pipelines that share the denoiser are steered too (``from_pipe``,
  ``AutoPipelineForImage2Image.from_pipe``, variants of the family such as
  ``FluxImg2ImgPipeline``), and :func:`detach` un-steers them all;
- ``pipe.encode_prompt(...)`` returns **unsteered** states; a call is steered exactly once
  whether it passes ``prompt=`` or ``prompt_embeds=``, and the target gate scores embeddings
  that came from this pipeline's ``encode_prompt`` exactly like their text;
- ``pipe.save_pretrained`` refuses while steered (nothing is written);
  :func:`safesteer.save_pretrained` writes a folder that reloads steered.

Options:

- ``alpha``: strength; default: the pack's calibrated ``alpha_default`` (the paper's 5 for
  packs built by safesteer);
- ``tokens``: ``"all"`` positions (the paper) or ``"real"`` tokens only (padding untouched);
- ``steer_negative``: also steer the negative / unconditional CFG branch (off by default);
- ``gated``: steer only prompts whose pooled *unsteered* state crosses the pack's benign-fitted
  gate (:meth:`safesteer.maths.gating.Gate.decide`), and record which were steered;
- ``gate``: which gate decides — ``"target"`` (default: the pack's gate on the pipeline's own
  pooled conditioning states) or ``"source"`` [ours] (the pack's source gate on the prompts'
  pooled source states ``h_s(x)``, read by the ``source_reader`` passed to :func:`attach`,
  which must match ``pack.source_gate_spec``; needs the prompt texts);
- ``categories``: ``None`` (global vector), a list (fixed categories, uniform mean), or
  ``"auto"`` (per prompt, the categories the gate finds active; the global vector where none);
- ``rule``: ``"add"`` (the paper: ``ĥ = h + α·v``) or ``"to-projection"`` [ours]
  (``ĥ_t = h_t + α·max(0, τ − ⟨h̄, v̂⟩)·v̂``: each prompt's pooled state h̄ — pooled like the
  target gate pools it — is moved along the global vector up to the pack's benign target
  projection τ, ``calibration["to_projection_tau"]``, and no further; prompts already above τ
  are untouched; :func:`safesteer.maths.steering.steer_to_projection`). Combines with
  ``gated`` (the gate decides which prompts, the rule how far); not with ``categories``.

Per-call overrides of ``alpha`` / ``categories`` / ``gated`` go through :func:`steered`.
:func:`detach` restores the pipeline exactly (same methods, no leftover attributes or hooks).
:func:`last_steering` says what the last call did, per prompt.

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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from safesteer.errors import InputError, PackError
from safesteer.maths.steering import STEERING_RULES, SteeringRule
from safesteer.pack import SafetyPack
from safesteer.targets.base import TargetAdapter
from safesteer.targets.settings import (
    GATE_SIDES,
    TOKENS,
    Categories,
    GateSide,
    PromptSteering,
    SourceStates,
    SteeringSettings,
    Tokens,
    check_settings,
)

__all__ = [
    "GATE_SIDES",
    "STEERING_RULES",
    "TOKENS",
    "GateSide",
    "PromptSteering",
    "SourceStates",
    "SteeringRule",
    "SteeringSettings",
    "Tokens",
    "attach",
    "check_encoding",
    "detach",
    "is_steered",
    "last_steering",
    "steered",
    "steering_settings",
]


def _hook_of(pipe: Any) -> Any:
    from safesteer.targets.hook import steering_hook

    return steering_hook(pipe)


def check_encoding(pack: SafetyPack, adapter: TargetAdapter) -> None:
    """Refuse a pipeline whose conditioning the pack was not fitted on, before anything changes.

    The conditioning space and its dimension D (:meth:`SafetyPack.check_fits`), then the
    pack's encoding record — ``max_sequence_length``, prompt template, text encoders
    (:func:`safesteer.targets.encoding.check_encoding`; packs without a record are not checked).
    """
    from safesteer.targets import encoding

    pack.check_fits(dim=adapter.dim, conditioning_space=adapter.conditioning_space)
    encoding.check_encoding(pack.encoding, adapter)


def attach(
    pipe: Any,
    pack: SafetyPack,
    alpha: float | None = None,
    *,
    tokens: Tokens = "all",
    steer_negative: bool = False,
    gated: bool = False,
    categories: str | Sequence[str] | None = None,
    adapter: TargetAdapter | None = None,
    gate: GateSide = "target",
    source_reader: SourceStates | None = None,
    rule: SteeringRule = "add",
) -> None:
    """Steer every later call of ``pipe`` (and of pipelines sharing its denoiser) with ``pack``.

    Args:
        pipe: a diffusers pipeline of a supported family (see :func:`safesteer.adapter_for`:
            matched by its components, so family variants such as img2img work).
        pack: a :class:`~safesteer.pack.SafetyPack` fitted on this pipeline's conditioning
            space; refused with :class:`PackError` (naming what fits) otherwise.
        alpha: strength; None (default) uses ``pack.alpha_default`` (the paper: 5 for FLUX and
            Qwen-Image, 3 for Z-Image; 0 = no change).
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
        rule: ``"add"`` (default) or ``"to-projection"`` (module docstring; the pack needs
            ``calibration["to_projection_tau"]``, which packs built by safesteer carry).

    Example:
        >>> attach(pipe, pack, gated=True)  # doctest: +SKIP
        >>> pipe("a photo of a cat"); last_steering(pipe)[0].steered  # doctest: +SKIP
        False
    """
    from safesteer.targets import hook as hooks
    from safesteer.targets.registry import adapter_for, compatible_classes

    if _hook_of(pipe) is not None:
        raise InputError(
            "this pipeline is already steered (it, or a pipeline it shares its denoiser with, "
            "was attached)",
            hint="call safesteer.detach(pipe) first, or use steered(...)",
        )
    if not isinstance(pack, SafetyPack):
        raise PackError(
            f"expected a SafetyPack, got {type(pack).__name__}",
            hint="load one with SafetyPack.load(path) or SafetyPack.from_pretrained(repo)",
        )
    from safesteer.targets.encoding import adapter_options

    adapter = adapter or adapter_for(
        pipe, conditioning_space=pack.conditioning_space, **adapter_options(pack.encoding)
    )  # no adapter given: it encodes at the pack's recorded max_sequence_length
    check_encoding(pack, adapter)
    modules = [m for _, m in hooks.denoisers(pipe)]
    if not modules:
        raise InputError(
            f"{type(pipe).__name__} has no denoiser (transformer / unet) to steer",
            hint="pass a diffusers text-to-image or text-to-video pipeline",
        )
    cats: Categories
    if categories is None or categories == "auto":
        cats = categories  # type: ignore[assignment]
    else:
        cats = (categories,) if isinstance(categories, str) else tuple(categories)
    strength = pack.alpha_default if alpha is None else float(alpha)
    settings = check_settings(
        pack,
        SteeringSettings(strength, tokens, steer_negative, gated, cats, gate, rule),
        source_reader,
    )
    if source_reader is not None and pack.source_gate is not None:
        pack.check_source_reader(source_reader)  # here, so steered(gate="source") may use it
    hook = hooks.SteeringHook(pack, settings, adapter, source_reader=source_reader)
    hooks.register(hook, modules, compatible_classes(type(pipe), type(adapter)))


def detach(pipe: Any) -> None:
    """Undo :func:`attach` for ``pipe`` and every pipeline sharing its denoiser: methods,
    attributes and hooks are as before."""
    from safesteer.targets.hook import denoisers, module_hook, unregister

    if _hook_of(pipe) is None:
        raise InputError(
            "this pipeline is not steered", hint="call safesteer.attach(pipe, pack) first"
        )
    for _, module in denoisers(pipe):  # a reloaded folder has one hook per denoiser
        hook = module_hook(module)
        if hook is not None:
            unregister(hook)


def is_steered(pipe: Any) -> bool:
    """Whether ``pipe``'s denoiser carries a safesteer hook (:func:`attach`, or a pipeline it
    shares the denoiser with, or a folder saved steered)."""
    return _hook_of(pipe) is not None


def steering_settings(pipe: Any) -> SteeringSettings | None:
    """The settings in effect now (overrides included), or None if not steered."""
    hook = _hook_of(pipe)
    return hook.current() if hook is not None else None


def last_steering(pipe: Any) -> list[PromptSteering]:
    """Per row of the last call's positive branch: steered or not, categories, strength."""
    hook = _hook_of(pipe)
    if hook is None:
        raise InputError(
            "this pipeline is not steered", hint="call safesteer.attach(pipe, pack) first"
        )
    return list(hook.last)


@contextmanager
def steered(
    pipe: Any,
    pack: SafetyPack | None = None,
    alpha: float | None = None,
    **options: Any,
) -> Iterator[Any]:
    """Steer ``pipe`` inside a ``with`` block.

    On a pipeline not yet steered: attach ``pack`` for the block and detach after (``alpha``
    None: the pack's ``alpha_default``). On one already attached (``pack`` None or the same
    pack): override ``alpha`` and the other options (``tokens``, ``steer_negative``, ``gated``,
    ``categories``, ``gate``, ``rule``; the source reader is the one given to :func:`attach`) for
    calls made inside the block only (a context variable, so threads and async tasks do not see each
    other's).

    Example:
        >>> attach(pipe, pack, alpha=5.0)  # doctest: +SKIP
        >>> with steered(pipe, alpha=0.0):  # doctest: +SKIP
        ...     baseline = pipe("a photo of a cat")
    """
    hook = _hook_of(pipe)
    if hook is None:
        if pack is None:
            raise InputError("steered(pipe) on a pipeline that is not attached needs a pack")
        attach(pipe, pack, alpha, **options)
        try:
            yield pipe
        finally:
            detach(pipe)
        return
    if pack is not None and pack is not hook.pack:
        raise InputError(
            "this pipeline is attached to another pack",
            hint="detach(pipe) first, or pass the attached pack",
        )
    unknown = set(options) - {"tokens", "steer_negative", "gated", "categories", "gate", "rule"}
    if unknown:
        raise InputError(f"unknown steering options {sorted(unknown)}")
    changes: dict[str, Any] = dict(options)
    if alpha is not None:
        changes["alpha"] = float(alpha)
    cats = changes.get("categories")
    if cats is not None and cats != "auto":
        changes["categories"] = tuple([cats] if isinstance(cats, str) else cats)
    settings = check_settings(hook.pack, replace(hook.current(), **changes), hook.source_reader)
    token = hook.override.set(settings)
    try:
        yield pipe
    finally:
        hook.override.reset(token)
