"""Where and in which precision models run: dtype, device, offload — each declared once.

Every command that loads a model takes ``--dtype``, ``--device`` and (generators) ``--offload``;
their ``choices=`` come from :data:`DTYPES` and :data:`OFFLOADS` here, and the library takes the
same names (``load_pipeline(..., dtype=, device=, offload=)``,
``SourceReader.from_preset(..., dtype=, device=)``).

- ``dtype="auto"``: bfloat16 on an accelerator, float32 on CPU (bf16 matmuls are slow on most
  CPUs and the packaged models were checked in float32).
- ``device="auto"``: ``cuda`` when torch sees a GPU, else ``cpu``.
- ``offload="model"``: diffusers' ``enable_model_cpu_offload`` (one component on the GPU at a
  time); ``"sequential"``: ``enable_sequential_cpu_offload`` (one layer at a time, slowest).
  Both need an accelerator: refused on a CPU-only machine before anything loads.

:func:`release` frees a model before the next one loads, so a run's peak memory is the larger
of the two, not their sum; :func:`peak_rss_bytes` / :func:`reset_peak_rss` measure it on CPU.

Example:
    >>> resolve_dtype("auto", "cpu")
    torch.float32
    >>> resolve_dtype("auto", "cuda")
    torch.bfloat16
    >>> check_offload("model", "cpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    safesteer.errors.InputError: --offload model needs a CUDA device...
"""

from __future__ import annotations

import gc
import resource
import sys
from pathlib import Path
from typing import Any

import torch

from safesteer.errors import InputError

#: dtype names accepted everywhere (CLI ``--dtype`` choices): name -> torch dtype (None: auto)
DTYPES: dict[str, torch.dtype | None] = {
    "auto": None,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}
#: short spellings users type
_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}
#: offload modes (CLI ``--offload`` choices)
OFFLOADS: tuple[str, ...] = ("none", "model", "sequential")
DEVICE_HELP = "device to run on: auto (cuda if present, else cpu), cpu, cuda, cuda:1…"
DTYPE_HELP = "precision: auto (bfloat16 on a GPU, float32 on CPU), bfloat16, float16, float32"
OFFLOAD_HELP = (
    "CPU offload of a generator (needs a GPU): none, model (one component on the GPU at a "
    "time), sequential (one layer at a time; slowest, least memory)"
)


def has_accelerator() -> bool:
    """Whether torch sees a CUDA device."""
    return bool(torch.cuda.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> str:
    """``"auto"``/None → ``"cuda"`` when a GPU is present, else ``"cpu"``; others checked."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        return "cuda" if has_accelerator() else "cpu"
    if name.startswith("cuda") and not has_accelerator():
        raise InputError(
            f"device {name!r} asked, but torch sees no CUDA device",
            hint="use --device cpu, or install a CUDA build of torch on a GPU machine",
        )
    try:
        torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {name!r}", hint="use auto, cpu, cuda or cuda:N") from exc
    return name


def resolve_dtype(dtype: str | torch.dtype | None = "auto", device: str = "cpu") -> torch.dtype:
    """A dtype name (or torch dtype) → torch dtype; ``"auto"``/None: bf16 on GPU, fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _ALIASES.get(str(dtype), str(dtype)) if dtype is not None else "auto"
    if name not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    chosen = DTYPES[name]
    if chosen is None:
        return torch.bfloat16 if not str(device).startswith("cpu") else torch.float32
    return chosen


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def check_offload(offload: str | None, device: str) -> str:
    """The offload mode, or :class:`InputError` when it cannot work here (no accelerator)."""
    mode = offload or "none"
    if mode not in OFFLOADS:
        raise InputError(f"unknown offload mode {mode!r}", hint=f"use one of {', '.join(OFFLOADS)}")
    if mode != "none" and (not has_accelerator() or str(device).startswith("cpu")):
        raise InputError(
            f"--offload {mode} needs a CUDA device (it moves components between the GPU and "
            f"CPU RAM); this run is on {device} and torch sees "
            f"{'a' if has_accelerator() else 'no'} GPU",
            hint="drop --offload (on CPU everything is in RAM already)",
        )
    return mode


def apply_offload(pipe: Any, offload: str, device: str) -> None:
    """Enable diffusers' CPU offload on ``pipe`` (call :func:`check_offload` first)."""
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)


def release(*objects: Any) -> None:
    """Drop what the caller passed (they must hold no other reference), collect, empty CUDA.

    Call as ``release(model); del model`` or pass the last reference in; the caller's own name
    must be deleted too for the memory to go.
    """
    del objects
    gc.collect()
    if has_accelerator():
        torch.cuda.empty_cache()


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is no such field)."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since start or :func:`reset_peak_rss` (Linux)."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def rss_bytes() -> int:
    """Resident memory of this process now (Linux; 0 elsewhere)."""
    return _proc_status_bytes("VmRSS") or 0


def reset_peak_rss() -> bool:
    """Reset the peak-RSS counter (Linux ``clear_refs`` 5); False where it cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def gib(n_bytes: float) -> str:
    """``"12.3 GiB"`` (or MiB below 1 GiB)."""
    if n_bytes < 1 << 30:
        return f"{n_bytes / (1 << 20):.1f} MiB"
    return f"{n_bytes / (1 << 30):.1f} GiB"


__all__ = [
    "DEVICE_HELP",
    "DTYPES",
    "DTYPE_HELP",
    "OFFLOADS",
    "OFFLOAD_HELP",
    "apply_offload",
    "check_offload",
    "dtype_name",
    "gib",
    "has_accelerator",
    "peak_rss_bytes",
    "release",
    "reset_peak_rss",
    "resolve_device",
    "resolve_dtype",
    "rss_bytes",
]
