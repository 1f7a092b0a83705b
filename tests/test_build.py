"""build_pack / assemble_pack on planted geometry, and on a real packaged model (slow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from safesteer.build import (
    GateFit,
    SidePairs,
    SourceSide,
    assemble_multi_source_pack,
    assemble_pack,
    build_pack,
    native_pack,
)
from safesteer.data import PromptPair, read_pairs
from safesteer.errors import InputError
from safesteer.maths.directions import average_transported, shrunk_lda
from safesteer.maths.gating import Gate
from safesteer.maths.metrics import cosine
from safesteer.pack import SafetyPack, source_spec

DS, DT = 24, 16


def planted(n_pairs: int = 60, n_anchors: int = 400, seed: int = 0) -> dict[str, torch.Tensor]:
    """Target = 2 · Qᵀ source + offset (Q [DS, DT], orthonormal columns); anchors live in span(Q)
    so the Procrustes solution is exactly Qᵀ; the pairs differ along source e0 / e1."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(DS, DT, generator=g))  # [DS, DT], orthonormal columns
    anchors = (torch.randn(n_anchors, DT, generator=g) * torch.linspace(3, 0.5, DT)) @ q.T
    base = torch.randn(n_pairs, DS, generator=g)
    shift = torch.zeros(n_pairs, DS)
    shift[: n_pairs // 2, 0] = 2.0  # category "a" differs along e0
    shift[n_pairs // 2 :, 1] = 2.0  # category "b" along e1
    return {
        "q": q,
        "src_anchors": anchors,
        "tgt_anchors": 2.0 * anchors @ q + 7.0,
        "safe": base + shift,
        "unsafe": base,
    }


def _side(p: dict[str, torch.Tensor]) -> SidePairs:
    n = len(p["safe"])
    return SidePairs(p["safe"], p["unsafe"], tuple(["a"] * (n // 2) + ["b"] * (n - n // 2)))


@pytest.mark.parametrize("kind", ["procrustes", "ridge", "whiten-recolour"])
def test_assemble_pack_recovers_planted_direction(kind: str) -> None:
    p = planted()
    built = assemble_pack(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        map_kind=kind,
        target_id="planted",
        conditioning_space="test/planted",
        provenance={"source_model": "planted"},
    )
    pack = built.pack
    v_s = (p["safe"] - p["unsafe"]).mean(0)
    # Procrustes recovers Qᵀ exactly; ridge shrinks low-variance directions a little, and
    # whiten–recolour's shrunk covariances (anchors span 16 of 24 source dims) do too
    floor = 0.999 if kind == "procrustes" else 0.97
    assert cosine(pack.global_vector, v_s @ p["q"]) > floor
    assert built.beta == pytest.approx(2.0, rel=1e-3)
    assert float(pack.global_vector.norm()) == pytest.approx(2.0 * float(v_s.norm()), rel=1e-3)
    assert cosine(pack.category_vectors["a"], p["q"][0]) > floor
    assert cosine(pack.category_vectors["b"], p["q"][1]) > floor
    assert pack.gate is not None and pack.provenance["map_kind"] == kind
    assert pack.provenance["direction"] == "transferred"


def test_assemble_pack_fits_a_source_gate_on_benign_source_states() -> None:
    p = planted()
    spec = {"model_id": "planted@1", "layer": 2, "pooling": {"rule": "mean"}, "dim": DS}
    built = assemble_pack(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        map_kind="ridge",
        target_id="planted",
        conditioning_space="test/planted",
        provenance={"source_model": "planted", "source_layer": 2},
        source_gate_spec=spec,
    )
    gate = built.pack.source_gate
    assert gate is not None and built.pack.source_gate_spec == spec
    assert gate.names == ["global", "a", "b"] and gate.centre_.shape == (DS,)
    assert gate.centre_.shape != built.pack.gate.centre_.shape  # type: ignore[union-attr]
    # thresholds from benign source anchors only: about 5% of them trigger
    assert gate.decide(p["src_anchors"]).steer.float().mean() == pytest.approx(0.05, abs=0.03)
    # the source directions are its vectors: an anchor pushed to the unsafe side of "a" (−e0)
    pushed = p["src_anchors"][:50].clone()
    pushed[:, 0] -= 10.0
    decision = gate.decide(pushed)
    assert bool(decision.steer.all()) and all("a" in act for act in decision.active)
    # without a spec the gate is kept, and its spec says the pooling is unknown
    bare = assemble_pack(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        map_kind="ridge",
        target_id="planted",
        conditioning_space="test/planted",
        provenance={"source_model": "planted", "source_layer": 2},
    ).pack
    assert bare.source_gate is not None and bare.source_gate_spec["pooling"] is None


def test_assemble_pack_zscore_rule_and_bad_options() -> None:
    p = planted()
    kw = dict(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        target_id="planted",
        conditioning_space="test/planted",
        provenance={},
    )
    z = assemble_pack(map_kind="procrustes", calibration="zscore", **kw).pack  # type: ignore[arg-type]
    b = assemble_pack(map_kind="procrustes", **kw).pack  # type: ignore[arg-type]
    # both rules keep the map's direction; the z-score rule sets the length from benign spreads
    assert cosine(z.global_vector, b.global_vector) > 0.9999
    v_s = (p["safe"] - p["unsafe"]).mean(0)
    u_s, u_t = v_s / v_s.norm(), b.global_vector / b.global_vector.norm()
    expected = v_s.norm() / (p["src_anchors"] @ u_s).std() * (p["tgt_anchors"] @ u_t).std()
    assert float(z.global_vector.norm()) == pytest.approx(float(expected), rel=1e-3)
    assert z.provenance["calibration_rule"] == "zscore"
    proj = assemble_pack(map_kind="ridge", gate_score="projection", **kw).pack  # type: ignore[arg-type]
    assert proj.gate is not None and proj.gate.score == "projection"
    with pytest.raises(InputError, match="map kind"):
        assemble_pack(map_kind="svdd", **kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="calibration"):
        assemble_pack(map_kind="ridge", calibration="magic", **kw)  # type: ignore[arg-type]


def test_native_pack_is_target_difference_of_means(tmp_path: Path) -> None:
    p = planted()
    safe_t, unsafe_t = 2.0 * p["safe"] @ p["q"], 2.0 * p["unsafe"] @ p["q"]
    side = SidePairs(safe_t, unsafe_t, _side(p).categories)
    built = native_pack(
        target=side,
        gate_anchors=p["tgt_anchors"],
        target_id="planted",
        conditioning_space="test/planted",
        provenance={},
    )
    assert torch.allclose(built.pack.global_vector, (safe_t - unsafe_t).mean(0), atol=1e-5)
    assert "native" in built.pack.provenance["direction"]
    path = built.pack.save(tmp_path / "native.safetensors")
    assert torch.equal(SafetyPack.load(path).global_vector, built.pack.global_vector)


class RecordingSource:
    model_id = "planted-source"
    num_layers = 3

    def __init__(self, p: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> None:
        self.texts = texts

    def pooled(self, prompts: Sequence[str], layer: int) -> torch.Tensor:
        return torch.stack([self.texts[t] for t in prompts])


class RecordingTarget:
    target_id = "planted-target"
    conditioning_space = "test/planted"
    dim = DT

    def __init__(self, q: torch.Tensor, texts: dict[str, torch.Tensor]) -> None:
        self.q, self.texts, self.seen = q, texts, []  # type: ignore[var-annotated]

    def pooled(self, prompts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        self.seen.extend(prompts)
        return torch.stack([2.0 * self.texts[t] @ self.q for t in prompts])


def test_build_pack_target_never_sees_unsafe_prompts() -> None:
    p = planted(n_pairs=20, n_anchors=100)
    pairs = [PromptPair(f"safe {i}", f"unsafe {i}", "a" if i < 10 else "b") for i in range(20)]
    anchors = [f"anchor {i}" for i in range(100)]
    texts = {f"safe {i}": p["safe"][i] for i in range(20)}
    texts |= {f"unsafe {i}": p["unsafe"][i] for i in range(20)}
    texts |= {a: p["src_anchors"][i] for i, a in enumerate(anchors)}
    target = RecordingTarget(p["q"], texts)
    pack = build_pack(RecordingSource(p, texts), 2, target, "ridge", pairs=pairs, anchors=anchors)
    assert target.seen == anchors  # benign anchors only, never a pair prompt
    assert pack.provenance["n_pairs"] == 20 and pack.provenance["source_layer"] == 2
    assert cosine(pack.global_vector, (p["safe"] - p["unsafe"]).mean(0) @ p["q"]) > 0.95
    source = RecordingSource(p, texts)
    assert pack.source_gate is not None
    assert pack.source_gate_spec == source_spec(source, 2)
    assert pack.check_source_reader(source) == 2
    with pytest.raises(InputError, match="layer"):
        build_pack(RecordingSource(p, texts), 9, target, "ridge", pairs=pairs, anchors=anchors)
    with pytest.raises(InputError, match="anchors"):
        build_pack(RecordingSource(p, texts), 1, target, "ridge", pairs=pairs, anchors=anchors[:3])


def test_read_pairs(tmp_path: Path) -> None:
    good = tmp_path / "pairs.jsonl"
    good.write_text(
        '{"safe": "a cat", "unsafe": "a dead cat", "category": "violence"}\n\n'
        '{"safe": "a dog", "unsafe": "a bloody dog"}\n'
    )
    assert read_pairs(good) == [
        PromptPair("a cat", "a dead cat", "violence"),
        PromptPair("a dog", "a bloody dog", "all"),
    ]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"safe": "a cat"}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1"):
        read_pairs(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_pairs(tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_build_pack_on_real_minilm(tmp_path: Path) -> None:
    from safesteer.data import benign_anchors, load_pairs
    from safesteer.models import load_source
    from safesteer.targets import load_target

    target, _ = load_target("minilm-l6")
    pack = build_pack(
        load_source("smollm2-135m"),
        20,
        target,
        "ridge",
        pairs=load_pairs("train"),
        anchors=benign_anchors(300),
    )
    path = pack.save(tmp_path / "p.safetensors")
    loaded = SafetyPack.load(path)
    loaded.check_fits(dim=384)
    assert loaded.provenance["source_model"] and loaded.provenance["anchors_hash"].startswith(
        "sha256:"
    )
    assert set(loaded.categories) >= {"violence", "sexual"}
    # the source gate reads the reader the spec names, rebuilt from the pack alone
    from safesteer.models import SourceReader

    reader = SourceReader.from_spec(loaded.source_gate_spec)
    assert loaded.check_source_reader(reader) == 20
    assert loaded.source_gate_spec["pooling"]["outlier_ratio"] == reader.outlier_ratio


@pytest.mark.parametrize(("kind", "need"), [("procrustes", 48), ("ridge", 64), ("mlp", 64)])
def test_fewer_anchors_than_the_map_needs_is_a_warning(kind: str, need: int) -> None:
    """Below d_s (ridge, MLP) or min(d_s, d_t) (Procrustes) anchors the map is underdetermined:
    the build goes on, with a warning; at that many anchors, no warning."""
    import warnings

    from safesteer.build import anchors_needed, warn_few_anchors
    from safesteer.errors import SafeSteerWarning

    assert anchors_needed(kind, 64, 48) == need
    g = torch.Generator().manual_seed(0)
    pairs = SidePairs(
        torch.randn(8, 64, generator=g) + 1, torch.randn(8, 64, generator=g), ("a",) * 8
    )
    with pytest.warns(SafeSteerWarning, match=f"40 benign anchors .* needs at least {need}"):
        assemble_pack(
            source=pairs,
            source_anchors=torch.randn(40, 64, generator=g),
            target_anchors=torch.randn(40, 48, generator=g),
            map_kind=kind,
            target_id="t",
            conditioning_space="t/s",
            provenance={},
            map_kwargs={"max_epochs": 2} if kind == "mlp" else None,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", SafeSteerWarning)
        warn_few_anchors(kind, need, 64, 48)


def test_packs_record_the_to_projection_target_from_benign_anchors() -> None:
    p = planted()
    kw = dict(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        map_kind="procrustes",
        target_id="planted",
        conditioning_space="test/planted",
        provenance={},
    )
    pack = assemble_pack(**kw).pack  # type: ignore[arg-type]
    u = pack.global_vector.double() / pack.global_vector.double().norm()
    proj = p["tgt_anchors"].double() @ u
    assert pack.calibration["to_projection_q"] == 0.95
    assert pack.calibration["to_projection_tau"] == pytest.approx(float(torch.quantile(proj, 0.95)))
    other = assemble_pack(to_projection_q=0.5, **kw).pack  # type: ignore[arg-type]
    assert other.calibration["to_projection_tau"] == pytest.approx(float(proj.median()), rel=1e-3)
    safe_t, unsafe_t = 2.0 * p["safe"] @ p["q"], 2.0 * p["unsafe"] @ p["q"]
    native = native_pack(
        target=SidePairs(safe_t, unsafe_t, _side(p).categories),
        gate_anchors=p["tgt_anchors"],
        target_id="planted",
        conditioning_space="test/planted",
        provenance={},
    ).pack
    un = native.global_vector.double() / native.global_vector.double().norm()
    want = float(torch.quantile(p["tgt_anchors"].double() @ un, 0.95))
    assert native.calibration["to_projection_tau"] == pytest.approx(want)


def test_multi_source_pack_averages_each_sources_calibrated_vectors() -> None:
    p = planted()
    g = torch.Generator().manual_seed(11)
    rot, _ = torch.linalg.qr(torch.randn(DS, DS, generator=g))  # a second "source": rotated
    second = {k: (v @ rot if k in ("src_anchors", "safe", "unsafe") else v) for k, v in p.items()}
    second["safe"] = second["safe"] + 0.3 * torch.randn(len(p["safe"]), DS, generator=g)
    sides = [
        SourceSide(_side(p), p["src_anchors"], {"source_model": "one", "source_layer": 3}),
        SourceSide(_side(second), second["src_anchors"], {"source_model": "two"}),
    ]
    common = dict(
        target_anchors=p["tgt_anchors"],
        map_kind="procrustes",
        target_id="planted",
        conditioning_space="test/planted",
    )
    built = assemble_multi_source_pack(sources=sides, provenance={"data": "planted"}, **common)  # type: ignore[arg-type]
    singles = [
        assemble_pack(
            source=side.pairs,
            source_anchors=side.anchors,
            provenance={},
            **common,  # type: ignore[arg-type]
        ).pack
        for side in sides
    ]
    pack = built.pack
    want = average_transported([s.global_vector for s in singles])
    assert torch.allclose(pack.global_vector, want, atol=1e-5)
    for c in ("a", "b"):
        cat = average_transported([s.category_vectors[c] for s in singles])
        assert torch.allclose(pack.category_vectors[c], cat, atol=1e-5)
    assert cosine(pack.global_vector, singles[0].global_vector) < 0.99999  # both sources count
    sources = pack.provenance["sources"]
    assert [s["source_model"] for s in sources] == ["one", "two"]
    assert all("map_params" in s and s["beta"] > 0 for s in sources)
    assert pack.calibration["n_sources"] == 2.0 and pack.provenance["data"] == "planted"
    assert len(built.extras["carried"]) == 2
    # gate and τ are fitted on the averaged vectors; the source gate is the first source's
    assert pack.gate is not None and pack.source_gate is not None
    assert pack.source_gate_spec["model_id"] == "one" and pack.source_gate_spec["layer"] == 3
    assert pack.source_gate.centre_.shape == (DS,)
    u = pack.global_vector.double() / pack.global_vector.double().norm()
    tau = float(torch.quantile(p["tgt_anchors"].double() @ u, 0.95))
    assert pack.calibration["to_projection_tau"] == pytest.approx(tau)
    with pytest.raises(InputError, match="different categories"):
        odd = SidePairs(p["safe"], p["unsafe"], ("a",) * len(p["safe"]))
        assemble_multi_source_pack(
            sources=[sides[0], SourceSide(odd, p["src_anchors"])],
            provenance={},
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(InputError, match="no sources"):
        assemble_multi_source_pack(sources=[], provenance={}, **common)  # type: ignore[arg-type]


def _planted_kwargs(p: dict[str, torch.Tensor]) -> dict[str, object]:
    return dict(
        source=_side(p),
        source_anchors=p["src_anchors"],
        target_anchors=p["tgt_anchors"],
        map_kind="procrustes",
        target_id="planted",
        conditioning_space="test/planted",
        provenance={"source_model": "one", "source_layer": 2},
    )


def test_gate_fit_options_reach_both_gates_and_the_provenance() -> None:
    p = planted(n_anchors=600)
    g = torch.Generator().manual_seed(5)
    src_cal = torch.randn(200, DS, generator=g) @ torch.diag(torch.linspace(1, 2, DS))
    groups = ["parti"] * 120 + ["ours"] * 80
    source_fit = GateFit(
        benign=src_cal,
        groups=groups,
        covariance_from=p["src_anchors"],
        score="whitened",
        threshold_rule="set-max",
    )
    target_fit = GateFit(score="projection")
    built = assemble_pack(
        **_planted_kwargs(p),  # type: ignore[arg-type]
        source_gate_fit=source_fit,
        target_gate_fit=target_fit,
    )
    pack = built.pack
    sg, tg = pack.source_gate, pack.gate
    assert sg is not None and tg is not None
    # the source gate is exactly Gate.fit with these options on these rows
    vectors = {"global": built.source_direction.vector}  # type: ignore[union-attr]
    vectors |= {c: d.vector for c, d in _side(p).directions("source", {})[1].items()}
    want = Gate(score="whitened", threshold_rule="set-max").fit(
        src_cal, vectors, groups=groups, covariance_from=p["src_anchors"]
    )
    assert sg.threshold_rule == "set-max" and sg.group_counts_ == {"parti": 120, "ours": 80}
    assert sg.n_covariance_ == 600 and sg.n_calibration_ == 200
    assert torch.allclose(sg.centre_, want.centre_.to(sg.centre_.dtype))
    assert sg.thresholds_ == pytest.approx(want.thresholds_)
    assert max(sg.group_rates_.values()) <= 0.05 + 1e-9
    assert tg.score == "projection" and tg.threshold_rule == "pooled"
    rec = pack.provenance["source_gate_fit"]
    assert rec == {
        "benign_rows": 200,
        "groups": ["ours", "parti"],
        "covariance_rows": 600,
        "threshold_rule": "set-max",
    }
    assert pack.provenance["gate_fit"]["benign_rows"] is None
    with pytest.raises(InputError, match="set names"):
        GateFit(threshold_rule="set-max")
    with pytest.raises(InputError, match="threshold rule"):
        GateFit(threshold_rule="max")
    with pytest.raises(InputError, match="gate score"):
        GateFit(score="mahalanobis")


def test_shrunk_lda_direction_kind_is_carried_instead_of_difference_of_means() -> None:
    p = planted()
    default = assemble_pack(**_planted_kwargs(p))  # type: ignore[arg-type]
    lda = assemble_pack(direction_kind="shrunk-lda", **_planted_kwargs(p))  # type: ignore[arg-type]
    want = shrunk_lda(p["safe"], p["unsafe"]).vector
    assert lda.source_direction is not None and default.source_direction is not None
    assert torch.allclose(lda.source_direction.vector, want)
    assert lda.source_direction.provenance["direction_kind"] == "shrunk-lda"
    assert not torch.allclose(lda.source_direction.vector, default.source_direction.vector)
    assert lda.pack.provenance["direction_kind"] == "shrunk-lda"
    assert default.pack.provenance["direction_kind"] == "difference-of-means"
    # Procrustes is exact on the anchors' span here: the carried vector is Qᵀ w, rescaled by β
    assert cosine(lda.pack.global_vector, want @ p["q"]) > 0.99
    with pytest.raises(InputError, match="direction kind"):
        assemble_pack(direction_kind="lda", **_planted_kwargs(p))  # type: ignore[arg-type]


def test_assemble_pack_with_more_sources_is_the_multi_source_pack() -> None:
    p = planted()
    g = torch.Generator().manual_seed(9)
    rot, _ = torch.linalg.qr(torch.randn(DS, DS, generator=g))
    other = SourceSide(
        SidePairs(p["safe"] @ rot, p["unsafe"] @ rot, _side(p).categories),
        p["src_anchors"] @ rot,
        {"source_model": "two"},
    )
    kw = _planted_kwargs(p)
    via_assemble = assemble_pack(more_sources=[other], **kw).pack  # type: ignore[arg-type]
    first = SourceSide(_side(p), p["src_anchors"], {"source_model": "one", "source_layer": 2})
    direct = assemble_multi_source_pack(
        sources=[first, other],
        target_anchors=p["tgt_anchors"],
        map_kind="procrustes",
        target_id="planted",
        conditioning_space="test/planted",
        provenance=kw["provenance"],  # type: ignore[arg-type]
    ).pack
    assert torch.equal(via_assemble.global_vector, direct.global_vector)
    assert [s["source_model"] for s in via_assemble.provenance["sources"]] == ["one", "two"]


def test_build_pack_reads_every_source_once_and_averages() -> None:
    p = planted(n_pairs=20, n_anchors=100)
    pairs = [PromptPair(f"safe {i}", f"unsafe {i}", "a" if i < 10 else "b") for i in range(20)]
    anchors = [f"anchor {i}" for i in range(100)]
    texts = {f"safe {i}": p["safe"][i] for i in range(20)}
    texts |= {f"unsafe {i}": p["unsafe"][i] for i in range(20)}
    texts |= {a: p["src_anchors"][i] for i, a in enumerate(anchors)}
    flipped = {t: -v for t, v in texts.items()}  # a second source: the first, negated

    class Second(RecordingSource):
        model_id = "planted-second"

    target = RecordingTarget(p["q"], texts)
    single = build_pack(RecordingSource(p, texts), 2, target, "ridge", pairs=pairs, anchors=anchors)
    both = build_pack(
        RecordingSource(p, texts),
        2,
        target,
        "ridge",
        pairs=pairs,
        anchors=anchors,
        more_sources=[(Second(p, flipped), 1)],
    )
    # negating a source negates its map too: the carried vectors agree, so does their average
    assert cosine(both.global_vector, single.global_vector) > 0.999
    models = [(s["source_model"], s["source_layer"]) for s in both.provenance["sources"]]
    assert models == [("planted-source", 2), ("planted-second", 1)]
    assert both.source_gate_spec == source_spec(RecordingSource(p, texts), 2)
    with pytest.raises(InputError, match="layer"):
        build_pack(
            RecordingSource(p, texts),
            2,
            target,
            "ridge",
            pairs=pairs,
            anchors=anchors,
            more_sources=[(Second(p, flipped), 7)],
        )
