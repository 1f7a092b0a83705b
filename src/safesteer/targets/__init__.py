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
"""

from __future__ import annotations

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
from safesteer.targets.encoder import (
    EncoderConditionedPipeline,
    EncoderTarget,
    tiny_encoder_pipeline,
)
from safesteer.targets.registry import ADAPTERS, FAMILIES, adapter_for, load_pipeline
from safesteer.targets.tiny import TINY_FAMILIES, tiny_pipeline

__all__ = [
    "ADAPTERS",
    "FAMILIES",
    "TINY_FAMILIES",
    "EncodedPrompts",
    "EncoderConditionedPipeline",
    "EncoderTarget",
    "PromptSteering",
    "SteeringSettings",
    "TargetAdapter",
    "adapter_for",
    "attach",
    "detach",
    "is_steered",
    "last_steering",
    "load_pipeline",
    "steered",
    "tiny_encoder_pipeline",
    "tiny_pipeline",
]
