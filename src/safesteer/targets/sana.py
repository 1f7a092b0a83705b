"""SANA: Gemma-2-2B's last hidden state (``[B, T, 2304]``), with SANA's instruction prefix.

``SanaPipeline.__call__`` passes a long default ``complex_human_instruction`` that
``encode_prompt`` prepends to every prompt (the sequence then holds the instruction's tokens
followed by up to ``max_sequence_length`` = 300 prompt tokens). The adapter uses the same
default, so its states are what the denoiser sees. ``encode_prompt`` returns
``(prompt_embeds, prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask)``;
the returned attention mask is the real-token mask (instruction tokens count as real, so pooled
states are dominated by the shared instruction — known weakness for maps and gating).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> SanaAdapter(tiny_pipeline("sana"), max_sequence_length=16).conditioning_space
    'sana/gemma2'
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor

from safesteer.targets.base import RawStates, TargetAdapter


class SanaAdapter(TargetAdapter):
    """Steers SANA's Gemma ``prompt_embeds`` (instruction prefix included, as the denoiser sees)."""

    family = "sana"
    space = "gemma2"
    pipeline_classes = ("SanaPipeline",)
    components = (("transformer", "SanaTransformer2DModel"),)
    default_max_sequence_length = 300

    def _encode_call(self, prompts: list[str]) -> Any:
        params = inspect.signature(type(self.pipe).__call__).parameters
        instruction = (
            params["complex_human_instruction"].default
            if "complex_human_instruction" in params
            else None
        )
        return self.pipe.encode_prompt(
            prompts,
            do_classifier_free_guidance=False,
            device=self.pipe._execution_device,
            complex_human_instruction=instruction,
            **self._msl_kwargs(),
        )

    def encoding_template(self) -> str | None:
        params = inspect.signature(type(self.pipe).__call__).parameters
        param = params.get("complex_human_instruction")
        return None if param is None else repr(param.default)

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        return out[0], out[1]

    def negative(self, out: Any) -> tuple[RawStates | None, Tensor | None]:
        return out[2], out[3]

    def replace(self, out: Any, positive: RawStates, negative: RawStates | None) -> Any:
        return (positive, out[1], out[2] if negative is None else negative, out[3])
