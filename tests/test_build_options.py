"""``safesteer build --direction / --also-source / --to-projection-q`` (issue 11's options on
the command line): what each writes into the pack, checked against the library's own rules."""

from __future__ import annotations

import pytest
import torch

from safesteer.cli import main
from safesteer.data.sources import resolve_anchors
from safesteer.maths.directions import average_transported
from safesteer.pack import SafetyPack

DATA = ["--pairs", "safesteer:test[:60]", "--anchors", "parti[:24],ours[:16]"]


def _build(tmp_path, name: str, *extra: str, source: str = "minilm-l6@4") -> SafetyPack:
    torch.set_num_threads(1)
    model, _, layer = source.partition("@")
    out = tmp_path / f"{name}.safetensors"
    args = ["build", "--source", model, "--layer", layer, "--target", "tiny-flux", *DATA]
    assert main([*args, *extra, "--out", str(out)]) == 0
    return SafetyPack.load(out)


@pytest.mark.slow
def test_two_sources_average_the_single_source_vectors(tmp_path):
    one = _build(tmp_path, "minilm")
    two = _build(tmp_path, "smollm2", source="smollm2-135m@3")
    both = _build(tmp_path, "both", "--also-source", "smollm2-135m@3")
    expected = average_transported([one.global_vector, two.global_vector])
    assert torch.allclose(both.global_vector, expected, rtol=1e-4, atol=1e-5)
    for name in one.categories:
        want = average_transported([one.category_vectors[name], two.category_vectors[name]])
        assert torch.allclose(both.category_vectors[name], want, rtol=1e-4, atol=1e-5)
    models = [s["source_model"] for s in both.provenance["sources"]]
    assert (
        len(models) == 2
        and models[1].startswith("smollm2-135m")
        and [s["source_layer"] for s in both.provenance["sources"]] == [4, 3]
    )
    assert both.calibration["n_sources"] == 2.0
    # neither single source is the average
    assert (
        float(torch.nn.functional.cosine_similarity(both.global_vector, one.global_vector, 0))
        < 0.9999
    )


@pytest.mark.slow
def test_shrunk_lda_direction_and_projection_quantile_are_recorded_and_used(tmp_path):
    plain = _build(tmp_path, "plain")
    lda = _build(tmp_path, "lda", "--direction", "shrunk-lda", "--to-projection-q", "0.8")
    assert plain.provenance["direction_kind"] == "difference-of-means"
    assert lda.provenance["direction_kind"] == "shrunk-lda"
    cos = torch.nn.functional.cosine_similarity(plain.global_vector, lda.global_vector, 0)
    assert float(cos) < 0.999  # another direction, same data
    assert lda.calibration["to_projection_q"] == pytest.approx(0.8)
    assert plain.calibration["to_projection_q"] == pytest.approx(0.95)
    assert lda.calibration["to_projection_tau"] != plain.calibration["to_projection_tau"]


@pytest.mark.slow
def test_named_anchors_give_set_max_gates_and_a_file_a_pooled_one(tmp_path):
    named = _build(tmp_path, "named")  # DATA: parti and ours, named
    anchors = tmp_path / "anchors.txt"
    anchors.write_text("\n".join(resolve_anchors("parti[:24],ours[:16]").items) + "\n")
    pairs = ["--pairs", DATA[1], "--anchors", str(anchors)]
    torch.set_num_threads(1)
    out = tmp_path / "file.safetensors"
    args = ["build", "--source", "minilm-l6", "--layer", "4", "--target", "tiny-flux"]
    assert main([*args, *pairs, "--out", str(out)]) == 0
    from_file = SafetyPack.load(out)
    assert named.gate.threshold_rule == "set-max" and named.source_gate is not None
    assert named.source_gate.threshold_rule == "set-max"
    assert set(named.gate.group_rates_) == {"parti", "ours"}
    assert from_file.gate.threshold_rule == "pooled"
    assert from_file.source_gate is not None and from_file.source_gate.threshold_rule == "pooled"
    # the same texts either way: the maps and vectors agree, only the gates differ
    assert torch.allclose(named.global_vector, from_file.global_vector)
