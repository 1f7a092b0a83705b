"""Which adapter serves a pipeline, and loading pipelines by id (hub, folder, or ``tiny-<family>``).

Example:
    >>> pipe, adapter = load_pipeline("tiny-flux")
    >>> adapter.conditioning_space, adapter.random_weights
    ('flux/t5', True)
"""

from __future__ import annotations

import inspect
from typing import Any

from safesteer.errors import InputError, ModelLoadError
from safesteer.models.zoo import is_preset
from safesteer.targets.base import TargetAdapter
from safesteer.targets.cogvideox import CogVideoXAdapter
from safesteer.targets.encoder import EncoderPipelineAdapter, EncoderTarget
from safesteer.targets.flux import FluxAdapter
from safesteer.targets.qwen_image import QwenImageAdapter
from safesteer.targets.sana import SanaAdapter
from safesteer.targets.sd import SDAdapter
from safesteer.targets.sd3 import SD3Adapter
from safesteer.targets.sdxl import SDXLAdapter
from safesteer.targets.wan import WanAdapter
from safesteer.targets.zimage import ZImageAdapter

ADAPTERS: tuple[type[TargetAdapter], ...] = (
    EncoderPipelineAdapter,
    SDAdapter,
    SDXLAdapter,
    SD3Adapter,
    FluxAdapter,
    QwenImageAdapter,
    ZImageAdapter,
    WanAdapter,
    CogVideoXAdapter,
    SanaAdapter,
)
FAMILIES: dict[str, type[TargetAdapter]] = {a.family: a for a in ADAPTERS}

#: the paper's targets and other common checkpoints (users with the hub), by family
KNOWN_PIPELINES: dict[str, str] = {
    "black-forest-labs/FLUX.1-schnell": "flux",
    "black-forest-labs/FLUX.1-dev": "flux",
    "Qwen/Qwen-Image": "qwen_image",
    "Tongyi-MAI/Z-Image-Turbo": "zimage",
    "Wan-AI/Wan2.1-T2V-1.3B-Diffusers": "wan",
    "Wan-AI/Wan2.2-T2V-A14B-Diffusers": "wan",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "stabilityai/stable-diffusion-3.5-medium": "sd3",
    "THUDM/CogVideoX-2b": "cogvideox",
    "Efficient-Large-Model/Sana_600M_512px_diffusers": "sana",
}


#: caches: adapter class -> its reference diffusers class; (pipeline, adapter) -> classes
_REFERENCES: dict[type, type | None] = {}
_COMPATIBLE: dict[tuple[type, type], tuple[type, ...]] = {}


def _names(obj: Any) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


def _reference(adapter_cls: type[TargetAdapter]) -> type | None:
    """The diffusers pipeline class an adapter was written for (its first ``pipeline_classes``)."""
    import diffusers

    if adapter_cls in _REFERENCES:
        return _REFERENCES[adapter_cls]
    _REFERENCES[adapter_cls] = None
    for name in adapter_cls.pipeline_classes:
        try:
            cls = getattr(diffusers, name, None)
        except Exception:  # a pipeline whose optional dependencies are missing
            cls = None
        if isinstance(cls, type):
            _REFERENCES[adapter_cls] = cls
            break
    return _REFERENCES[adapter_cls]


def _same_encoder_call(cls: type, adapter_cls: type[TargetAdapter]) -> bool:
    """``cls.encode_prompt`` takes the same arguments as the adapter's reference pipeline's."""
    ref = _reference(adapter_cls)
    if ref is None or not hasattr(cls, adapter_cls.encode_method):
        return False
    try:
        return inspect.signature(getattr(cls, adapter_cls.encode_method)) == inspect.signature(
            getattr(ref, adapter_cls.encode_method)
        )
    except (TypeError, ValueError):
        return False


def _by_components(pipe: Any) -> type[TargetAdapter] | None:
    """The adapter whose family components ``pipe`` holds and whose encoder call it shares."""
    best: tuple[int, type[TargetAdapter]] | None = None
    for cls in ADAPTERS:
        wanted = cls.components
        if not wanted or not all(c in _names(getattr(pipe, name, None)) for name, c in wanted):
            continue
        if not _same_encoder_call(type(pipe), cls):
            continue
        if best is None or len(wanted) > best[0]:
            best = (len(wanted), cls)
    return None if best is None else best[1]


