"""Stable Diffusion 3 / 3.5: CLIP-L + CLIP-G and T5-XXL, concatenated **along tokens**.

``StableDiffusion3Pipeline.encode_prompt`` returns ``(prompt_embeds, negative_prompt_embeds,
pooled_prompt_embeds, negative_pooled_prompt_embeds)``. ``prompt_embeds`` is
``[B, 77 + max_sequence_length, 4096]``: the first 77 positions are CLIP-L ‖ CLIP-G penultimate
states (768 + 1280) zero-padded to 4096 features, the rest T5's last hidden state (256 tokens by
default). The joint transformer attends to the whole sequence.

Two spaces, chosen by the pack (steer only the space it was fitted on):

- ``"sd3/clip+t5"`` (default): the whole joint sequence; mask = CLIP real tokens ‖ T5 real tokens.
- ``"sd3/t5"``: only the T5 positions (the CLIP part and the pooled vectors are left alone).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> SD3Adapter(tiny_pipeline("sd3"), max_sequence_length=16).encode(["a cat"]).states.shape
    torch.Size([1, 93, 32])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from safesteer.errors import InputError
from safesteer.targets.base import TargetAdapter


class SD3Adapter(TargetAdapter):
    """Steers SD3's joint ``prompt_embeds`` (``part="joint"``) or only its T5 tokens (``"t5"``)."""

    family = "sd3"
    space = "clip+t5"
    pipeline_classes = ("StableDiffusion3Pipeline",)
    components = (("transformer", "SD3Transformer2DModel"),)
    default_max_sequence_length = 256

    def __init__(self, pipe: Any, *, part: str = "joint", **kwargs: Any) -> None:
        if part not in ("joint", "t5"):
            raise InputError(f"SD3 part must be 'joint' or 't5'; got {part!r}")
        super().__init__(pipe, **kwargs)
        self.part = part

    @property
    def conditioning_space(self) -> str:
        return "sd3/t5" if self.part == "t5" else "sd3/clip+t5"

    @property
    def clip_length(self) -> int:
        """Number of CLIP positions at the front of the joint sequence (77)."""
        return int(getattr(self.pipe, "tokenizer_max_length", 77))

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts,
            prompt_2=None,
            prompt_3=None,
            device=self.pipe._execution_device,
            do_classifier_free_guidance=False,
            **self._msl_kwargs(),
        )

    def token_mask(self, prompts: list[str] | None, states: Tensor) -> Tensor:
        n, t = states.shape[:2]
        c = self.clip_length
        if not prompts or n % len(prompts):
            return torch.ones(n, t, dtype=torch.bool, device=states.device)
        clip = self._tokenizer_mask(self.pipe.tokenizer, prompts, c)
        if self.pipe.tokenizer_3 is not None and self.pipe.text_encoder_3 is not None:
            t5 = self._tokenizer_mask(self.pipe.tokenizer_3, prompts, t - c)
        else:  # SD3 without T5 feeds zeros there: nothing real
            t5 = torch.zeros(len(prompts), t - c, dtype=torch.bool)
        mask = torch.cat([clip, t5], dim=1)
        return mask.repeat_interleave(n // len(prompts), dim=0).to(states.device)

    def view(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.part == "t5":
            return states[:, self.clip_length :], mask[:, self.clip_length :]
        return states, mask

    def region(self, states: Tensor) -> Tensor | None:
        """Positions of the joint sequence that belong to this space (None: all)."""
        if self.part == "joint":
            return None
        region = torch.zeros(states.shape[:2], dtype=torch.bool, device=states.device)
        region[:, self.clip_length :] = True
        return region
