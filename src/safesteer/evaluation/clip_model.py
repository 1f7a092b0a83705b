"""Loading a CLIP model for CLIP-score and Q16: real from the hub or a folder, or tiny random.

``ClipBundle`` wraps a ``transformers.CLIPModel`` with its image processor (the PIL one: the
default processor needs torchvision) and tokenizer, and returns L2-normalised embeddings::

    e_img(x) = f_img(x) / ‖f_img(x)‖,   e_txt(t) = f_txt(t) / ‖f_txt(t)‖

Example:
    >>> clip = load_clip("openai/clip-vit-large-patch14")  # doctest: +SKIP
    >>> clip.image_embeds([image]).shape  # doctest: +SKIP
    torch.Size([1, 768])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from safesteer.errors import InputError, ModelLoadError
from safesteer.hub import hub_access

# Pinned: the CLIP used by the paper's utility metric and by Q16.
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"


@dataclass
class ClipBundle:
    """A CLIP model with its processor and tokenizer, and where its weights came from."""

    model: Any
    processor: Any
    tokenizer: Any
    model_id: str
    revision: str | None = None
    random_weights: bool = False
    device: str = "cpu"

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @torch.no_grad()
    def image_embeds(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings ``[N, dim]`` (float32, CPU)."""
        pixels = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        values = pixels["pixel_values"].to(self.device, dtype=self.model.dtype)
        out = self.model.get_image_features(pixel_values=values)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu()

    @torch.no_grad()
    def text_embeds(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[N, dim]``; prompts past CLIP's 77 tokens are cut."""
        max_len = int(self.model.config.text_config.max_position_embeddings)
        tok = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
        out = self.model.get_text_features(
            input_ids=tok["input_ids"].to(self.device),
            attention_mask=tok["attention_mask"].to(self.device),
        )
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu()

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "revision": self.revision or "unpinned",
            "projection_dim": self.dim,
            "random_weights": self.random_weights,
        }


def load_clip(id_or_path: str, *, revision: str | None = None, device: str = "cpu") -> ClipBundle:
    """Load a CLIP model (hub id or local folder with model, processor and tokenizer files)."""
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    kw: dict[str, Any] = {"revision": revision} if revision else {}
    kw.update(hub_access(id_or_path, what="CLIP model", revision=revision))  # fail fast offline
    try:
        model: Any = CLIPModel.from_pretrained(id_or_path, **kw)
        model = model.to(device).eval()
        processor = CLIPImageProcessorPil.from_pretrained(id_or_path, **kw)
        tokenizer = CLIPTokenizer.from_pretrained(id_or_path, **kw)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load CLIP model {id_or_path!r}: {exc}",
            hint="give a local folder saved with save_pretrained, or a hub id on a machine with "
            "the hub; use --clip-model random for a labelled random CLIP (tests only)",
        ) from exc
    return ClipBundle(model, processor, tokenizer, id_or_path, revision, False, device)


def random_clip(tokenizer: Any, *, seed: int = 0, image_size: int = 32) -> ClipBundle:
    """A tiny randomly initialised CLIP built from a config (its scores are meaningless).

    ``tokenizer`` is any CLIP tokenizer (a tiny pipeline's ``pipe.tokenizer`` works); the text
    tower's vocabulary is sized to it.
    """
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    if tokenizer is None:
        raise InputError("a random CLIP needs a tokenizer", hint="pass a CLIPTokenizer")
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return ClipBundle(model, processor, tokenizer, f"random-clip(seed={seed})", None, True)