def _adapter_class(pipe: Any) -> type[TargetAdapter]:
    """By class name (the pipeline or a base class is one an adapter serves), else by components
    (a variant of a family: img2img, inpaint, control…, with the same ``encode_prompt``)."""
    mro = [c.__name__ for c in type(pipe).__mro__]
    for name in mro:  # most specific class first (EncoderConditionedPipeline before SD)
        for cls in ADAPTERS:
            if name in cls.pipeline_classes:
                return cls
    found = _by_components(pipe)
    if found is not None:
        return found
    supported = sorted(c for a in ADAPTERS for c in a.pipeline_classes)
    raise InputError(
        f"no safesteer adapter for {type(pipe).__name__}",
        hint=f"supported: {', '.join(supported)} and their variants that hold the same "
        "denoiser and encode prompts the same way (e.g. FluxImg2ImgPipeline)",
    )


def compatible_classes(pipe_cls: type, adapter_cls: type[TargetAdapter]) -> tuple[type, ...]:
    """Pipeline classes whose calls the adapter's steering hook observes.

    ``pipe_cls`` itself, plus every pipeline of the reference pipeline's diffusers subpackage
    (``diffusers.pipelines.flux`` for FLUX…) with the same ``encode_prompt`` arguments: the
    variants a ``from_pipe`` copy may be (FLUX: img2img, inpaint, fill, control, controlnet,
    kontext…). Edit pipelines that put images in the prompt (Qwen-Image-Edit) differ and are
    left out; a steered denoiser refuses to run in them.

    Example:
        >>> from safesteer.targets.flux import FluxAdapter
        >>> from diffusers import FluxPipeline
        >>> "FluxImg2ImgPipeline" in {c.__name__ for c in compatible_classes(FluxPipeline,
        ...                                                                   FluxAdapter)}
        True
    """
    import importlib

    from diffusers import DiffusionPipeline

    known = _COMPATIBLE.get((pipe_cls, adapter_cls))
    if known is not None:
        return known
    found = [pipe_cls]
    ref = _reference(adapter_cls)
    if ref is None:
        _COMPATIBLE[(pipe_cls, adapter_cls)] = (pipe_cls,)
        return (pipe_cls,)
    package = importlib.import_module(ref.__module__.rsplit(".", 1)[0])
    for name in sorted(dir(package)):
        if not name.endswith("Pipeline"):
            continue
        try:
            cls = getattr(package, name)
        except Exception:  # optional dependencies missing (Flax, ONNX…)
            continue
        if (
            isinstance(cls, type)
            and issubclass(cls, DiffusionPipeline)
            and cls not in found
            and _same_encoder_call(cls, adapter_cls)
        ):
            found.append(cls)
    _COMPATIBLE[(pipe_cls, adapter_cls)] = tuple(found)
    return tuple(found)


def adapter_for(
    pipe: Any, *, conditioning_space: str | None = None, **kwargs: Any
) -> TargetAdapter:
    """The adapter of ``pipe``'s family (by its class), e.g. :class:`FluxAdapter` for FLUX.

    ``conditioning_space`` picks a sub-space where a family has several (SD3: ``"sd3/t5"``).
    Extra keyword arguments go to the adapter (``max_sequence_length=``, ``target_id=``…);
    tiny pipelines made by :func:`load_pipeline` carry their own fast defaults.

    Example:
        >>> from safesteer.targets import tiny_pipeline
        >>> adapter_for(tiny_pipeline("sd")).conditioning_space
        'sd/clip'
    """
    cls = _adapter_class(pipe)
    defaults = dict(getattr(pipe, "_safesteer_adapter_kwargs", {}) or {})
    defaults.update(kwargs)
    if cls is SD3Adapter and conditioning_space == "sd3/t5":
        defaults.setdefault("part", "t5")
    return cls(pipe, **defaults)


def load_target(
    name: str,
    *,
    dtype: Any = None,
    device: str | None = None,
    offload: str | None = None,
    **adapter_kwargs: Any,
) -> tuple[Any, Any]:
    """``(adapter, pipeline or None)``: a packaged encoder preset as an :class:`EncoderTarget`
    (no pipeline; float32 on CPU), or anything :func:`load_pipeline` loads (hub id, folder,
    ``tiny-<family>``) with ``dtype`` / ``device`` / ``offload``."""
    if is_preset(name):
        return EncoderTarget.from_preset(name), None
    pipe, adapter = load_pipeline(
        name, dtype=dtype, device=device, offload=offload, **adapter_kwargs
    )
    return adapter, pipe


def cast_like_from_pretrained(pipe: Any, dtype: Any) -> None:
    """Cast every model component to ``dtype`` as ``from_pretrained(dtype=...)`` would: the
    modules a diffusers model lists in ``_keep_in_fp32_modules`` (Wan's rope, norms…) stay
    float32."""
    import torch

    for component in pipe.components.values():
        if not isinstance(component, torch.nn.Module):
            continue
        for param in component.parameters():
            param.data = param.data.to(dtype)
        for buffer_owner in component.modules():
            for key, buf in list(buffer_owner._buffers.items()):
                if buf is not None and buf.is_floating_point():
                    buffer_owner._buffers[key] = buf.to(dtype)
        keep = getattr(component, "_keep_in_fp32_modules", None) or []
        for name, module in component.named_modules():
            if name and any(k in name.split(".") for k in keep):
                module.float()


