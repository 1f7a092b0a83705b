"""safesteer: cross-model safety steering for image and video generators.

Learn a safety direction once in a source LLM, carry it into a generator's text-conditioning
space with a map fitted on benign prompts only, and add it at inference.

Public names are imported lazily so that ``import safesteer`` stays fast and the maths does not
pull in diffusers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from safesteer._version import __version__
from safesteer.errors import InputError, ModelLoadError, PackError, SafeSteerError

# public name -> module that defines it, one block per layer in the pipeline's order (sorted).
_EXPORTS: dict[str, str] = {
    # --- data ---
    "CATEGORIES": "safesteer.data",
    "PromptPair": "safesteer.data",
    "PromptRecord": "safesteer.data",
    "benign_anchors": "safesteer.data",
    "load_pairs": "safesteer.data",
    "load_prompts": "safesteer.data",
    "read_anchors": "safesteer.data",
    "read_pairs": "safesteer.data",
    "resolve_anchors": "safesteer.data.sources",
    "resolve_pairs": "safesteer.data.sources",
    # --- models ---
    "LoadedModel": "safesteer.models",
    "SourceReader": "safesteer.models",
    "choose_layer": "safesteer.models",
    "load_preset": "safesteer.models",
    "load_source": "safesteer.models",
    # --- maths ---
    "Direction": "safesteer.maths.directions",
    "FitReport": "safesteer.maths.alignment",
    "Gate": "safesteer.maths.gating",
    "GateDecision": "safesteer.maths.gating",
    "MLPMap": "safesteer.maths.alignment",
    "ProcrustesMap": "safesteer.maths.alignment",
    "RidgeMap": "safesteer.maths.alignment",
    "WhitenRecolourMap": "safesteer.maths.alignment",
    "average_transported": "safesteer.maths.directions",
    "anchor_scale_ratio": "safesteer.maths.calibration",
    "calibrate": "safesteer.maths.calibration",
    "category_directions": "safesteer.maths.directions",
    "combine_directions": "safesteer.maths.steering",
    "difference_of_means": "safesteer.maths.directions",
    "make_map": "safesteer.maths.alignment",
    "masked_mean": "safesteer.maths.pooling",
    "shrunk_lda": "safesteer.maths.directions",
    "steer_states": "safesteer.maths.steering",
    "steer_to_projection": "safesteer.maths.steering",
    "transport_fidelity": "safesteer.maths.metrics",
    # --- build: directions to a calibrated pack ---
    "BuiltPack": "safesteer.build",
    "GateFit": "safesteer.build",
    "SidePairs": "safesteer.build",
    "SourceSide": "safesteer.build",
    "assemble_multi_source_pack": "safesteer.build",
    "assemble_pack": "safesteer.build",
    "build_pack": "safesteer.build",
    # --- pack ---
    "SafetyPack": "safesteer.pack",
    # --- targets ---
    "EncodedPrompts": "safesteer.targets.base",
    "EncoderTarget": "safesteer.targets.encoder",
    "TargetAdapter": "safesteer.targets.base",
    "adapter_for": "safesteer.targets.registry",
    "attach": "safesteer.targets.attach",
    "detach": "safesteer.targets.attach",
    "is_steered": "safesteer.targets.attach",
    "last_steering": "safesteer.targets.attach",
    "load_pipeline": "safesteer.targets.registry",
    "load_target": "safesteer.targets.registry",
    "save_pretrained": "safesteer.targets.saving",
    "steered": "safesteer.targets.attach",
    "tiny_pipeline": "safesteer.targets.tiny",
    # --- evaluation ---
    "EvaluationSettings": "safesteer.evaluation.protocol",
    "EvaluationSpec": "safesteer.evaluation.context",
    "FIDScorer": "safesteer.evaluation.fid",
    "LinearProbe": "safesteer.evaluation.probes",
    "NudeNetClassifier": "safesteer.evaluation.nudenet",
    "OpenNSFWClassifier": "safesteer.evaluation.open_nsfw",
    "PCAProbe": "safesteer.evaluation.probes",
    "PromptSet": "safesteer.evaluation.workplan",
    "ProtocolRecord": "safesteer.evaluation.protocol",
    "Q16Classifier": "safesteer.evaluation.q16",
    "ResultsStore": "safesteer.evaluation.store",
    "clip_score": "safesteer.evaluation.clip_score",
    "evaluate": "safesteer.evaluation.runner",
    "load_clip": "safesteer.evaluation.clip_model",
    "render_report": "safesteer.evaluation.report_page",
    # --- jobs ---
    "JobConfig": "safesteer.jobs.default",
    "run_default_job": "safesteer.jobs.default",
}

# diffusers' loader resolves a ["safesteer", "SteeredDenoiser"] entry of a model_index.json
# (written by safesteer.save_pretrained) in this module, and looks up ModelMixin here to know
# how to load it; not public names
_FOR_DIFFUSERS: dict[str, str] = {
    "SteeredDenoiser": "safesteer.targets.saving",
    "ModelMixin": "diffusers",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from safesteer.build import (
        BuiltPack,
        GateFit,
        SidePairs,
        SourceSide,
        assemble_multi_source_pack,
        assemble_pack,
        build_pack,
    )
    from safesteer.data import (
        CATEGORIES,
        PromptPair,
        PromptRecord,
        benign_anchors,
        load_pairs,
        load_prompts,
        read_anchors,
        read_pairs,
    )
    from safesteer.data.sources import resolve_anchors, resolve_pairs
    from safesteer.evaluation.clip_model import load_clip
    from safesteer.evaluation.clip_score import clip_score
    from safesteer.evaluation.context import EvaluationSpec
    from safesteer.evaluation.fid import FIDScorer
    from safesteer.evaluation.nudenet import NudeNetClassifier
    from safesteer.evaluation.open_nsfw import OpenNSFWClassifier
    from safesteer.evaluation.probes import LinearProbe, PCAProbe
    from safesteer.evaluation.protocol import EvaluationSettings, ProtocolRecord
    from safesteer.evaluation.q16 import Q16Classifier
    from safesteer.evaluation.report_page import render_report
    from safesteer.evaluation.runner import evaluate
    from safesteer.evaluation.store import ResultsStore
    from safesteer.evaluation.workplan import PromptSet
    from safesteer.jobs.default import JobConfig, run_default_job
    from safesteer.maths.alignment import (
        FitReport,
        MLPMap,
        ProcrustesMap,
        RidgeMap,
        WhitenRecolourMap,
        make_map,
    )
    from safesteer.maths.calibration import anchor_scale_ratio, calibrate
    from safesteer.maths.directions import (
        Direction,
        average_transported,
        category_directions,
        difference_of_means,
        shrunk_lda,
    )
    from safesteer.maths.gating import Gate, GateDecision
    from safesteer.maths.metrics import transport_fidelity
    from safesteer.maths.pooling import masked_mean
    from safesteer.maths.steering import combine_directions, steer_states, steer_to_projection
    from safesteer.models import LoadedModel, SourceReader, choose_layer, load_preset, load_source
    from safesteer.pack import SafetyPack
    from safesteer.targets.attach import attach, detach, is_steered, last_steering, steered
    from safesteer.targets.base import EncodedPrompts, TargetAdapter
    from safesteer.targets.encoder import EncoderTarget
    from safesteer.targets.registry import adapter_for, load_pipeline, load_target
    from safesteer.targets.saving import save_pretrained
    from safesteer.targets.tiny import tiny_pipeline

    pass


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name) or _FOR_DIFFUSERS.get(name)
    if module is None:
        raise AttributeError(f"module 'safesteer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "InputError",
    "ModelLoadError",
    "PackError",
    "SafeSteerError",
    "__version__",
    *_EXPORTS,
]
