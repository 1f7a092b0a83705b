"""Z-Image (Turbo): Qwen3-4B's ``hidden_states[-2]`` (2560-d), real tokens only.

``ZImagePipeline.encode_prompt`` applies the tokenizer's chat template
(``add_generation_prompt=True, enable_thinking=True``), runs Qwen3 and takes the
**second-to-last** hidden state, then keeps only each prompt's real tokens: it returns two
**lists** of ``[T_i, 2560]`` tensors ``(prompt_embeds, negative_prompt_embeds)``. The adapter pads
them to ``[B, max T_i, D]`` with a mask of the real positions (every listed token, template
tokens included); steering adds to the listed tokens only, so "all" and "real" coincide.
``ZImagePipeline`` skips ``encode_prompt`` when called with ``prompt_embeds`` and no prompt: such
calls are not steered (steer the embeddings with :meth:`encode` + ``steer_states`` yourself).

Example:
    >>> from safesteer.targets import tiny_pipeline
    >>> ZImageAdapter(tiny_pipeline("zimage")).conditioning_space
    'zimage/qwen3'
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from safesteer.targets.base import RawStates, TargetAdapter


class ZImageAdapter(TargetAdapter):
    """Steers Z-Image's per-prompt Qwen3 ``hidden_states[-2]`` lists."""

    family = "zimage"
    space = "qwen3"
    pipeline_classes = ("ZImagePipeline",)
    components = (("transformer", "ZImageTransformer2DModel"),)
    denoiser_input = ("cap_feats", 2)
    default_max_sequence_length = 512

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(
            prompt=prompts,
            device=self.pipe._execution_device,
            do_classifier_free_guidance=False,
            **self._msl_kwargs(),
        )

    def encoding_template(self) -> str | None:
        # encode_prompt applies the tokenizer's chat template with these options
        template = getattr(getattr(self.pipe, "tokenizer", None), "chat_template", None)
        options = "add_generation_prompt=True|enable_thinking=True|hidden_states[-2]"
        return f"{template}|{options}" if template else options

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        return list(out[0]), None

    def negative(self, out: Any) -> tuple[RawStates | None, Tensor | None]:
        return (list(out[1]) if out[1] else None), None
