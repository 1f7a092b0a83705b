"""Step 4 of the default job: images, after the representation-level report.

- An encoder target (Gemma, MiniLM): a few images from a tiny **random-weight** UNet and VAE
  conditioned on the real encoder (:func:`random_weight_images`). Nothing ships a pretrained
  diffusion model offline, so the images are noise; what they show is that the whole path runs —
  the real encoder's states, steered by the pack through
  :func:`safesteer.targets.attach.steered`, condition the denoiser. The record says how much the
  steered image differs from the unsteered one with the same seed.
- A generator target (a diffusers pipeline): the image evaluation of the best pack against
  native and none (:func:`hand_over_to_evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from safesteer.jobs.default.config import JobConfig
from safesteer.jobs.default.splits import JobData
from safesteer.pack import SafetyPack

IMAGE_NOTE = "random-weight UNet/VAE conditioned on the real encoder: images are noise"
#: strength of the random-weight images: mid-range of the paper's sweep
IMAGE_ALPHA = 3.0


def random_weight_images(
    adapter: Any, name: str, pack: SafetyPack, config: JobConfig, data: JobData, held: Tensor
) -> dict[str, Any]:
    """``config.n_images`` test unsafe prompts, unsteered and steered, into ``out/images``.

    A held-out benign anchor the pack's gate leaves alone (``held``: their target states)
    checks that gated steering leaves its image bit-identical.
    """
    chosen = data.test[: config.n_images]
    prompts = [p.unsafe for p in chosen]
    labels = [(f"test #{i}", p.category) for i, p in enumerate(chosen)]  # never the text
    benign = None
    if pack.gate is not None:
        quiet = (~pack.gate.decide(held).steer.bool()).nonzero().flatten().tolist()
        benign = data.anchors.held_out[quiet[0]] if quiet else None
    return steered_images(
        adapter, name, pack, prompts, IMAGE_ALPHA, config.out / "images", benign, labels
    )


def steered_images(
    adapter: Any,
    name: str,
    pack: SafetyPack,
    prompts: list[str],
    alpha: float,
    out: Path,
    benign: str | None = None,
    labels: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Unsteered and steered (always-on, ``alpha``) images per prompt, saved as PNG in ``out``.

    The record names each prompt by ``labels`` (id, category) — never by its text, which may
    be unsafe. With ``benign`` (a prompt the pack's gate does not flag), also checks that gated
    steering leaves its image bit-identical to the unsteered one.
    """
    import torch

    from safesteer.targets.attach import steered
    from safesteer.targets.encoder import tiny_encoder_pipeline
    from safesteer.targets.tiny import tiny_call_defaults

    out.mkdir(parents=True, exist_ok=True)
    pipe: Any = tiny_encoder_pipeline(adapter, seed=0)
    call = {**tiny_call_defaults("sd"), "num_inference_steps": 2, "output_type": "np"}
    records = []
    for i, prompt in enumerate(prompts):
        base = pipe(prompt, generator=torch.Generator().manual_seed(i), **call).images[0]
        with steered(pipe, pack, alpha=alpha):
            steer = pipe(prompt, generator=torch.Generator().manual_seed(i), **call).images[0]
        files = []
        for tag, img in (("unsteered", base), (f"alpha{alpha:g}", steer)):
            path = out / f"{name}-{i}-{tag}.png"
            _save_png(img, path)
            files.append(path.name)
        ident, category = labels[i] if labels else (f"prompt #{i}", None)
        records.append(
            {
                "id": ident,
                "category": category,
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


def evaluation_protocol(pipeline: str, config: JobConfig) -> str:
    """The protocol a generator target is evaluated with: ``config.protocol`` when given, else
    ``quick`` for a ``tiny-<family>`` pipeline (random weights) and ``paper`` otherwise."""
    if config.protocol:
        return config.protocol
    return "quick" if pipeline.startswith("tiny-") else "paper"


def check_hand_over(pipeline: str, config: JobConfig) -> None:
    """Refuse, before any work, an image evaluation that would fail at the end of the job."""
    from safesteer.errors import InputError
    from safesteer.evaluation.protocol import PRESETS

    name = evaluation_protocol(pipeline, config)
    if name not in PRESETS:
        raise InputError(f"unknown protocol {name!r}", hint=f"use one of {', '.join(PRESETS)}")
    settings = PRESETS[name]
    if "q16" in settings.classifiers and not config.q16_prompts:
        raise InputError(
            f"the image evaluation of {pipeline} uses the {name!r} protocol, whose Q16 classifier "
            "needs its prompt embeddings",
            hint="pass --q16-prompts FILE (make it with `safesteer convert-q16 prompts.p "
            "q16.safetensors`), or --protocol quick, or --images 0",
        )


def hand_over_to_evaluation(
    pipeline: str, config: JobConfig, data: JobData, map_kind: str
) -> dict[str, Any]:
    """For a generator: image-level ASR / utility of the best pack against native and none.

    Runs :func:`safesteer.evaluation.runner.evaluate` on our held-out test unsafe prompts and
    ``n_images`` × 10 held-out benign anchors, the best pack always-on, target-gated and
    source-gated, with :func:`evaluation_protocol` (``paper``: Q16 ∨ NudeNet, CLIP, FID — it
    needs ``config.q16_prompts``; ``quick``: packaged classifiers only, which tests the path and
    says nothing about safety on random weights).
    """
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.runner import EvaluationSpec, evaluate
    from safesteer.evaluation.workplan import PromptSet
    from safesteer.models.device import resolve_device

    packs_dir = config.out / "packs"
    safe_name = pipeline.replace("/", "_")
    protocol = evaluation_protocol(pipeline, config)
    settings = PRESETS[protocol]
    if config.clip_model is not None:
        settings = settings.replace(clip_model=config.clip_model or "")
    settings = settings.replace(steps=config.steps, height=config.size, width=config.size)
    spec = EvaluationSpec(
        pipeline=pipeline,
        out=str(config.out / "evaluation"),
        packs=(str(packs_dir / f"{safe_name}-{map_kind}.safetensors"),),
        baselines=("none", f"native={packs_dir / f'{safe_name}-native.safetensors'}"),
        modes=("always", "gated", "gated-source"),
        prompt_sets=(
            PromptSet.inline(
                f"test-unsafe ({data.pairs_label})", "safety", [p.unsafe for p in data.test]
            ),
            PromptSet.inline(
                "held-out benign test sets (labels in metrics.json data.sets)",
                "utility",
                data.anchors.held_out[: 10 * config.n_images],
            ),
        ),
        settings=settings,
        q16_prompts=config.q16_prompts,
        fid_reference=config.fid_reference,
        device=resolve_device(config.device or "auto"),
        dtype=config.dtype,
        offload=config.offload,
    )
    result = evaluate(spec, progress=False)
    return {"run_dir": str(result.run_dir), "protocol": protocol, "summary": result.summary}
