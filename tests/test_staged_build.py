"""`safesteer build` at real scale: one model in memory at a time, layer auto, native packs, a
smaller gate reader, dtype/device options and the parity record in the pack."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from safesteer.cli import main
from safesteer.data import benign_anchors, load_pairs
from safesteer.jobs.staged_build import BuildPlan, build_staged
from safesteer.pack import SafetyPack
from safesteer.targets import attach, detach, load_pipeline, load_target

PAIRS = tuple(load_pairs("train")[:16])
ANCHORS = tuple(benign_anchors(40))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _plan(**kw) -> BuildPlan:
    base = {"source": "minilm-l6", "layer": 4, "target": "tiny-flux", "pairs": PAIRS}
    return BuildPlan(**{**base, "anchors": ANCHORS, **kw})


def test_source_is_freed_before_the_target_loads():
    seen: list[bool] = []
    refs: list[weakref.ref] = []
    import safesteer.models.source as source_mod

    original = source_mod.SourceReader.__init__

    def remember(self, loaded, **kw):
        original(self, loaded, **kw)
        refs.append(weakref.ref(self.model))

    def target_loader(name, **placement):
        gc.collect()
        seen.append(all(r() is None for r in refs))  # every source model is gone by now
        return load_target(name, **placement)

    source_mod.SourceReader.__init__ = remember  # type: ignore[method-assign]
    try:
        pack, report = build_staged(_plan(), lambda _: None, target_loader=target_loader)
    finally:
        source_mod.SourceReader.__init__ = original  # type: ignore[method-assign]
    assert refs and seen == [True]
    assert report["models_alive_when_target_loaded"] == 0
    assert report["order"] == [
        "source minilm-l6: loaded, read, freed",
        "target tiny-flux: loaded, read, freed",
    ]
    # the target's encoding is recorded, and attach checks it
    assert pack.encoding["max_sequence_length"] == 16 and pack.encoding["family"] == "flux"


def test_layer_auto_uses_the_source_side_rule():
    from safesteer.models import SourceReader, choose_layer

    pack, _ = build_staged(_plan(layer="auto"), lambda _: None)
    expected = choose_layer(SourceReader.from_preset("minilm-l6"), pairs=list(PAIRS))
    assert pack.provenance["source_layer"] == expected


def test_native_pack_reads_no_source():
    pack, report = build_staged(_plan(native=True, source=""), lambda _: None)
    assert pack.provenance["direction"].startswith("native")
    assert pack.source_gate is None and report["order"] == ["target tiny-flux: loaded, read, freed"]


def test_smaller_gate_reader_names_itself_in_the_pack():
    pack, report = build_staged(
        _plan(source="minilm-l6", layer=4, gate_reader="smollm2-135m", gate_layer=15),
        lambda _: None,
    )
    assert pack.provenance["source_model"].startswith("minilm-l6")
    assert pack.source_gate_spec["model_id"].startswith("smollm2-135m")
    assert pack.source_gate_spec["layer"] == 15 and pack.source_gate_spec["dim"] == 576
    assert pack.source_gate is not None and pack.source_gate.centre_.shape[-1] == 576
    assert "gate reader smollm2-135m: loaded, read, freed" in report["order"]


def test_bf16_build_and_the_reader_returns_float32_on_cpu():
    from safesteer.models import SourceReader

    reader = SourceReader.from_preset("minilm-l6", dtype="bfloat16", device="cpu", cache=False)
    states = reader.pooled(["a cat on a sofa"], 3)
    assert reader.dtype == torch.bfloat16 and states.dtype == torch.float32
    assert states.device.type == "cpu"
    pack, _ = build_staged(_plan(dtype="bfloat16"), lambda _: None)
    pipe, _ = load_pipeline("tiny-flux", dtype="bfloat16")
    attach(pipe, pack, alpha=2.0)
    detach(pipe)


def test_build_cli_layer_auto_native_and_refusals(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    import json

    pairs.write_text(
        "".join(
            json.dumps({"safe": p.safe, "unsafe": p.unsafe, "category": p.category}) + "\n"
            for p in PAIRS
        )
    )
    anchors = tmp_path / "anchors.txt"
    anchors.write_text("\n".join(ANCHORS) + "\n")
    common = ["--target", "tiny-flux", "--pairs", str(pairs), "--anchors", str(anchors)]
    out = tmp_path / "auto.safetensors"
    args = ["build", "--source", "minilm-l6", "--layer", "auto", *common, "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "memory estimate" in printed and "max_sequence_length 16" in printed
    assert SafetyPack.load(out).encoding["max_sequence_length"] == 16
    native = tmp_path / "native.safetensors"
    assert main(["build", "--native", *common, "--out", str(native)]) == 0
    assert SafetyPack.load(native).provenance["direction"].startswith("native")
    assert main(["build", *common, "--out", str(native)]) == 2  # no source, not native
    assert "needs --source and --layer" in capsys.readouterr().err
    if not torch.cuda.is_available():
        bad = ["build", "--native", *common, "--out", str(native), "--offload", "model"]
        assert main(bad) == 2
        assert "needs a CUDA device" in capsys.readouterr().err
