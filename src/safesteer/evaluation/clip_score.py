"""CLIP-score: cosine between a generated image's CLIP embedding and its prompt's.

``CLIP(x, t) = s · cos(e_img(x), e_txt(t))`` with ``s = 1`` by default (the paper reports the
plain cosine, e.g. 0.319 for FLUX.1-schnell); ``scale=100`` with ``clamp=True`` gives the usual
``max(100·cos, 0)`` of Hessel et al. / torchmetrics.

Example:
    >>> from safesteer.evaluation.clip_model import DEFAULT_CLIP_MODEL, load_clip, random_clip
    >>> from safesteer.targets.tokenizers import clip_tokenizer
    >>> scores = clip_score(images, prompts, load_clip(DEFAULT_CLIP_MODEL))  # doctest: +SKIP
    >>> float(scores.mean())  # doctest: +SKIP
    0.31
    >>> clip = random_clip(clip_tokenizer())  # RANDOM weights: the score means nothing
    >>> clip_score([Image.new("RGB", (32, 32))], ["a cat"], clip).shape
    torch.Size([1])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from safesteer.errors import InputError
from safesteer.evaluation.clip_model import ClipBundle


def clip_score(
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    clip: ClipBundle,
    *,
    scale: float = 1.0,
    clamp: bool = False,
) -> torch.Tensor:
    """Per-pair CLIP-score ``[N]`` for images and the prompts that made them."""
    if len(images) != len(prompts):
        raise InputError(
            f"clip_score got {len(images)} images and {len(prompts)} prompts",
            hint="pass one prompt per image",
        )
    if not images:
        return torch.zeros(0)
    cos = (clip.image_embeds(images) * clip.text_embeds(prompts)).sum(-1)
    out = scale * cos
    return out.clamp_min(0.0) if clamp else out
