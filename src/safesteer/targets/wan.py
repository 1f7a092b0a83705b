"""Wan 2.1 / 2.2 text-to-video: the UMT5-XXL sequence (``[B, 512, 4096]``).

``WanPipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds)``. Wan keeps
T5's states on the real tokens and **zeroes** the padding up to ``max_sequence_length`` (512 in
``__call__``): steering "all" tokens also shifts those zeros, "real" leaves them at zero.
Mask: the tokenizer's attention mask (words + ``</s>``).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> WanAdapter(tiny_pipeline("wan"), max_sequence_length=16).conditioning_space
    'wan/umt5'
"""

from __future__ import annotations

from typing import Any

from safesteer.targets.base import TargetAdapter


class WanAdapter(TargetAdapter):
    """Steers Wan's UMT5 ``prompt_embeds`` (both experts of Wan 2.2 read the same states)."""

    family = "wan"
    space = "umt5"
    makes_video = True
    pipeline_classes = ("WanPipeline",)
    components = (("transformer", "WanTransformer3DModel"),)
    default_max_sequence_length = 512

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts,
            do_classifier_free_guidance=False,
            device=self.pipe._execution_device,
            **self._msl_kwargs(),
        )
