"""The shared map contract: make_map, fit/transform/transport/score, refusals."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.alignment import (
    AlignmentMap,
    FitReport,
    MLPMap,
    ProcrustesMap,
    RidgeMap,
    make_map,
)
from safesteer.maths.metrics import mean_cosine


def test_make_map_kinds_and_aliases() -> None:
    assert isinstance(make_map("procrustes"), ProcrustesMap)
    assert isinstance(make_map("SVD"), ProcrustesMap)
    assert isinstance(make_map("ridge", seed=2), RidgeMap)
    m = make_map("mlp", hidden_dim=16)
    assert isinstance(m, MLPMap) and m.hidden_dim == 16
    with pytest.raises(InputError, match="unknown map kind"):
        make_map("magic")
    with pytest.raises(InputError, match="bad options"):
        make_map("ridge", hidden_dim=3)


@pytest.mark.parametrize("kind", ["procrustes", "ridge", "mlp"])
def test_contract_shapes_means_and_score(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g) + 4.0
    y = x @ torch.randn(5, 7, generator=g) - 2.0
    opts = {"hidden_dim": 16, "max_epochs": 20} if kind == "mlp" else {}
    m: AlignmentMap = make_map(kind, **opts).fit(x, y)
    assert m.kind == kind and m.params()["kind"] == kind
    assert m.source_mean_.shape == (5,) and m.target_mean_.shape == (7,)
    assert torch.allclose(m.source_mean_, x.mean(0), atol=1e-5)
    assert m.transform(x).shape == (300, 7) and m.transport(torch.ones(5)).shape == (7,)
    report = m.score(x, y)
    assert isinstance(report, FitReport) and report.n_anchors == 300
    pred = m.transform(x)
    expected = mean_cosine(pred - m.target_mean_, y - m.target_mean_)  # centred cosine
    assert report.mean_cosine == pytest.approx(expected, abs=1e-6)
    assert set(report.as_dict()) == {"r2", "mean_cosine", "n_anchors"}
    assert kind in repr(m).lower() or type(m).__name__ in repr(m)


def test_refusals_name_the_problem() -> None:
    m = RidgeMap()
    with pytest.raises(InputError, match="not fitted"):
        m.transform(torch.zeros(2, 3))
    with pytest.raises(InputError, match="same anchors"):
        m.fit(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(InputError, match="NaN"):
        m.fit(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.zeros(2, 2))
    with pytest.raises(InputError, match=r"\[N, D\]"):
        m.fit(torch.zeros(4), torch.zeros(4))
    m.fit(torch.randn(20, 3), torch.randn(20, 2))
    with pytest.raises(InputError, match="source dim 3"):
        m.transport(torch.zeros(4))
