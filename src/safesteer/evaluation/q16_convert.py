"""Convert Q16's published ``prompts.p`` into safetensors without executing any code from it.

Q16 (ml-research/Q16) ships its two learned prompt embeddings for CLIP ViT-L/14 as a pickle
(``data/ViT-L-14/prompts.p``: rows "non inappropriate", "inappropriate"; its own loader is
``pickle.load`` then ``torch.HalfTensor``). A pickle can run any function while loading, so it
is never given to ``pickle.load``. Instead:

- a **restricted unpickler** whose ``find_class`` allows only numpy's array-rebuild functions
  (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy[._]core.numeric._frombuffer`` for protocol 5, and ``_codecs.encode`` which protocol
  ≤ 2 uses to rebuild bytes); every callable a pickle can invoke is obtained through
  ``find_class``, so anything else (``os.system``, ``torch._utils._rebuild_tensor_v2``…) is
  refused before it runs. Plain lists of floats need no global at all;
- a ``torch.save`` zip (starts with ``PK``) goes through ``torch.load(weights_only=True)``;
- anything else, and any result that is not a float array ``[2, dim]``, is refused.

The output holds one float32 tensor ``prompts`` ``[2, dim]`` and metadata naming the input file's
SHA-256, which :func:`safesteer.evaluation.q16.load_prompt_embeddings` reads.

Example:
    >>> import pickle, tempfile, numpy as np, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> x = np.random.default_rng(0).standard_normal((2, 768)).astype(np.float16)
    >>> _ = (d / "prompts.p").write_bytes(pickle.dumps(x, protocol=4))
    >>> info = convert_q16(d / "prompts.p", d / "q16.safetensors")
    >>> info["shape"], info["dtype_in"]
    ([2, 768], 'float16')
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from safesteer.atomic import write_bytes_atomic
from safesteer.errors import InputError

ROWS = ("non inappropriate", "inappropriate")
_HINT = "download prompts.p from ml-research/Q16 (data/ViT-L-14/prompts.p) and convert that file"


def _allowed() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric

    reconstruct = multiarray._reconstruct
    frombuffer = getattr(numeric, "_frombuffer")  # noqa: B009 - private, not in the stubs
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,  # pickles made by numpy 1.x
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,  # numpy 2.x
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.numeric", "_frombuffer"): frombuffer,  # protocol 5 out-of-band buffers
        ("numpy._core.numeric", "_frombuffer"): frombuffer,
        ("_codecs", "encode"): codecs.encode,  # protocol <= 2 rebuilds bytes with it (pure)
    }


class ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain Python containers of numbers; refuses everything else."""

    _ALLOWED = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        found = self._ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refused {module}.{name}: only numpy arrays and plain lists are accepted"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: only plain arrays are accepted")


def read_q16_prompts(path: str | Path) -> tuple[torch.Tensor, str]:
    """``(float32 [2, dim] tensor, input dtype name)`` from a Q16 prompt file; never runs code."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Q16 prompt file {p} does not exist", hint=_HINT)
    data = p.read_bytes()
    try:
        if data[:4] == b"PK\x03\x04":  # a torch.save zip: tensors only
            value: Any = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        elif data[:1] == b"\x80" or data[:1] in (b"(", b"]", b"c"):  # pickle protocols 0-5
            value = ArraysOnlyUnpickler(io.BytesIO(data)).load()
        else:
            raise InputError(f"{p} is neither a pickle nor a torch.save file", hint=_HINT)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{p} was refused: {exc}", hint=_HINT) from None
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{p} does not hold an array ({exc})", hint=_HINT) from None
    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[0] != 2:
        raise InputError(
            f"{p} holds a {array.dtype} array of shape {tuple(array.shape)}; Q16 prompts are a "
            "float array [2, dim] (rows: non inappropriate, inappropriate)",
            hint=_HINT,
        )
    if not np.isfinite(array).all():
        raise InputError(f"{p} holds NaN or Inf", hint=_HINT)
    return torch.from_numpy(array.astype(np.float32)), str(array.dtype)


def convert_q16(
    src: str | Path, out: str | Path, *, expect_dim: int | None = None, clip: str = "ViT-L/14"
) -> dict[str, Any]:
    """Read ``src`` with :func:`read_q16_prompts` and write ``out`` (safetensors, atomically)."""
    from safetensors.torch import save

    prompts, dtype_in = read_q16_prompts(src)
    if expect_dim is not None and prompts.shape[1] != expect_dim:
        raise InputError(
            f"{src} has dim {prompts.shape[1]}, expected {expect_dim}",
            hint="use the prompts.p of the CLIP model you score with (ViT-L/14: 768)",
        )
    out_path = Path(out)
    if out_path.suffix != ".safetensors":
        raise InputError(f"{out} should end in .safetensors", hint="name the output *.safetensors")
    info: dict[str, Any] = {
        "source": "ml-research/Q16 prompts.p (learned prompt embeddings)",
        "input_sha256": hashlib.sha256(Path(src).read_bytes()).hexdigest(),
        "rows": list(ROWS),
        "clip": clip,
        "dtype_in": dtype_in,
        "shape": list(prompts.shape),
    }
    meta = {"q16": json.dumps(info, sort_keys=True)}
    write_bytes_atomic(out_path, save({"prompts": prompts.contiguous()}, metadata=meta))
    return info


__all__ = ["ROWS", "ArraysOnlyUnpickler", "convert_q16", "read_q16_prompts"]
