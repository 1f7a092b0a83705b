"""Target adapters: one per diffusers pipeline family, plus attach / detach and tiny pipelines.

=============  ==========================  ==================================================
family         pipeline                    steered states (``conditioning_space``)
=============  ==========================  ==================================================
``sd``         StableDiffusionPipeline     CLIP last hidden state (``sd/clip``)
``sdxl``       StableDiffusionXLPipeline   CLIP-L ‖ bigG penultimate (``sdxl/clip-l+bigg``)
``sd3``        StableDiffusion3Pipeline    joint CLIP+T5 sequence (``sd3/clip+t5``) or T5 part
``flux``       FluxPipeline                T5 sequence (``flux/t5``); pooled CLIP untouched
``qwen_image`` QwenImagePipeline           Qwen2.5-VL last hidden, template dropped
``zimage``     ZImagePipeline              Qwen3 ``hidden_states[-2]`` (``zimage/qwen3``)
``wan``        WanPipeline                 UMT5 sequence (``wan/umt5``)
``cogvideox``  CogVideoXPipeline           T5 sequence (``cogvideox/t5``)
``sana``       SanaPipeline                Gemma-2 last hidden (``sana/gemma2``)
``encoder``    EncoderConditionedPipeline  a plain encoder's last hidden (``encoder/<name>``)
=============  ==========================  ==================================================

Steering (:mod:`.attach`, :mod:`.base`, :mod:`.pooled`) is imported with the package; the
adapters, tiny pipelines and loaders (which pull in diffusers) on first use, so that
``safesteer.targets.attach`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from safesteer.targets.attach import (
    PromptSteering,
    SteeringSettings,
    attach,
    detach,
    is_steered,
    last_steering,
    steered,
)
from safesteer.targets.base import EncodedPrompts, TargetAdapter
from safesteer.targets.pooled import cached_target_pooled, pooled_by_length

# public names that pull in diffusers -> the module that defines them (imported on first use)
_LAZY: dict[str, str] = {
    "EncoderConditionedPipeline": "safesteer.targets.encoder",
    "EncoderTarget": "safesteer.targets.encoder",
    "tiny_encoder_pipeline": "safesteer.targets.encoder",
    "ADAPTERS": "safesteer.targets.registry",
    "FAMILIES": "safesteer.targets.registry",
    "adapter_for": "safesteer.targets.registry",
    "load_pipeline": "safesteer.targets.registry",
    "load_target": "safesteer.targets.registry",
    "TINY_FAMILIES": "safesteer.targets.tiny",
    "tiny_pipeline": "safesteer.targets.tiny",
    "save_pretrained": "safesteer.targets.saving",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from safesteer.targets.encoder import (
        EncoderConditionedPipeline,
        EncoderTarget,
        tiny_encoder_pipeline,
    )
    from safesteer.targets.registry import (
        ADAPTERS,
        FAMILIES,
        adapter_for,
        load_pipeline,
        load_target,
    )
    from safesteer.targets.saving import save_pretrained
    from safesteer.targets.tiny import TINY_FAMILIES, tiny_pipeline


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'safesteer.targets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "EncodedPrompts",
    "PromptSteering",
    "SteeringSettings",
    "TargetAdapter",
    "attach",
    "cached_target_pooled",
    "detach",
    "is_steered",
    "last_steering",
    "pooled_by_length",
    "steered",
    *_LAZY,
]
