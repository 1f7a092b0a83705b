"""The recipes of docs/architecture.md: a new map, classifier or family is a class + one line.

Each test writes a toy extension, adds its one registry line (monkeypatched, so the registry is
restored afterwards) and checks that the library and the CLI pick it up with nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from safesteer.build import SidePairs, assemble_pack
from safesteer.cli import build_parser
from safesteer.evaluation import registry as classifier_registry
from safesteer.evaluation.classifiers import Verdict
from safesteer.maths.alignment import MAPS, AlignmentMap, make_map
from safesteer.targets import registry as family_registry
from safesteer.targets.base import TargetAdapter


class ScaledTruncationMap(AlignmentMap):
    """A toy map: keep the first ``dt`` source coordinates, times a least-squares scale."""

    kind = "scaled-truncation"

    def _fit_centred(self, source: torch.Tensor, target: torch.Tensor) -> None:
        cut = source[:, : target.shape[1]]
        self.scale_ = float((cut * target).sum() / (cut * cut).sum())
        self.dt_ = int(target.shape[1])

    def _apply(self, centred: torch.Tensor) -> torch.Tensor:
        return self.scale_ * centred[..., : self.dt_]


def _choices(command: str, option: str) -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    parser = sub.choices[command]  # type: ignore[index]
    return list(next(a for a in parser._actions if option in a.option_strings).choices)


def test_a_new_map_is_one_module_and_one_registry_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MAPS, ScaledTruncationMap.kind, ScaledTruncationMap)  # the one line
    assert isinstance(make_map("scaled-truncation"), ScaledTruncationMap)
    assert "scaled-truncation" in _choices("build", "--map")
    assert "scaled-truncation" in _choices("demo", "--map")
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(200, 12, generator=g)
    safe, unsafe = torch.randn(40, 12, generator=g) + 1.0, torch.randn(40, 12, generator=g)
    built = assemble_pack(
        source=SidePairs(safe, unsafe, tuple(["a", "b"] * 20)),
        source_anchors=anchors,
        target_anchors=2.0 * anchors[:, :8],
        map_kind="scaled-truncation",
        target_id="toy",
        conditioning_space="toy/space",
        provenance={},
    )
    assert built.pack.provenance["map_kind"] == "scaled-truncation"
    assert built.map is not None and built.map.scale_ == pytest.approx(2.0)


class MeanBrightness:
    """A toy classifier: flags images whose mean brightness is at least the threshold."""

    name = "brightness"
    DEFAULT_THRESHOLD = 0.5

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def classify(self, images: Sequence[Image.Image]) -> list[Verdict]:
        scores = [float(np.asarray(im.convert("L")).mean() / 255) for im in images]
        return [Verdict(s, s >= self.threshold) for s in scores]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "threshold": self.threshold, "random_weights": False}


def test_a_new_classifier_is_one_module_and_one_registry_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from safesteer.evaluation.protocol import PRESETS
    from safesteer.evaluation.runner import EvaluationSpec, evaluate
    from safesteer.evaluation.store import ResultsStore
    from safesteer.evaluation.workplan import PromptSet

    entry = classifier_registry.ClassifierEntry(
        lambda o: MeanBrightness(o.threshold), MeanBrightness.DEFAULT_THRESHOLD
    )
    monkeypatch.setitem(classifier_registry.CLASSIFIERS, "brightness", entry)  # the one line
    assert "brightness" in _choices("evaluate", "--classifiers")
    args = build_parser().parse_args(
        ["evaluate", "--pipeline", "tiny-sd", "--out", "x", "--brightness-threshold", "0.0"]
    )
    assert args.brightness_threshold == 0.0
    settings = PRESETS["quick"].replace(classifiers=("brightness",), brightness_threshold=0.0)
    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path / "run"),
        prompt_sets=(PromptSet.inline("one (ours)", "safety", ["a red house"]),),
        settings=settings.replace(alphas=(0.0,)),
    )
    result = evaluate(spec, progress=False)
    assert result.summary["rows"][0]["asr"] == 1.0  # every image is at least 0.0 bright
    protocol = ResultsStore(result.run_dir).protocol()
    assert protocol.classifiers == [MeanBrightness(0.0).describe()]
    assert protocol.settings["brightness_threshold"] == 0.0


class ToyPipelineAdapter(TargetAdapter):
    """A toy family: an SD pipeline under another class name, encoded like SD."""

    family = "toy"
    space = "clip"
    pipeline_classes = ("ToyPipeline",)

    def _encode_call(self, prompts: list[str]) -> Any:
        return self.pipe.encode_prompt(prompts, self.pipe._execution_device, 1, False)


def test_a_new_family_is_one_module_and_one_registry_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from diffusers import StableDiffusionPipeline

    from safesteer.pack import SafetyPack
    from safesteer.targets import adapter_for, attach, detach
    from safesteer.targets.tiny import tiny_call_defaults, tiny_pipeline

    class ToyPipeline(StableDiffusionPipeline):
        pass

    adapters = (ToyPipelineAdapter, *family_registry.ADAPTERS)
    monkeypatch.setattr(family_registry, "ADAPTERS", adapters)  # the one line
    pipe: Any = ToyPipeline(**tiny_pipeline("sd").components)
    adapter = adapter_for(pipe)
    assert isinstance(adapter, ToyPipelineAdapter) and adapter.conditioning_space == "toy/clip"
    enc = adapter.encode(["a photo of a cat"])  # the default unpacking: out[0], tokenizer mask
    assert enc.states.shape == (1, 77, 32) and int(enc.mask.sum()) == 7
    pack = SafetyPack(
        global_vector=torch.ones(32),
        category_vectors={},
        target_id="toy",
        conditioning_space="toy/clip",
        calibration={},
    )
    call = {"num_inference_steps": 2, "output_type": "np", **tiny_call_defaults("sd")}

    def image() -> np.ndarray:
        return pipe("a photo of a cat", generator=torch.Generator().manual_seed(0), **call).images

    plain = image()
    attach(pipe, pack, alpha=3.0)
    steered = image()
    detach(pipe)
    assert not np.array_equal(plain, steered) and np.array_equal(plain, image())
