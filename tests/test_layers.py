"""Tests for safesteer.models.layers and the ``safesteer layers`` command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from safesteer.cli import main
from safesteer.data import PromptPair, load_pairs
from safesteer.errors import InputError
from safesteer.models import SourceReader, best_layer, cache_dir, score_layers
from safesteer.models.layers import LayerScore, _folds, score_layer_states


def planted(n: int, d: int, shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    unsafe = torch.randn(n, d, generator=g)
    safe = unsafe + torch.randn(n, d, generator=g) * 0.5
    safe[:, 0] += shift  # the planted safety direction is e_0
    return safe, unsafe


def test_a_planted_direction_scores_high_and_noise_scores_chance() -> None:
    folds = [i % 2 for i in range(200)]
    strong = score_layer_states(*planted(200, 16, 4.0, 0), folds, layer=7)
    assert strong.layer == 7 and strong.n_pairs == 200
    assert strong.auroc > 0.95 and strong.pair_accuracy > 0.95
    assert 3.0 < strong.direction_norm < 5.0
    noise = score_layer_states(*planted(200, 16, 0.0, 1), folds)
    assert 0.35 < noise.auroc < 0.65


def test_scores_are_cross_fitted_not_in_sample() -> None:
    # pure noise in 50 dims with 20 pairs: an in-sample direction would look perfect
    safe, unsafe = planted(20, 50, 0.0, 2)
    score = score_layer_states(safe, unsafe, [i % 2 for i in range(20)])
    assert score.pair_accuracy < 0.9


def test_folds_are_stratified_by_category() -> None:
    pairs = [PromptPair("s", "u", c) for c in ["a", "a", "b", "a", "b", "b"]]
    assert _folds(pairs, 2) == [0, 1, 0, 0, 1, 0]
    with pytest.raises(InputError, match="two folds"):
        score_layer_states(torch.zeros(3, 2), torch.ones(3, 2), [0, 0, 0])


def test_best_layer_ranks_by_auroc_then_pair_accuracy_then_depth() -> None:
    scores = [
        LayerScore(3, 0.9, 0.8, 1.0, 10),
        LayerScore(5, 0.95, 0.8, 1.0, 10),
        LayerScore(6, 0.95, 0.9, 1.0, 10),
        LayerScore(8, 0.95, 0.9, 1.0, 10),
    ]
    assert best_layer(scores).layer == 6
    with pytest.raises(InputError):
        best_layer([])


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh state cache that reuses the converted models of the user cache."""
    models = cache_dir() / "models"
    folder = tmp_path_factory.mktemp("cache")
    (folder / "models").symlink_to(models, target_is_directory=True)
    old = os.environ.get("SAFESTEER_CACHE")
    os.environ["SAFESTEER_CACHE"] = str(folder)
    yield folder
    if old is None:
        del os.environ["SAFESTEER_CACHE"]
    else:
        os.environ["SAFESTEER_CACHE"] = old


@pytest.mark.slow
def test_layers_command_prints_every_layer_and_the_auto_choice(
    shared_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["layers", "--source", "smollm2-135m"]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == list(range(1, 31))
    aurocs = {int(r[0]): float(r[1]) for r in rows}
    chosen = int(out.split("auto: layer")[1].split()[0])
    assert aurocs[chosen] == max(aurocs.values())
    assert aurocs[chosen] > 0.9  # mid-to-late SmolLM2 layers separate held-out pairs well
    assert "safesteer (ours)" in out and "real weights" in out


@pytest.mark.slow
def test_auto_layer_matches_score_layers_and_reuses_the_cache(shared_cache: Path) -> None:
    reader = SourceReader.from_preset("smollm2-135m", progress=False)
    scores = score_layers(reader)  # all states are in the cache from the command's run
    assert reader.layer_calls == 0
    auto = reader.resolve_layer("auto")
    assert auto == best_layer(scores).layer
    test = load_pairs("test")[:12]
    assert reader.pooled([p.safe for p in test], "auto").shape == (12, 576)