def _family_of(pipe: Any) -> str:
    return _adapter_class(pipe).family


def load_pipeline(
    id_or_path: str,
    family: str | None = None,
    *,
    dtype: Any = None,
    device: str | None = None,
    offload: str | None = None,
    seed: int = 0,
    **adapter_kwargs: Any,
) -> tuple[Any, TargetAdapter]:
    """Load a pipeline and its adapter: a hub id, a local folder, or ``"tiny-<family>"``.

    ``"tiny-<family>"`` (``tiny-sd``, ``tiny-flux``, … ``tiny-encoder-minilm-l6``) builds a
    **random-weight** pipeline offline (:func:`~safesteer.targets.tiny.tiny_pipeline`); the
    adapter says so (``random_weights=True``). Anything else goes to
    ``DiffusionPipeline.from_pretrained(..., dtype=...)`` (needs the hub or a local copy); the
    family is read from the loaded class unless ``family`` names it.

    ``dtype`` / ``device`` / ``offload`` take the names of :mod:`safesteer.models.device`
    (``"auto"``: bfloat16 on a GPU, float32 on CPU; ``None`` leaves a hub pipeline in its
    stored dtype on CPU and a tiny one in float32). ``offload="model"`` enables diffusers'
    model CPU offload instead of moving the whole pipeline to ``device`` (GPU only; refused
    on a CPU-only machine before anything loads).

    Example:
        >>> pipe, adapter = load_pipeline("tiny-flux", dtype="bfloat16")
        >>> pipe.transformer.dtype
        torch.bfloat16
        >>> pipe, adapter = load_pipeline("Qwen/Qwen-Image", dtype="auto",
        ...                               device="cuda")  # doctest: +SKIP
    """
    from safesteer.logs import quiet_truncation_warnings
    from safesteer.models.device import apply_offload, check_offload, resolve_device, resolve_dtype

    quiet_truncation_warnings()  # diffusers prints each cut prompt's text; count them instead
    target_device = resolve_device(device) if device is not None else None
    mode = check_offload(offload, target_device or "cpu")
    torch_dtype = None if dtype is None else resolve_dtype(dtype, target_device or "cpu")
    if family is not None and family not in FAMILIES:
        raise InputError(f"unknown family {family!r}", hint=f"use one of {', '.join(FAMILIES)}")
    if id_or_path.startswith("tiny-"):
        from safesteer.targets.tiny import TINY_FAMILIES, tiny_call_defaults, tiny_pipeline

        name = id_or_path.removeprefix("tiny-")
        if name.startswith("encoder-"):
            from safesteer.targets.encoder import tiny_encoder_pipeline

            pipe: Any = tiny_encoder_pipeline(name.removeprefix("encoder-"), seed=seed)
            msl: dict[str, Any] = {}
        elif name.replace("-", "_") in TINY_FAMILIES:
            pipe = tiny_pipeline(name, seed=seed)
            msl = {k: v for k, v in tiny_call_defaults(name).items() if k == "max_sequence_length"}
        else:
            raise InputError(
                f"unknown tiny pipeline {id_or_path!r}",
                hint=f"use tiny-<family> ({', '.join(TINY_FAMILIES)}) or tiny-encoder-minilm-l6",
            )
        if torch_dtype is not None:
            cast_like_from_pretrained(pipe, torch_dtype)
        pipe._safesteer_adapter_kwargs = {"target_id": id_or_path, "random_weights": True, **msl}
    else:
        from diffusers import DiffusionPipeline

        kwargs: dict[str, Any] = {}
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype  # diffusers 0.42 deprecates torch_dtype
        from safesteer.hub import hub_access

        kwargs.update(hub_access(id_or_path, what="pipeline", filename="model_index.json"))
        try:
            pipe = DiffusionPipeline.from_pretrained(id_or_path, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"could not load the pipeline {id_or_path!r}: {str(exc).splitlines()[0][:200]}",
                hint="check the id or folder; offline, download it elsewhere and pass the "
                "local folder, or use a tiny-<family> pipeline for offline tests",
            ) from exc
        pipe._safesteer_adapter_kwargs = {"target_id": id_or_path}
    if mode != "none":
        apply_offload(pipe, mode, target_device or "cuda")
    elif target_device is not None:
        pipe.to(target_device)
    if family is not None:
        found = _family_of(pipe)
        if found != family:
            raise InputError(
                f"{id_or_path!r} is a {found} pipeline, not {family}", hint=f"pass family={found!r}"
            )
    return pipe, adapter_for(pipe, **adapter_kwargs)
