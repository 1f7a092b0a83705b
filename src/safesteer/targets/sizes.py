"""Which image sizes and frame counts a pipeline family accepts, as diffusers 0.42 checks them.

Each family's ``check_inputs`` (or its latent packing) needs ``height`` and ``width`` to be
multiples of some number; some families *refuse* other sizes with a ``ValueError`` (SD, SDXL,
SD3, Z-Image, CogVideoX, Sana), others *silently resize* (FLUX, Qwen-Image, Wan), so the image
would not have the size its record says. Video families also round the frame count (Wan:
``num_frames − 1`` a multiple of the VAE's temporal factor). The rule per family is
:data:`SIZE_RULES`: the multiple of the released checkpoints (checked **before** loading, when
the family is known from the pipeline id) and the multiple read from a loaded pipeline's own
VAE / patch sizes (checked right after loading, before any generation). A family without an
entry gets ``lcm(8, vae_scale_factor)``.

Example:
    >>> released_multiple("black-forest-labs/FLUX.1-schnell")
    16
    >>> released_multiple("my/own-pipeline") is None
    True
    >>> check_size(1024, 1000, 16, "FLUX.1-schnell")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safesteer.errors.InputError: width 1000 is not a multiple of 16, which FLUX.1-schnell needs ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safesteer.errors import InputError

__all__ = [
    "RELEASED_FRAMES_MULTIPLE",
    "SIZE_RULES",
    "SizeRule",
    "check_frames",
    "check_size",
    "family_of_id",
    "frames_multiple",
    "released_multiple",
    "size_multiple",
]


def _vae(pipe: Any) -> int:
    """The spatial VAE factor a pipeline computes in its ``__init__`` (8 when it has none)."""
    for name in ("vae_scale_factor_spatial", "vae_scale_factor"):
        value = getattr(pipe, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 8


def _patch(pipe: Any, index: int = 0) -> int:
    """The denoiser's spatial patch size (``transformer.config.patch_size``; 1 when absent)."""
    transformer = getattr(pipe, "transformer", None) or getattr(pipe, "transformer_2", None)
    size = getattr(getattr(transformer, "config", None), "patch_size", None)
    if isinstance(size, list | tuple):
        size = size[index] if len(size) > index else size[-1]
    return int(size) if isinstance(size, int) and size > 0 else 1


@dataclass(frozen=True)
class SizeRule:
    """A family's size constraint: released checkpoints' multiple and a loaded pipeline's."""

    released: int
    loaded: Callable[[Any], int]
    #: the frame count rule of a video family: ``(frames − 1) % m == 0`` with ``m = frames(pipe)``
    frames: Callable[[Any], int] | None = None


#: the temporal VAE factor of the released video checkpoints (Wan 2.x): frames = 4k + 1
RELEASED_FRAMES_MULTIPLE = 4

#: family → its rule, read from diffusers 0.42's ``check_inputs`` / latent packing
SIZE_RULES: dict[str, SizeRule] = {
    # "divisible by 8" and the latent grid
    "sd": SizeRule(8, lambda p: math.lcm(8, _vae(p))),
    "sdxl": SizeRule(8, lambda p: math.lcm(8, _vae(p))),
    "encoder": SizeRule(8, lambda p: math.lcm(8, _vae(p))),  # an SD pipeline
    # vae_scale_factor × patch_size
    "sd3": SizeRule(16, lambda p: _vae(p) * int(getattr(p, "patch_size", 2) or 2)),
    # 2×2 latent packing: vae_scale_factor × 2 (FLUX and Qwen-Image resize other sizes)
    "flux": SizeRule(16, lambda p: _vae(p) * 2),
    "qwen_image": SizeRule(16, lambda p: _vae(p) * 2),
    "zimage": SizeRule(16, lambda p: _vae(p) * 2),
    # 16 in check_inputs, then multiples of vae × patch (Wan resizes other sizes)
    "wan": SizeRule(
        16,
        lambda p: math.lcm(16, _vae(p) * _patch(p, 1), _vae(p) * _patch(p, 2)),
        frames=lambda p: int(getattr(p, "vae_scale_factor_temporal", 4) or 4),
    ),
    # 8 in check_inputs, then the transformer's grid of vae × patch
    "cogvideox": SizeRule(16, lambda p: math.lcm(8, _vae(p) * _patch(p))),
    "sana": SizeRule(32, lambda p: math.lcm(32, _vae(p))),
}


def family_of_id(pipeline_id: str) -> str | None:
    """The family of a pipeline id known without loading it (``tiny-<family>``, a known hub id)."""
    from safesteer.targets.registry import KNOWN_PIPELINES

    if pipeline_id.startswith("tiny-"):
        name = pipeline_id.removeprefix("tiny-")
        return "encoder" if name.startswith("encoder-") else name.replace("-", "_")
    return KNOWN_PIPELINES.get(pipeline_id)


def released_multiple(pipeline_id: str) -> int | None:
    """The size multiple of a released checkpoint known by id; None when unknown before loading.

    ``tiny-<family>`` pipelines have their own (smaller) VAEs: they are checked after loading.
    """
    if pipeline_id.startswith("tiny-"):
        return None
    family = family_of_id(pipeline_id)
    rule = SIZE_RULES.get(family) if family else None
    return rule.released if rule else None


def size_multiple(pipe: Any, family: str) -> int:
    """The multiple ``height`` and ``width`` must be of for this loaded pipeline."""
    rule = SIZE_RULES.get(family)
    return rule.loaded(pipe) if rule else math.lcm(8, _vae(pipe))


def frames_multiple(pipe: Any, family: str) -> int | None:
    """``m`` such that the family keeps ``num_frames`` only when ``(num_frames − 1) % m == 0``."""
    rule = SIZE_RULES.get(family)
    return rule.frames(pipe) if rule and rule.frames else None


def check_size(height: int | None, width: int | None, multiple: int, what: str) -> None:
    """:class:`InputError` unless the given sizes are positive multiples of ``multiple``."""
    given = {"height": height, "width": width}
    bad = [k for k, v in given.items() if v is not None and (v < 1 or v % multiple)]
    if bad:
        near = ", ".join(
            f"{k} {max(multiple, round(given[k] / multiple) * multiple)}"  # type: ignore[operator]
            for k in bad
        )
        raise InputError(
            f"{' and '.join(f'{k} {given[k]}' for k in bad)} "
            f"{'is not a multiple' if len(bad) == 1 else 'are not multiples'} of {multiple}, "
            f"which {what} needs",
            hint=f"use multiples of {multiple}, e.g. {near}",
        )


def check_frames(frames: int | None, multiple: int | None, what: str) -> None:
    """:class:`InputError` unless ``frames − 1`` is a multiple of ``multiple`` (if any)."""
    if frames is None or multiple is None or (frames - 1) % multiple == 0:
        return
    lower = (frames - 1) // multiple * multiple + 1
    raise InputError(
        f"{frames} frames: {what} keeps only frame counts with (frames - 1) a multiple of "
        f"{multiple} (it would silently make {lower})",
        hint=f"use {lower} or {lower + multiple} frames",
    )
