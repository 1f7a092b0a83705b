"""Conditions: packs, the unsteered baseline, native packs and seeded random directions."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError, PackError
from safesteer.evaluation.conditions import load_conditions, random_condition
from safesteer.pack import SafetyPack


def _pack(path, seed=0, dim=32):
    g = torch.Generator().manual_seed(seed)
    pack = SafetyPack(
        global_vector=torch.randn(dim, generator=g) * 3,
        category_vectors={},
        target_id="tiny-sd",
        conditioning_space="sd/clip",
        calibration={"beta": 1.0},
    )
    return str(pack.save(path))


def test_baselines_and_packs(tmp_path):
    a, n = _pack(tmp_path / "ours.safetensors"), _pack(tmp_path / "nat.safetensors", seed=1)
    conds = load_conditions([a], ["none", f"native={n}", "random"], seed=4)
    assert [c.name for c in conds] == ["none", "native-nat", "ours", "random-ours"]
    assert [c.kind for c in conds] == ["none", "native", "pack", "random"]
    assert conds[0].alphas((1, 3)) == (0.0,) and conds[2].alphas((1, 3)) == (1.0, 3.0)
    d = conds[2].describe()
    assert d["dim"] == 32 and d["vector_sha256"] and d["source"] == a


def test_random_direction_has_the_packs_norm_and_is_seeded(tmp_path):
    (base,) = load_conditions([_pack(tmp_path / "p.safetensors")], [])
    r1, r2, r3 = random_condition(base, 0), random_condition(base, 0), random_condition(base, 1)
    v = base.pack.global_vector
    assert r1.pack.global_vector.norm() == pytest.approx(float(v.norm()), rel=1e-5)
    assert torch.equal(r1.pack.global_vector, r2.pack.global_vector)
    assert not torch.equal(r1.pack.global_vector, r3.pack.global_vector)
    cos = torch.nn.functional.cosine_similarity(r1.pack.global_vector, v, dim=0)
    assert abs(float(cos)) < 0.9  # not the pack's own direction
    assert r1.pack.conditioning_space == "sd/clip"


def test_bad_specs(tmp_path):
    with pytest.raises(InputError, match="unknown baseline"):
        load_conditions([], ["sld"])
    with pytest.raises(InputError, match="needs at least one --pack"):
        load_conditions([], ["random"])
    with pytest.raises(InputError, match="native=PATH"):
        load_conditions([], ["native"])
    with pytest.raises(InputError, match="does not exist"):
        load_conditions([str(tmp_path / "missing.safetensors")], [])
    with pytest.raises(InputError, match="nothing to evaluate"):
        load_conditions([], [])
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a pack")
    with pytest.raises(PackError):
        load_conditions([str(bad)], [])


def test_to_projection_mode(tmp_path):
    plain = _pack(tmp_path / "old.safetensors")
    pack = SafetyPack.load(plain)
    pack.calibration.update(to_projection_tau=1.5, to_projection_q=0.95)
    path = str(pack.save(tmp_path / "ours.safetensors"))
    conds = load_conditions([path], ["random"], modes=("always", "to-projection"))
    assert [c.name for c in conds] == ["ours", "ours-to-projection", "random-ours"]
    tp = conds[1]
    assert tp.rule == "to-projection" and not tp.gated
    assert tp.steering_options() == {"rule": "to-projection"}
    assert conds[0].steering_options() == {} and tp.describe()["mode"] == "to-projection"
    with pytest.raises(InputError, match="no target projection"):
        load_conditions([plain], [], modes=("to-projection",))
