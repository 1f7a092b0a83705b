"""Generate images or video frames with a (steered) pipeline and record every setting.

:func:`generate_to_folder` runs one pipeline call per prompt (seed ``seed + i`` for prompt
``i``), writes PNGs atomically (videos: one PNG per frame) and a JSON record: pipeline id,
family and conditioning space, whether the weights are random, the pack file and its SHA-256,
α and every steering option, steps, guidance, size, seeds, which prompts were steered with which
categories and gate scores, and the software versions.

Example:
    >>> from safesteer.targets import load_pipeline
    >>> pipe, adapter = load_pipeline("tiny-sd")  # RANDOM weights
    >>> record = generate_to_folder(pipe, adapter, ["a cat"], "out", steps=2, height=32, width=32)
    >>> record["random_weights"], len(record["items"])  # unsteered: no pack given
    (True, 1)
"""

from __future__ import annotations

import hashlib
import inspect
import io
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safesteer.atomic import write_bytes_atomic, write_json_atomic
from safesteer.errors import InputError
from safesteer.pack import SafetyPack
from safesteer.targets.attach import (
    GateSide,
    SteeringRule,
    Tokens,
    attach,
    detach,
    last_steering,
)
from safesteer.targets.base import TargetAdapter


def file_sha256(path: str | Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    pixels = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def generate_to_folder(
    pipe: Any,
    adapter: TargetAdapter,
    prompts: Sequence[str],
    out_dir: str | Path,
    *,
    pack: SafetyPack | None = None,
    pack_path: str | Path | None = None,
    alpha: float | None = None,
    tokens: Tokens = "all",
    gated: bool = False,
    categories: str | Sequence[str] | None = None,
    steer_negative: bool = False,
    seed: int = 0,
    steps: int | None = None,
    guidance_scale: float | None = None,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
    negative_prompt: str | None = None,
    pipeline_id: str | None = None,
    call_kwargs: dict[str, Any] | None = None,
    gate: GateSide = "target",
    source_reader: Any = None,
    rule: SteeringRule = "add",
) -> dict[str, Any]:
    """Generate one image (or frame sequence) per prompt into ``out_dir``; return the record.

    Without ``pack`` the pipeline runs unsteered (a baseline with the same seeds). ``gate``,
    ``source_reader`` and ``rule`` are passed to :func:`~safesteer.targets.attach.attach`. The
    record is also written to ``out_dir/generate.json``.
    """
    texts = list(prompts)
    if not texts:
        raise InputError("no prompts to generate", hint="pass --prompt TEXT or --prompts FILE")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = adapter.makes_video
    kwargs: dict[str, Any] = dict(call_kwargs or {})
    length = adapter.max_sequence_length  # the length the pack was fitted at (or the default)
    if (
        length is not None
        and "max_sequence_length" in inspect.signature(type(pipe).__call__).parameters
    ):
        kwargs.setdefault("max_sequence_length", int(length))
    for key, value in (
        ("num_inference_steps", steps),
        ("guidance_scale", guidance_scale),
        ("height", height),
        ("width", width),
        ("num_frames", num_frames if video else None),
        ("negative_prompt", negative_prompt),
    ):
        if value is not None:
            kwargs[key] = value
    if pack is not None:
        alpha = pack.alpha_default if alpha is None else float(alpha)
        attach(
            pipe,
            pack,
            alpha,
            tokens=tokens,
            steer_negative=steer_negative,
            gated=gated,
            categories=categories,
            adapter=adapter,
            gate=gate,
            source_reader=source_reader,
            rule=rule,
        )
    items = []
    try:
        for i, prompt in enumerate(texts):
            generator = torch.Generator().manual_seed(seed + i)
            result = pipe(prompt=prompt, generator=generator, output_type="np", **kwargs)
            files = []
            if video:
                frames = np.asarray(result.frames[0])
                for f, frame in enumerate(frames):
                    name = f"{i:05d}_f{f:03d}.png"
                    _write_png(frame, out / name)
                    files.append(name)
            else:
                name = f"{i:05d}.png"
                _write_png(np.asarray(result.images[0]), out / name)
                files.append(name)
            item: dict[str, Any] = {"index": i, "prompt": prompt, "seed": seed + i, "files": files}
            if pack is not None:
                rows = [asdict(r) for r in last_steering(pipe)]
                item["steering"] = (
                    {k: v for k, v in rows[0].items() if k != "prompt"} if rows else {}
                )
            items.append(item)
    finally:
        if pack is not None:
            detach(pipe)
    from safesteer.provenance import environment_record

    record: dict[str, Any] = {
        "pipeline": pipeline_id or adapter.target_id,
        "family": adapter.family,
        "conditioning_space": adapter.conditioning_space,
        "random_weights": adapter.random_weights,
        "note": (
            "random-weight pipeline: images are noise, only the code path is real"
            if adapter.random_weights
            else "pretrained pipeline"
        ),
        "pack": None
        if pack is None
        else {
            "path": str(pack_path) if pack_path else None,
            "sha256": file_sha256(pack_path) if pack_path else None,
            "target_id": pack.target_id,
            "conditioning_space": pack.conditioning_space,
            "categories": pack.categories,
            "has_gate": pack.gate is not None,
            "has_source_gate": pack.source_gate is not None,
        },
        "steering": None
        if pack is None
        else {
            "alpha": alpha,
            "tokens": tokens,
            "gated": gated,
            "gate": gate,
            "source_reader": None if source_reader is None else str(source_reader.model_id),
            "categories": categories
            if categories is None or isinstance(categories, str)
            else list(categories),
            "steer_negative": steer_negative,
            "rule": rule,
        },
        "call": {k: v for k, v in kwargs.items()},
        "seed": seed,
        "video": video,
        "items": items,
        "environment": environment_record(),
    }
    write_json_atomic(out / "generate.json", record)
    return record
