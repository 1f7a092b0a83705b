"""Calibration: β from benign anchors, and the length it gives."""

from __future__ import annotations

import pytest
import torch

from safesteer.errors import InputError
from safesteer.maths.calibration import anchor_scale_ratio, calibrate, calibrate_zscore


def test_beta_is_ratio_of_median_centred_norms() -> None:
    g = torch.Generator().manual_seed(0)
    src = torch.randn(500, 12, generator=g) + 7.0  # offsets must not matter (centred)
    q, _ = torch.linalg.qr(torch.randn(20, 12, generator=g))
    tgt = 3.5 * src @ q.T - 2.0
    assert anchor_scale_ratio(src, tgt) == pytest.approx(3.5, rel=1e-4)


def test_calibrated_length_and_direction() -> None:
    g = torch.Generator().manual_seed(1)
    transported = torch.randn(20, generator=g)
    v_s = torch.randn(12, generator=g)
    v_t = calibrate(transported, v_s, beta=2.0)
    assert float(v_t.norm()) == pytest.approx(2.0 * float(v_s.norm()), rel=1e-5)
    cos = torch.nn.functional.cosine_similarity(v_t, transported, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-6)
    assert calibrate(3 * transported, v_s, 2.0).allclose(v_t)  # the map gives only direction


def test_zscore_keeps_shift_in_benign_spread_units() -> None:
    g = torch.Generator().manual_seed(2)
    src = torch.randn(4000, 6, generator=g) * torch.tensor([1.0, 1, 1, 1, 1, 4.0])
    tgt = torch.randn(4000, 5, generator=g) * torch.tensor([10.0, 1, 1, 1, 1])
    v_s = torch.tensor([0.0, 0, 0, 0, 0, 8.0])  # 2 benign std along its own axis
    v_t = calibrate_zscore(torch.tensor([1.0, 0, 0, 0, 0]), v_s, src, tgt)
    assert float(v_t[0]) == pytest.approx(20.0, rel=0.05)  # 2 std of the target's spread (10)
    assert float(v_t[1:].abs().max()) == 0.0


def test_refusals() -> None:
    with pytest.raises(InputError, match="anchors"):
        anchor_scale_ratio(torch.randn(5, 3), torch.randn(4, 3))
    with pytest.raises(InputError, match="identical"):
        anchor_scale_ratio(torch.ones(5, 3), torch.randn(5, 3))
    with pytest.raises(InputError, match="zero"):
        calibrate(torch.zeros(4), torch.ones(3), 1.0)
