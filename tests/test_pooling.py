"""Tests for safesteer.maths.pooling: masked means and attention-sink detection."""

from __future__ import annotations

import pytest
import torch

from safesteer.maths.pooling import masked_mean, outlier_positions, robust_mean


def test_masked_mean_matches_a_loop_over_real_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    states = torch.randn(4, 7, 5, generator=g)
    mask = torch.rand(4, 7, generator=g) > 0.4
    mask[:, 2] = True
    got = masked_mean(states, mask)
    for b in range(4):
        want = states[b][mask[b]].mean(dim=0)
        torch.testing.assert_close(got[b], want)


def test_masked_mean_ignores_padding_values_and_never_returns_nan() -> None:
    states = torch.zeros(2, 3, 2)
    states[0, :2] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    states[0, 2] = 1e6  # padding garbage must not leak in
    mask = torch.tensor([[True, True, False], [False, False, False]])
    got = masked_mean(states, mask)
    assert got[0].tolist() == [2.0, 3.0]
    assert got[1].tolist() == [0.0, 0.0]


def test_masked_mean_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="mask"):
        masked_mean(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))


def test_outlier_positions_finds_a_planted_sink_at_any_position() -> None:
    g = torch.Generator().manual_seed(1)
    states = torch.randn(3, 9, 16, generator=g)
    sinks = [0, 4, 7]
    for b, t in enumerate(sinks):
        states[b, t] *= 100.0
    mask = torch.ones(3, 9, dtype=torch.bool)
    found = outlier_positions(states, mask)
    assert found.nonzero().tolist() == [[b, t] for b, t in enumerate(sinks)]


def test_outlier_positions_ignores_padding_and_short_prompts() -> None:
    states = torch.ones(2, 5, 3)
    states[0, 4] = 1000.0  # a huge padded position is not a token at all
    states[1, 0] = 1000.0  # a two-token prompt: no median to trust
    mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    assert not outlier_positions(states, mask).any()


def test_outlier_positions_never_drops_every_token() -> None:
    states = torch.ones(1, 4, 2) * 50.0
    states[0, 1:] = torch.tensor([0.001, 0.001])  # median small; only one big token anyway
    mask = torch.ones(1, 4, dtype=torch.bool)
    kept = mask & ~outlier_positions(states, mask)
    assert kept.sum() >= 1


def test_robust_mean_recovers_the_mean_without_the_sink() -> None:
    g = torch.Generator().manual_seed(2)
    clean = torch.randn(2, 6, 8, generator=g)
    dirty = clean.clone()
    dirty[:, 0] = 500.0
    mask = torch.ones(2, 6, dtype=torch.bool)
    result = robust_mean(dirty, mask)
    torch.testing.assert_close(result.pooled, clean[:, 1:].mean(dim=1))
    assert result.n_excluded == 2
    assert result.excluded[:, 0].all()
    # without detection, the sink dominates the mean
    plain = robust_mean(dirty, mask, ratio=None)
    assert plain.n_excluded == 0
    assert plain.pooled.norm(dim=1).min() > 50 * result.pooled.norm(dim=1).max()
