"""FLUX.1 (schnell / dev): the T5-XXL sequence (``[B, 256 or 512, 4096]``).

``FluxPipeline.encode_prompt`` returns ``(prompt_embeds, pooled_prompt_embeds, text_ids)``:
``prompt_embeds`` is T5's last hidden state over the prompt padded to ``max_sequence_length``
(512; the adapter uses 256 for schnell, i.e. without a guidance embedding, as its model card
does — T5 runs without an attention mask, so the padded length changes the states); the
pooled CLIP-L vector (fed to the modulation, not to attention) is left alone. With true CFG
(``negative_prompt`` and ``true_cfg_scale > 1``) FLUX encodes the negative prompt with a second
``encode_prompt`` call, so the adapter marks the first call of each pipeline call as the
positive one. Mask: T5's attention mask (words + ``</s>``).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> FluxAdapter(tiny_pipeline("flux"), max_sequence_length=16).conditioning_space
    'flux/t5'
"""

from __future__ import annotations

from typing import Any

from safesteer.targets.base import TargetAdapter


class FluxAdapter(TargetAdapter):
    """Steers FLUX's T5 ``prompt_embeds``; pooled CLIP left alone."""

    family = "flux"
    space = "t5"
    pipeline_classes = ("FluxPipeline",)
    components = (("transformer", "FluxTransformer2DModel"),)
    two_call_cfg = True
    default_max_sequence_length = 512

    def __init__(self, pipe: Any, **kwargs: Any) -> None:
        super().__init__(pipe, **kwargs)
        # schnell (no guidance embedding) is run with 256 tokens; T5 runs without an attention
        # mask here, so real-token states depend on the padded length: fit with what runs
        transformer = getattr(pipe, "transformer", None)
        schnell = transformer is not None and not getattr(
            transformer.config, "guidance_embeds", True
        )
        if kwargs.get("max_sequence_length") is None and schnell:
            self.max_sequence_length = 256

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(prompt=prompts, prompt_2=None, **self._msl_kwargs())

    def mask_tokenizer(self) -> Any:
        return self.pipe.tokenizer_2
