"""SDXL: CLIP-L and OpenCLIP-bigG penultimate states concatenated (``[B, 77, 768 + 1280]``).

``StableDiffusionXLPipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds,
pooled_prompt_embeds, negative_pooled_prompt_embeds)``. The UNet cross-attends to the
concatenated ``prompt_embeds``: that is the space steered (``"sdxl/clip-l+bigg"``). The pooled
bigG projection (``text_embeds``, fed to the time embedding) is left alone: a pack fitted on
token states says nothing about it. Mask: the first tokenizer's attention mask (both tokenizers
cut the same words; they differ only in the pad token).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> SDXLAdapter(tiny_pipeline("sdxl")).dim
    64
"""

from __future__ import annotations

from typing import Any

from safesteer.targets.base import TargetAdapter


class SDXLAdapter(TargetAdapter):
    """Steers the concatenated CLIP-L + bigG ``prompt_embeds``; pooled embeddings untouched."""

    family = "sdxl"
    space = "clip-l+bigg"
    pipeline_classes = ("StableDiffusionXLPipeline",)
    components = (
        ("unet", "UNet2DConditionModel"),
        ("text_encoder_2", "CLIPTextModelWithProjection"),
    )

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompts,
            device=self.pipe._execution_device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
