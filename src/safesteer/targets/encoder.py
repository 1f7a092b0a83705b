"""A plain text encoder as a steering target, and a tiny pipeline conditioned on it.

:class:`EncoderTarget` turns any Hugging Face encoder or LLM (the packaged ``minilm-l6`` and
``gemma3-270m`` presets, or the user's own) into a :class:`~safesteer.targets.base.TargetAdapter`.
States are the model's **last hidden state** (``hidden_states[-1]``: after the final norm for
decoder LLMs, the last layer's output for BERT-like encoders), with the prompt padded to
``max_length`` (77, like CLIP) and an attention mask; the mask marks real tokens (special tokens
such as ``[CLS]``/``[SEP]`` included, padding excluded). Space: ``"encoder/<name>"``.

:class:`EncoderConditionedPipeline` is a real ``StableDiffusionPipeline`` whose
``encode_prompt`` returns those states, so a tiny random UNet with ``cross_attention_dim`` = the
encoder's width is conditioned by a real encoder, and :func:`safesteer.attach` steers it like
any pipeline. :func:`tiny_encoder_pipeline` builds one (random UNet/VAE weights, real encoder).

Example:
    >>> target = EncoderTarget.from_preset("minilm-l6")
    >>> target.conditioning_space, target.dim
    ('encoder/minilm-l6', 384)
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from torch import Tensor

from safesteer.targets.base import RawStates, TargetAdapter


def _encode(
    model: Any, tokenizer: Any, prompts: list[str], max_length: int, device: Any
) -> tuple[Tensor, Tensor]:
    tok = tokenizer(
        prompts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    mask = tok.attention_mask.to(device)
    out = model(input_ids=tok.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
    return out.hidden_states[-1], mask.bool()


class EncoderTarget(TargetAdapter):
    """A plain encoder's last hidden state, padded to ``max_length``, as a steering target."""

    family = "encoder"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        target_id: str | None = None,
        max_length: int = 77,
        random_weights: bool = False,
    ) -> None:
        super().__init__(None, target_id=target_id or name, random_weights=random_weights)
        # a causal LM's hidden states come from its base model; skipping the LM head (a
        # 262k-word vocabulary for Gemma) gives the same states for a fraction of the work
        base = getattr(model, "base_model", None)
        self.model = (model if base is None else base).eval()
        self.tokenizer = tokenizer
        if getattr(tokenizer, "pad_token", None) is None:  # decoder LLMs may lack one
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self.name = name
        self.max_length = max_length
        self._dim = int(model.config.hidden_size)

    @classmethod
    def from_preset(cls, name: str, *, max_length: int = 77) -> EncoderTarget:
        """A packaged encoder (``"minilm-l6"``, ``"gemma3-270m"``) via ``load_preset``."""
        from safesteer.models.zoo import load_preset

        loaded = load_preset(name)
        return cls(
            loaded.model,
            loaded.tokenizer,
            name=name,
            target_id=loaded.model_id,
            max_length=max_length,
        )

    @property
    def conditioning_space(self) -> str:
        return f"encoder/{self.name}"

    def _encode_call(self, prompts: list[str]) -> Any:
        device = next(self.model.parameters()).device
        return _encode(self.model, self.tokenizer, prompts, self.max_length, device)

    def positive(self, out: Any) -> tuple[RawStates, Tensor | None]:
        return out[0], out[1]  # (states, mask): a plain encoder has no negative branch

    def negative(self, out: Any) -> tuple[RawStates | None, Tensor | None]:
        return None, None


class EncoderConditionedPipeline(StableDiffusionPipeline):
    """``StableDiffusionPipeline`` whose text conditioning is a plain encoder's last hidden state.

    ``text_encoder`` / ``tokenizer`` are the encoder and its tokenizer; the UNet's
    ``cross_attention_dim`` must equal the encoder's hidden size. Prompts are padded to
    ``encoder_max_length`` (77).
    """

    encoder_max_length: int = 77

    def encode_prompt(
        self,
        prompt: Any,
        device: Any,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
        negative_prompt: Any = None,
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        lora_scale: float | None = None,
        clip_skip: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``(prompt_embeds, negative_prompt_embeds)``, each ``[B·n, 77, D]``, like SD's."""
        pipe: Any = self  # diffusers registers the components dynamically
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if prompt_embeds is None:
            prompt_embeds, _ = _encode(
                pipe.text_encoder, pipe.tokenizer, list(prompts), self.encoder_max_length, device
            )
        dtype = pipe.unet.dtype
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype).repeat_interleave(
            num_images_per_prompt, dim=0
        )
        if do_classifier_free_guidance and negative_prompt_embeds is None:
            batch = prompt_embeds.shape[0] // num_images_per_prompt
            negatives = [""] * batch if negative_prompt is None else negative_prompt
            negatives = [negatives] * batch if isinstance(negatives, str) else list(negatives)
            negative_prompt_embeds, _ = _encode(
                pipe.text_encoder, pipe.tokenizer, negatives, self.encoder_max_length, device
            )
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.to(device=device, dtype=dtype)
            if negative_prompt_embeds.shape[0] != prompt_embeds.shape[0]:
                negative_prompt_embeds = negative_prompt_embeds.repeat_interleave(
                    num_images_per_prompt, dim=0
                )
        return prompt_embeds, negative_prompt_embeds


class EncoderPipelineAdapter(TargetAdapter):
    """Adapter for :class:`EncoderConditionedPipeline`: steers its ``prompt_embeds``."""

    family = "encoder"
    pipeline_classes = ("EncoderConditionedPipeline",)

    def __init__(self, pipe: Any, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(pipe, **kwargs)
        self.name = name or str(getattr(pipe, "_safesteer_encoder_name", "") or "custom")
        self._dim = int(pipe.text_encoder.config.hidden_size)

    @property
    def conditioning_space(self) -> str:
        return f"encoder/{self.name}"

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(prompts, self.pipe._execution_device, 1, False)

    def token_mask(self, prompts: list[str] | None, states: Tensor) -> Tensor:
        n, t = states.shape[:2]
        if not prompts or n % len(prompts):
            return torch.ones(n, t, dtype=torch.bool, device=states.device)
        tok = self.pipe.tokenizer(
            prompts, padding="max_length", max_length=t, truncation=True, return_tensors="pt"
        )
        return (
            tok.attention_mask.bool().repeat_interleave(n // len(prompts), dim=0).to(states.device)
        )


def tiny_encoder_pipeline(
    encoder: EncoderTarget | str = "minilm-l6", seed: int = 0
) -> EncoderConditionedPipeline:
    """A tiny **random-weight** UNet + VAE conditioned by a real encoder (a preset name or target).

    Example:
        >>> pipe = tiny_encoder_pipeline("minilm-l6")
        >>> pipe.unet.config.cross_attention_dim
        384
    """
    from safesteer.targets.tiny import _ddim, _sd_unet, _sd_vae

    target = EncoderTarget.from_preset(encoder) if isinstance(encoder, str) else encoder
    torch.manual_seed(seed)
    unet = _sd_unet(target.dim, attention_head_dim=8)
    pipe: Any = EncoderConditionedPipeline(
        vae=_sd_vae(),
        text_encoder=target.model,
        tokenizer=target.tokenizer,
        unet=unet,
        scheduler=_ddim(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.encoder_max_length = target.max_length
    pipe._safesteer_encoder_name = target.name
    pipe.set_progress_bar_config(disable=True)
    return pipe
