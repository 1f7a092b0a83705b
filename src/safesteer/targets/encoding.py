"""Sequence-length parity: the states a pack is fitted on are the states the denoiser receives.

A pack's vectors and gate are fitted on pooled conditioning states read through the pipeline's
own ``encode_prompt`` (:meth:`~safesteer.targets.base.TargetAdapter.encode`). Those states
depend on more than the prompt: FLUX and Wan run T5 **without** an attention mask, so the padded
length (``max_sequence_length``) changes every real token's state; Qwen-Image and Z-Image wrap
the prompt in a chat template; text encoders differ between checkpoints. The *encoding spec*
pins all of it:

``{"family", "conditioning_space", "max_sequence_length", "template_sha256", "text_encoders"}``

- :func:`encoding_spec` reads it off an adapter; the builders record it in the pack
  (``pack.encoding``; packs written before it existed load with ``{}`` and are not checked);
- :func:`check_encoding` refuses, at attach, an adapter whose spec differs from the pack's,
  naming both values;
- :func:`adapter_options` gives the adapter the pack's ``max_sequence_length`` when the user
  passed none (FLUX.1-schnell packs: 256; the adapter would otherwise pick its family default);
- :func:`call_length` decides the ``max_sequence_length`` of one ``encode_prompt`` call: the
  pack's value when the call passes none or the pipeline ``__call__``'s default, the same value,
  or a refusal.

These functions read only the adapter, its pipeline and the pack's ``encoding`` record; the
steering integration (:mod:`safesteer.targets.attach`) calls them and nothing else.

Example:
    >>> from safesteer.targets import load_pipeline
    >>> pipe, adapter = load_pipeline("tiny-flux")
    >>> spec = encoding_spec(adapter)
    >>> spec["max_sequence_length"], spec["conditioning_space"]
    (16, 'flux/t5')
    >>> call_length(spec, None, 512), call_length(spec, 512, 512), call_length(spec, 16, 512)
    (16, 16, 16)
    >>> call_length(spec, 32, 512)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safesteer.errors.PackError: this call encodes prompts at max_sequence_length=32, but the pack...
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

from safesteer.errors import PackError

#: config keys that do not change a text encoder's outputs (versions, dtypes, paths)
_VOLATILE = {"transformers_version", "torch_dtype", "dtype", "architectures", "use_cache"}


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _config_hash(config: Any) -> str | None:
    to_dict = getattr(config, "to_dict", None)
    if to_dict is None:
        return None
    plain = {k: v for k, v in to_dict().items() if not k.startswith("_") and k not in _VOLATILE}
    return _sha256(json.dumps(plain, sort_keys=True, default=str))


def _text_encoders(adapter: Any) -> dict[str, str]:
    """``{component: "<class>:<config hash>"}`` of the pipeline's text encoders."""
    pipe = getattr(adapter, "pipe", None)
    found: dict[str, Any] = {}
    if pipe is not None:
        components = getattr(pipe, "components", {}) or {}
        found = {k: v for k, v in components.items() if k.startswith("text_encoder") and v}
    elif getattr(adapter, "model", None) is not None:  # a plain encoder target
        found = {"encoder": adapter.model}
    return {
        name: f"{type(module).__name__}:{_config_hash(getattr(module, 'config', None))}"
        for name, module in sorted(found.items())
    }


def encoding_spec(adapter: Any) -> dict[str, Any]:
    """What decides the conditioning states an adapter reads (see the module docstring)."""
    template = adapter.encoding_template() if hasattr(adapter, "encoding_template") else None
    length = getattr(adapter, "max_sequence_length", None) or getattr(adapter, "max_length", None)
    return {
        "family": str(getattr(adapter, "family", "")),
        "conditioning_space": str(adapter.conditioning_space),
        "max_sequence_length": None if length is None else int(length),
        "template_sha256": None if template is None else _sha256(template),
        "text_encoders": _text_encoders(adapter),
    }


def adapter_options(encoding: Mapping[str, Any] | None) -> dict[str, Any]:
    """Adapter keyword arguments that reproduce the pack's encoding (its sequence length)."""
    length = (encoding or {}).get("max_sequence_length")
    return {} if length is None else {"max_sequence_length": int(length)}


def check_encoding(encoding: Mapping[str, Any] | None, adapter: Any) -> None:
    """Refuse, with :class:`PackError`, an adapter whose states differ from the pack's.

    Compares each field both sides record (an older pack without a record is not checked).
    """
    if not encoding:
        return
    have = encoding_spec(adapter)
    want_len, got_len = encoding.get("max_sequence_length"), have["max_sequence_length"]
    if want_len is not None and got_len is not None and int(want_len) != int(got_len):
        raise PackError(
            f"the pack was fitted on states encoded at max_sequence_length={want_len}, but this "
            f"pipeline's adapter encodes at max_sequence_length={got_len}; the text encoder's "
            "states depend on the padded length",
            hint=f"use max_sequence_length={want_len} (attach fills it in when you pass none), "
            f"or rebuild the pack at {got_len}",
        )
    want_t, got_t = encoding.get("template_sha256"), have["template_sha256"]
    if want_t != got_t and want_t is not None and got_t is not None:
        raise PackError(
            f"the pack was fitted with prompt template {want_t}, this pipeline uses {got_t}",
            hint="use the pipeline class the pack was built on, or rebuild the pack for this one",
        )
    want_e, got_e = dict(encoding.get("text_encoders") or {}), have["text_encoders"]
    differ = sorted(k for k in set(want_e) & set(got_e) if want_e[k] != got_e[k])
    if differ:
        raise PackError(
            "the pack was fitted on other text encoders: "
            + "; ".join(f"{k}: pack {want_e[k]}, pipeline {got_e[k]}" for k in differ),
            hint="use the checkpoint the pack was built for, or rebuild the pack on this one",
        )


def call_default(pipe: Any, name: str = "max_sequence_length") -> Any:
    """The default of ``name`` in the pipeline class's ``__call__`` (None when it has none)."""
    try:
        param = inspect.signature(type(pipe).__call__).parameters.get(name)
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def call_length(encoding: Mapping[str, Any] | None, requested: Any, default: Any) -> Any:
    """The ``max_sequence_length`` one encode call should use.

    ``requested``: what the call passes (None: nothing); ``default``: the pipeline ``__call__``'s
    default, which a plain ``pipe(prompt)`` passes on. Without a recorded length, ``requested``
    is kept; a call that passes none or the default gets the pack's length; the same value is
    kept; any other value is refused with both numbers.
    """
    want = (encoding or {}).get("max_sequence_length")
    if want is None:
        return requested
    if requested is None or requested == default or int(requested) == int(want):
        return int(want)
    raise PackError(
        f"this call encodes prompts at max_sequence_length={requested}, but the pack was fitted "
        f"on states encoded at max_sequence_length={want}",
        hint=f"pass max_sequence_length={want} (or none: the pack's value is filled in), "
        f"or rebuild the pack at {requested}",
    )


__all__ = ["adapter_options", "call_default", "call_length", "check_encoding", "encoding_spec"]
