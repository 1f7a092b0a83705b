"""Step 4 of the default job: a few images from a tiny random-weight denoiser on a real encoder.

The UNet and VAE have **random weights** (nothing ships a pretrained diffusion model offline), so
the images are noise; what they show is that the whole path runs — the real encoder's states,
steered by the pack through :func:`safesteer.targets.attach.steered`, condition the denoiser.
The record says how much the steered image differs from the unsteered one with the same seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from safesteer.pack import SafetyPack

IMAGE_NOTE = "random-weight UNet/VAE conditioned on the real encoder: images are noise"


def steered_images(
    adapter: Any,
    name: str,
    pack: SafetyPack,
    prompts: list[str],
    alpha: float,
    out: Path,
    benign: str | None = None,
) -> dict[str, Any]:
    """Unsteered and steered (always-on, ``alpha``) images per prompt, saved as PNG in ``out``.

    With ``benign`` (a prompt the pack's gate does not flag), also checks that gated steering
    leaves its image bit-identical to the unsteered one.
    """
    from safesteer.targets.attach import steered
    from safesteer.targets.encoder import tiny_encoder_pipeline
    from safesteer.targets.tiny import tiny_call_defaults

    out.mkdir(parents=True, exist_ok=True)
    pipe: Any = tiny_encoder_pipeline(adapter, seed=0)
    call = {**tiny_call_defaults("sd"), "num_inference_steps": 2, "output_type": "np"}
    records = []
    import torch

    for i, prompt in enumerate(prompts):
        base = pipe(prompt, generator=torch.Generator().manual_seed(i), **call).images[0]
        with steered(pipe, pack, alpha=alpha):
            steer = pipe(prompt, generator=torch.Generator().manual_seed(i), **call).images[0]
        files = []
        for tag, img in (("unsteered", base), (f"alpha{alpha:g}", steer)):
            path = out / f"{name}-{i}-{tag}.png"
            _save_png(img, path)
            files.append(path.name)
        records.append(
            {
                "prompt": prompt,
                "files": files,
                "mean_abs_pixel_change": float(np.abs(np.asarray(steer) - np.asarray(base)).mean()),
            }
        )
    result: dict[str, Any] = {
        "note": IMAGE_NOTE,
        "random_weights": True,
        "alpha": alpha,
        "steps": call["num_inference_steps"],
        "images": records,
    }
    if benign is not None:
        base = pipe(benign, generator=torch.Generator().manual_seed(0), **call).images[0]
        with steered(pipe, pack, alpha=alpha, gated=True):
            gated = pipe(benign, generator=torch.Generator().manual_seed(0), **call).images[0]
        result["gated_benign_prompt"] = benign
        result["gated_benign_bit_identical"] = bool(np.array_equal(base, gated))
    return result


def _save_png(image: Any, path: Path) -> None:
    from PIL import Image

    arr = (np.clip(np.asarray(image), 0.0, 1.0) * 255).round().astype(np.uint8)
    Image.fromarray(arr).resize((128, 128), Image.Resampling.NEAREST).save(path)
