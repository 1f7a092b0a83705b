"""CogVideoX: the T5-XXL sequence (``[B, 226, 4096]``).

``CogVideoXPipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds)``. T5 runs
**without** an attention mask over the prompt padded to ``max_sequence_length`` (226), so the
padding positions carry states too (the denoiser attends to all 226). Mask: the tokenizer's
attention mask (words + ``</s>``).

Example:
    >>> CogVideoXAdapter(tiny_pipeline("cogvideox"), max_sequence_length=16).conditioning_space
    'cogvideox/t5'
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from safesteer.targets.base import RawStates, TargetAdapter


class CogVideoXAdapter(TargetAdapter):
    """Steers CogVideoX's T5 ``prompt_embeds``."""

    family = "cogvideox"
    space = "t5"
    pipeline_classes = ("CogVideoXPipeline",)
    default_max_sequence_length = 226

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts,
            do_classifier_free_guidance=False,
            device=self.pipe._execution_device,
            **self._msl_kwargs(),
        )

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        return out[0], None

    def negative(self, out: Any) -> tuple[RawStates | None, Tensor | None]:
        return out[1], None

    def replace(self, out: Any, positive: RawStates, negative: RawStates | None) -> Any:
        return (positive, out[1] if negative is None else negative)
