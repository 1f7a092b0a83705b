"""Qwen-Image: Qwen2.5-VL-7B's last hidden state (``[B, T, 3584]``), chat-template prefix dropped.

``QwenImagePipeline.encode_prompt`` wraps each prompt in a fixed system/user chat template, runs
the VLM's language model, keeps each prompt's real tokens and **drops the first
``prompt_template_encode_start_idx`` (34) template tokens**, then pads to the longest prompt.
It returns ``(prompt_embeds, prompt_embeds_mask)`` — the mask is ``None`` when no position is
padding. That mask is the real-token mask used here (it covers the user's prompt and the
template's closing tokens). True CFG encodes the negative prompt with a second call, so the
first call of each pipeline call is the positive one.

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> QwenImageAdapter(tiny_pipeline("qwen_image")).conditioning_space
    'qwen_image/qwen2.5-vl'
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safesteer.targets.base import RawStates, TargetAdapter


class QwenImageAdapter(TargetAdapter):
    """Steers Qwen-Image's ``prompt_embeds`` (template prefix already dropped by the pipeline)."""

    family = "qwen_image"
    space = "qwen2.5-vl"
    pipeline_classes = ("QwenImagePipeline",)
    components = (("transformer", "QwenImageTransformer2DModel"),)
    encoding_attributes = ("prompt_template_encode", "prompt_template_encode_start_idx")
    two_call_cfg = True
    default_max_sequence_length = 512

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts, device=self.pipe._execution_device, **self._msl_kwargs()
        )

    def encoding_template(self) -> str | None:
        template = getattr(self.pipe, "prompt_template_encode", None)
        start = getattr(self.pipe, "prompt_template_encode_start_idx", None)
        return None if template is None else f"{template}|start={start}"

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        states, mask = out
        if mask is None:  # the pipeline drops an all-ones mask
            mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        return states, mask
