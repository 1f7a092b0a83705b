"""Save a steered pipeline so that it reloads steered: :func:`save_pretrained`.

``pipe.save_pretrained`` refuses while the pipeline is steered (diffusers would write it
unsteered, and the reload would be silently unsteered). :func:`save_pretrained` writes the
usual diffusers folder, plus for each denoiser ``<name>/safesteer/`` holding the pack
(``pack.safesteer.safetensors``) and ``steering.json`` (settings, the denoiser's class, the
adapter, the pack's tensor hash), and names the denoiser in ``model_index.json`` as
``["safesteer", "SteeredDenoiser"]``. So:

- plain diffusers refuses to load the folder (``safesteer is not one of the libraries
  Diffusers can load components from ... import safesteer``): never silently unsteered;
- after ``import safesteer``, ``DiffusionPipeline.from_pretrained(folder)`` loads the plain
  denoiser class and attaches the pack (:class:`SteeredDenoiser`): the reload is steered.

Share packs on the hub (:meth:`safesteer.SafetyPack.push_to_hub`) rather than steered
pipelines: a folder with a ``safesteer`` entry loads only from a local path.

Example:
    >>> import safesteer, tempfile
    >>> from safesteer import SafetyPack, attach, tiny_pipeline
    >>> import torch
    >>> pipe = tiny_pipeline("sd")  # RANDOM weights
    >>> attach(pipe, SafetyPack(torch.ones(32), {}, "tiny-sd", "sd/clip", {}), alpha=2.0)
    >>> folder = save_pretrained(pipe, tempfile.mkdtemp())
    >>> from diffusers import DiffusionPipeline
    >>> safesteer.is_steered(DiffusionPipeline.from_pretrained(folder))
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from diffusers import ModelMixin

from safesteer.atomic import write_json_atomic
from safesteer.errors import InputError, PackError
from safesteer.pack import SafetyPack
from safesteer.targets.hook import (
    SteeringHook,
    denoisers,
    register,
    saving,
    steering_hook,
)
from safesteer.targets.settings import SteeringSettings

STEERING_FILE = "steering.json"
PACK_FILE = "pack.safesteer.safetensors"
#: the model_index.json entry that routes a denoiser through :class:`SteeredDenoiser`
ENTRY = ["safesteer", "SteeredDenoiser"]


def _adapter_record(hook: SteeringHook, pipe: Any) -> dict[str, Any]:
    adapter = hook.adapter_for(pipe)
    kwargs: dict[str, Any] = {
        "target_id": adapter.target_id,
        "max_sequence_length": adapter.max_sequence_length,
        "random_weights": adapter.random_weights,
    }
    name = getattr(adapter, "name", None)
    if adapter.family == "encoder" and name:
        kwargs["name"] = name
    return {
        "family": adapter.family,
        "class": type(adapter).__name__,
        "conditioning_space": adapter.conditioning_space,
        "kwargs": kwargs,
    }


def save_pretrained(pipe: Any, folder: str | Path, **kwargs: Any) -> Path:
    """Save a steered pipeline to ``folder`` so that it reloads steered (module docstring).

    ``kwargs`` go to diffusers' ``save_pretrained`` (``safe_serialization``, ``variant``…;
    ``push_to_hub`` is refused: such a folder loads only locally). Refused for a pipeline that
    is not steered, and for source-gated steering (the source model is not part of the
    pipeline: attach it again after loading).
    """
    hook = steering_hook(pipe)
    if hook is None:
        raise InputError(
            "this pipeline is not steered",
            hint="use pipe.save_pretrained(folder) for a plain pipeline",
        )
    if kwargs.get("push_to_hub"):
        raise InputError(
            "a steered pipeline folder loads only from a local path",
            hint="push the pack instead: pack.push_to_hub(repo_id)",
        )
    settings = hook.settings
    if settings.uses_gate and settings.gate == "source":
        raise InputError(
            "source-gated steering cannot be saved with the pipeline (it needs the source model)",
            hint="save with gate='target' or ungated, then attach(..., gate='source', "
            "source_reader=...) after loading",
        )
    folder = Path(folder)
    record = {
        "format_version": 1,
        "settings": asdict(settings),
        "adapter": _adapter_record(hook, pipe),
        "pipeline_class": type(pipe).__name__,
        "encoding": {k: _plain(v) for k, v in hook.encoding.items()},
        "pack_tensor_sha256": hook.pack.metadata()["sha256"],
    }
    with saving():
        pipe.save_pretrained(folder, **kwargs)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    for name, module in denoisers(pipe):
        sub = folder / name / "safesteer"
        sub.mkdir(parents=True, exist_ok=True)
        hook.pack.save(sub / PACK_FILE)
        write_json_atomic(sub / STEERING_FILE, {**record, "base_class": type(module).__name__})
        index[name] = list(ENTRY)
    write_json_atomic(index_path, index)
    return folder


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class SteeredDenoiser(ModelMixin):
    """Loader of a denoiser saved by :func:`save_pretrained` (never instantiated).

    ``from_pretrained(path, **kwargs)`` reads ``path/safesteer/steering.json``, loads the plain
    diffusers denoiser class it names with ``kwargs`` (dtype, device map…) and attaches the pack
    to it: the pipeline diffusers builds around it is steered, and its ``model_index`` entry
    is the plain class again (so ``from_pipe`` works and a plain save is refused).
    """

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Any:
        import diffusers

        from safesteer.targets.registry import FAMILIES, adapter_for, compatible_classes

        sub = Path(path) / "safesteer"
        try:
            record = json.loads((sub / STEERING_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PackError(
                f"{sub / STEERING_FILE} is missing or not JSON: this folder names a safesteer "
                "denoiser but carries no steering record",
                hint="save it again with safesteer.save_pretrained(pipe, folder)",
            ) from exc
        pack = SafetyPack.load(sub / PACK_FILE)
        if pack.metadata()["sha256"] != record.get("pack_tensor_sha256"):
            raise PackError(
                f"{sub / PACK_FILE} is not the pack {sub / STEERING_FILE} was saved with",
                hint="save the pipeline again with safesteer.save_pretrained",
            )
        base: Any = getattr(diffusers, str(record["base_class"]), None)
        if not isinstance(base, type) or not hasattr(base, "from_pretrained"):
            raise PackError(
                f"this diffusers has no denoiser class {record['base_class']!r}",
                hint="load with the diffusers version that saved it",
            )
        model = base.from_pretrained(path, **kwargs)
        settings = record["settings"]
        cats = settings.get("categories")
        settings["categories"] = tuple(cats) if isinstance(cats, list) else cats
        adapter_rec = record["adapter"]
        family = FAMILIES.get(adapter_rec["family"])
        pipe_cls = getattr(diffusers, str(record.get("pipeline_class")), None)
        if family is None or not isinstance(pipe_cls, type):
            raise PackError(
                f"{sub / STEERING_FILE} names an unknown family or pipeline class",
                hint="load with the safesteer and diffusers versions that saved it",
            )
        adapter_kwargs = dict(adapter_rec.get("kwargs") or {})
        space = adapter_rec.get("conditioning_space")

        def make_adapter(pipe: Any) -> Any:
            return adapter_for(pipe, conditioning_space=space, **adapter_kwargs)

        hook = SteeringHook(
            pack,
            SteeringSettings(**settings),
            adapter_factory=make_adapter,
            encoding=record.get("encoding") or {},
        )
        register(hook, [model], compatible_classes(pipe_cls, family))
        return model
