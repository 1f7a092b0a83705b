"""How much memory a model needs, from its configs alone (meta device: no weights, no RAM).

Each component is built from its ``config.json`` under ``torch.device("meta")`` — parameters
get shapes but no storage — and its bytes are ``Σ numel × itemsize(dtype)``. A pipeline folder
(or hub snapshot) is read through its ``model_index.json``; a source LLM through its single
``config.json``. For a hub id only the configs are fetched (kilobytes, through the hub cache;
offline they must be in the cache already). The estimate covers parameters only: activations,
the CUDA context and the VAE decode add roughly 10–20 %, hence :data:`OVERHEAD`.

:func:`check_fits` refuses, before anything loads, a run whose peak cannot fit the device (GPU
memory; RAM on CPU), unless told to go ahead anyway.

Example (the real FLUX.1-schnell configs the tests keep; no weights are read):
    >>> est = estimate_pipeline("tests/data/configs/flux.1-schnell", "bfloat16")  # doctest: +SKIP
    >>> round(est.params / 1e9, 2), est.gib  # doctest: +SKIP
    (16.86, '31.4 GiB')
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from safesteer.errors import InputError, ModelLoadError
from safesteer.models.device import gib, resolve_dtype

#: parameters are not all a run holds: activations, CUDA context, decode buffers
OVERHEAD = 1.15
#: model_index entries that hold weights (schedulers, tokenizers, processors do not)
_WEIGHTLESS = ("Scheduler", "Tokenizer", "TokenizerFast", "Processor", "FeatureExtractor")


@dataclass(frozen=True)
class ComponentEstimate:
    """One component: its class, parameter count and bytes in the run's dtype."""

    name: str
    cls: str
    params: int
    bytes: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Parameter memory of one model (a pipeline's components, or one LLM)."""

    model: str
    dtype: str
    components: tuple[ComponentEstimate, ...]
    source: str  # where the counts came from (configs on meta device, or given counts)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def params(self) -> int:
        return sum(c.params for c in self.components)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    @property
    def largest(self) -> int:
        """Bytes of the largest component (what model CPU offload keeps on the GPU)."""
        return max((c.bytes for c in self.components), default=0)

    @property
    def gib(self) -> str:
        return gib(self.bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dtype": self.dtype,
            "params": self.params,
            "bytes": self.bytes,
            "source": self.source,
            "components": {c.name: {"class": c.cls, "params": c.params} for c in self.components},
            "notes": list(self.notes),
        }


def _quiet() -> Any:
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _diffusers_params(folder: Path, cls_name: str) -> int:
    import diffusers

    cls = getattr(diffusers, cls_name, None)
    if cls is None:
        raise ModelLoadError(f"diffusers has no class {cls_name!r} ({folder})")
    config = cls.load_config(str(folder))
    with _quiet(), torch.device("meta"):
        model = cls.from_config(config)
    return _count(model)


def _transformers_params(folder: Path, cls_name: str | None) -> int:
    import transformers
    from transformers import AutoConfig

    with _quiet():
        config = AutoConfig.from_pretrained(str(folder))
    names = [cls_name] if cls_name else list(getattr(config, "architectures", None) or [])
    cls = next((getattr(transformers, n) for n in names if hasattr(transformers, n)), None)
    with _quiet(), torch.device("meta"):
        model = cls(config) if cls is not None else transformers.AutoModel.from_config(config)
    return _count(model)


def _dtype_bytes(dtype: torch.dtype) -> int:
    return int(torch.empty(0, dtype=dtype).element_size())


def _local_folder(id_or_path: str, patterns: list[str]) -> Path:
    """A folder with the configs: the path itself, or the hub snapshot of the configs only."""
    path = Path(id_or_path).expanduser()
    if path.exists():
        return path
    if id_or_path.startswith(("/", "./", "../", "~")):
        raise InputError(f"model folder {id_or_path} does not exist", hint="check the path")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(id_or_path, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown id, gated repo: all mean "no configs here"
        raise ModelLoadError(
            f"cannot read the configs of {id_or_path!r} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint="connect to the hub once (configs are kilobytes and then cached), or pass a "
            "local folder",
        ) from None


def estimate_pipeline(id_or_path: str, dtype: Any = "bfloat16") -> MemoryEstimate:
    """Parameter memory of every weighted component in a pipeline's ``model_index.json``."""
    torch_dtype = resolve_dtype(dtype, "cuda")
    folder = _local_folder(id_or_path, ["model_index.json", "*/config.json"])
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise InputError(
            f"{id_or_path} has no model_index.json (not a diffusers pipeline)",
            hint="pass a diffusers pipeline id or folder",
        )
    index = json.loads(index_path.read_text())
    size = _dtype_bytes(torch_dtype)
    parts = []
    for name, entry in sorted(index.items()):
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2:
            continue
        library, cls_name = entry
        if (
            not cls_name
            or str(cls_name).endswith(_WEIGHTLESS)
            or library
            not in (
                "diffusers",
                "transformers",
            )
        ):
            continue
        sub = folder / name
        if not (sub / "config.json").is_file():
            continue
        count = (
            _diffusers_params(sub, cls_name)
            if library == "diffusers"
            else _transformers_params(sub, cls_name)
        )
        parts.append(ComponentEstimate(name, str(cls_name), count, count * size))
    return MemoryEstimate(
        model=id_or_path,
        dtype=str(torch_dtype).removeprefix("torch."),
        components=tuple(parts),
        source=f"configs built on the meta device ({folder})",
    )


def estimate_model(id_or_path: str, dtype: Any = "bfloat16") -> MemoryEstimate:
    """Parameter memory of one transformers model (a source LLM) from its ``config.json``."""
    torch_dtype = resolve_dtype(dtype, "cuda")
    folder = _local_folder(id_or_path, ["config.json"])
    count = _transformers_params(folder, None)
    cls = json.loads((folder / "config.json").read_text()).get("architectures", ["?"])[0]
    return MemoryEstimate(
        model=id_or_path,
        dtype=str(torch_dtype).removeprefix("torch."),
        components=(ComponentEstimate("model", cls, count, count * _dtype_bytes(torch_dtype)),),
        source=f"config built on the meta device ({folder})",
    )


def from_counts(model: str, counts: dict[str, int], dtype: Any, source: str) -> MemoryEstimate:
    """An estimate from parameter counts someone published (when configs are out of reach)."""
    torch_dtype = resolve_dtype(dtype, "cuda")
    size = _dtype_bytes(torch_dtype)
    return MemoryEstimate(
        model=model,
        dtype=str(torch_dtype).removeprefix("torch."),
        components=tuple(
            ComponentEstimate(k, "?", int(v), int(v) * size) for k, v in counts.items()
        ),
        source=source,
    )


@dataclass(frozen=True)
class Peak:
    """What a run holds at its peak on the device and in RAM (parameters × OVERHEAD)."""

    device_bytes: int
    ram_bytes: int
    rule: str


def peak(
    source: MemoryEstimate | None,
    generator: MemoryEstimate | None,
    *,
    offload: str = "none",
    sequential: bool = True,
) -> Peak:
    """Peak memory of a run that loads ``source`` and ``generator``.

    Sequential (safesteer's default): the source is freed before the generator loads, so the
    peak is ``max(source, generator)``. ``offload="model"`` keeps one generator component on
    the device at a time (the rest in RAM); ``"sequential"`` one layer.
    """
    src = source.bytes if source is not None else 0
    gen = generator.bytes if generator is not None else 0
    if offload == "model" and generator is not None:
        on_device, in_ram = generator.largest, gen
    elif offload == "sequential" and generator is not None:
        on_device, in_ram = 0, gen
    else:
        on_device, in_ram = gen, 0
    device = max(src, on_device) if sequential else src + on_device
    rule = (
        "max(source, generator): the source is read and freed before the generator loads"
        if sequential
        else "source + generator (both resident)"
    )
    if offload != "none":
        rule += f"; generator with {offload} CPU offload (RAM holds the rest)"
    return Peak(int(device * OVERHEAD), int(in_ram * OVERHEAD), rule)


def available_bytes(device: str) -> int:
    """Free memory where the run happens: GPU free memory, or RAM available on CPU."""
    if str(device).startswith("cuda"):
        index = torch.device(device).index or 0
        free, _ = torch.cuda.mem_get_info(index)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_fits(need: Peak, device: str, *, force: bool = False) -> str:
    """A line saying the run fits, or :class:`InputError` when it cannot (unless ``force``)."""
    where = "GPU memory" if str(device).startswith("cuda") else "RAM"
    have = available_bytes(device)
    on_gpu = str(device).startswith("cuda")
    want = need.device_bytes + (0 if on_gpu else need.ram_bytes)
    line = f"needs ~{gib(want)} of {where} ({need.rule}; ×{OVERHEAD} overhead), {gib(have)} free"
    if want > have and not force:
        raise InputError(
            f"this run {line}: it would not fit on {device}",
            hint="use a smaller dtype (--dtype bfloat16), --offload model on a GPU, a machine "
            "with more memory, or --skip-memory-check to try anyway",
        )
    if str(device).startswith("cuda") and need.ram_bytes:
        ram = available_bytes("cpu")
        if need.ram_bytes > ram and not force:
            raise InputError(
                f"offload keeps ~{gib(need.ram_bytes)} in RAM, and {gib(ram)} is free",
                hint="drop --offload or use a machine with more RAM (--skip-memory-check: try)",
            )
    return line


__all__ = [
    "OVERHEAD",
    "ComponentEstimate",
    "MemoryEstimate",
    "Peak",
    "available_bytes",
    "check_fits",
    "estimate_model",
    "estimate_pipeline",
    "from_counts",
    "peak",
]
