"""Judges on planted geometry: a known unsafe axis, near-constant dims, off-manifold pushes."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.evaluation.probes import (
    LinearProbe,
    PCAProbe,
    disagreement,
    fit_probes,
    informative_dims,
)


def planted(n: int = 300, d: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Safe and unsafe clouds that differ by 3 along axis 0; axis 1 is near-constant (std 2e-9)."""
    g = torch.Generator().manual_seed(seed)
    safe = torch.randn(n, d, generator=g)
    unsafe = torch.randn(n, d, generator=g)
    unsafe[:, 0] += 3.0
    safe[:, 1] = 5.0 + 2e-9 * torch.randn(n, generator=g)
    unsafe[:, 1] = 5.0 + 2e-9 * torch.randn(n, generator=g)
    return safe, unsafe


@pytest.mark.parametrize("cls", [LinearProbe, PCAProbe])
def test_judge_separates_planted_axis(cls: type) -> None:
    safe, unsafe = planted()
    test_safe, test_unsafe = planted(seed=1)
    judge = cls().fit(safe, unsafe)
    assert judge.is_unsafe(test_unsafe).float().mean() > 0.85
    assert judge.is_unsafe(test_safe).float().mean() < 0.15
    # pushing unsafe states along -axis0 (towards safe) clears them
    pushed = test_unsafe.clone()
    pushed[:, 0] -= 6.0
    assert judge.is_unsafe(pushed).float().mean() < 0.05


def test_linear_probe_drops_near_constant_dims() -> None:
    safe, unsafe = planted()
    judge = LinearProbe().fit(safe, unsafe)
    assert not bool(judge.kept_[1]) and bool(judge.kept_[0])
    assert judge.describe()["dims_dropped_near_constant"] == 1
    # a tiny push along the near-constant dim (1e-3, a million of its stds) must not flip verdicts
    _, test_unsafe = planted(seed=2)
    before = judge.is_unsafe(test_unsafe)
    nudged = test_unsafe.clone()
    nudged[:, 1] -= 1e-3
    assert torch.equal(before, judge.is_unsafe(nudged))


def test_informative_dims_relative_rule() -> None:
    x = torch.randn(100, 4)
    x[:, 2] = 1e-9 * torch.randn(100)
    assert informative_dims(x).tolist() == [True, True, False, True]


def test_pca_probe_blind_to_off_manifold_push_linear_probe_not() -> None:
    # data lives in the first 3 dims; dim 5 carries a tiny label-correlated signal the linear
    # probe may use but PCA (top 2 components) cannot see
    g = torch.Generator().manual_seed(0)
    safe, unsafe = torch.zeros(200, 6), torch.zeros(200, 6)
    safe[:, :3] = torch.randn(200, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    unsafe[:, :3] = torch.randn(200, 3, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    unsafe[:, 0] += 6.0
    safe[:, 5] = 0.01 * torch.randn(200, generator=g) - 0.02
    unsafe[:, 5] = 0.01 * torch.randn(200, generator=g) + 0.02
    lin, pca = LinearProbe().fit(safe, unsafe), PCAProbe(n_components=2).fit(safe, unsafe)
    pushed = unsafe.clone()
    pushed[:, 5] -= 10.0  # far off the manifold, along the linear probe's minor axis
    same = (pca.is_unsafe(pushed) == pca.is_unsafe(unsafe)).float().mean()
    assert same > 0.95
    assert lin.is_unsafe(unsafe).float().mean() > 0.8
    assert lin.is_unsafe(pushed).float().mean() < 0.5
    assert disagreement(lin, pca, pushed) > 0.4


def test_fit_probes_and_describe() -> None:
    safe, unsafe = planted(n=100)
    judges = fit_probes(safe, unsafe)
    assert set(judges) == {"linear-probe", "pca-probe"}
    for j in judges.values():
        d = j.describe()
        assert d["threshold"] == 0.5 and d["name"] == j.name


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        LinearProbe().fit(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(InputError):
        PCAProbe().fit(torch.randn(1, 3), torch.randn(5, 3))
