"""CogVideoX: the T5-XXL sequence (``[B, 226, 4096]``).

``CogVideoXPipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds)``. T5 runs
**without** an attention mask over the prompt padded to ``max_sequence_length`` (226), so the
padding positions carry states too (the denoiser attends to all 226). Mask: the tokenizer's
attention mask (words + ``</s>``).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> CogVideoXAdapter(tiny_pipeline("cogvideox"), max_sequence_length=16).conditioning_space
    'cogvideox/t5'
"""

from __future__ import annotations

from typing import Any

from safesteer.targets.base import TargetAdapter


class CogVideoXAdapter(TargetAdapter):
    """Steers CogVideoX's T5 ``prompt_embeds``."""

    family = "cogvideox"
    space = "t5"
    makes_video = True
    pipeline_classes = ("CogVideoXPipeline",)
    components = (("transformer", "CogVideoXTransformer3DModel"),)
    default_max_sequence_length = 226

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts,
            do_classifier_free_guidance=False,
            device=self.pipe._execution_device,
            **self._msl_kwargs(),
        )
