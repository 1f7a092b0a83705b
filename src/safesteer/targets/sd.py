"""Stable Diffusion 1.x/2.x: the CLIP text tower's last hidden state (``[B, 77, 768]`` for SD1.5).

``StableDiffusionPipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds)``;
the UNet cross-attends to ``prompt_embeds`` (the two are concatenated for CFG inside
``__call__``). States: all 77 positions, padded with CLIP's pad token; mask: the tokenizer's
attention mask (BOS, words, EOS).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> SDAdapter(tiny_pipeline("sd")).conditioning_space
    'sd/clip'
"""

from __future__ import annotations

from typing import Any

from safesteer.targets.base import TargetAdapter


class SDAdapter(TargetAdapter):
    """Steers ``prompt_embeds`` (CLIP last hidden state); the negative branch is ``[1]``."""

    family = "sd"
    space = "clip"
    pipeline_classes = ("StableDiffusionPipeline",)
    components = (("unet", "UNet2DConditionModel"), ("text_encoder", "CLIPTextModel"))

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(prompts, self.pipe._execution_device, 1, False)
