"""FID between generated images and a folder of reference images (torchmetrics).

With feature means ``μ_r, μ_g`` and covariances ``Σ_r, Σ_g``::

    FID = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2})

The standard feature extractor is Inception-v3 pool3 (2048-d) from torch-fidelity's weights
(:meth:`FIDScorer.inception`): on a machine with ``torch-fidelity`` installed and its weights
downloadable. torch-fidelity requires torchvision, which this project does not pull in, so it
is the user's install (``pip install torch-fidelity`` next to a matching torchvision). Any
``nn.Module`` mapping uint8 images ``[N, 3, H, W]`` to ``[N, d]`` also works; tests use a tiny
random one (:meth:`FIDScorer.random_features`), whose FID values are labelled random.

Example:
    >>> scorer = FIDScorer.random_features(seed=0)
    >>> ref = load_reference_images("reference/")  # doctest: +SKIP
    >>> scorer.compute(generated, ref)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from safesteer.errors import InputError, ModelLoadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class _RandomFeatures(torch.nn.Module):
    """A small random conv net: uint8 images -> ``[N, dim]`` features (meaningless, for tests)."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_features = dim
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2),
            torch.nn.GELU(),
            torch.nn.Conv2d(16, dim, 3, stride=2),
            torch.nn.GELU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 255.0)


def load_reference_images(folder: str | Path, limit: int | None = None) -> list[Image.Image]:
    """RGB images from a folder (sorted by name, so runs are reproducible)."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(
            f"FID reference folder {d} does not exist", hint="pass --fid-reference DIR"
        )
    paths = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        paths = paths[:limit]
    if len(paths) < 2:
        raise InputError(f"FID reference folder {d} has {len(paths)} images", hint="give >= 2")
    return [Image.open(p).convert("RGB") for p in paths]


class FIDScorer:
    """Fréchet distance between feature distributions of generated and reference images."""

    def __init__(
        self,
        feature: torch.nn.Module | int = 2048,
        *,
        feature_name: str = "inception-v3 (torch-fidelity)",
        image_size: int = 299,
        random_weights: bool = False,
    ) -> None:
        self.feature = feature
        self.feature_name = feature_name
        self.image_size = int(image_size)
        self.random_weights = random_weights

    @classmethod
    def inception(cls, dims: int = 2048) -> FIDScorer:
        """The standard Inception-v3 features (needs torch-fidelity, see the module docstring)."""
        try:
            import torch_fidelity  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError(
                "FID with Inception-v3 needs torch-fidelity (and torchvision), not installed",
                hint="pip install torch-fidelity with a torchvision matching your torch, or use "
                "--fid-features random for a labelled random extractor",
            ) from exc
        return cls(dims, feature_name=f"inception-v3 pool {dims} (torch-fidelity)")

    @classmethod
    def random_features(cls, *, seed: int = 0, dim: int = 32, image_size: int = 64) -> FIDScorer:
        """A tiny random feature extractor: exercises the code path; values are meaningless."""
        return cls(
            _RandomFeatures(dim, seed),
            feature_name=f"random-conv(dim={dim}, seed={seed})",
            image_size=image_size,
            random_weights=True,
        )

    def _batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        bicubic = Image.Resampling.BICUBIC
        arrays = [np.asarray(im.convert("RGB").resize(size, bicubic)) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW

    def compute(
        self,
        generated: Sequence[Image.Image],
        reference: Sequence[Image.Image],
        batch_size: int = 32,
    ) -> float:
        """FID of ``generated`` against ``reference`` (each needs at least 2 images)."""
        if len(generated) < 2 or len(reference) < 2:
            raise InputError(
                f"FID needs >= 2 images on each side, got {len(generated)} generated and "
                f"{len(reference)} reference",
                hint="generate more utility images or add reference images",
            )
        from torchmetrics.image.fid import FrechetInceptionDistance

        metric = FrechetInceptionDistance(feature=self.feature, normalize=False)
        for real, images in ((True, reference), (False, generated)):
            for i in range(0, len(images), batch_size):
                metric.update(self._batch(images[i : i + batch_size]), real=real)
        return float(metric.compute())

    def describe(self) -> dict[str, Any]:
        return {
            "features": self.feature_name,
            "image_size": self.image_size,
            "implementation": "torchmetrics.image.fid.FrechetInceptionDistance",
            "random_weights": self.random_weights,
        }
