"""FID through torchmetrics with a tiny random feature extractor, against the closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from safesteer.errors import InputError, ModelLoadError
from safesteer.evaluation.fid import FIDScorer, load_reference_images


def _noise(n: int, seed: int, low: int = 0, high: int = 255) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(low, high, (48, 48, 3), dtype=np.uint8)) for _ in range(n)]


def _closed_form(scorer: FIDScorer, a: list[Image.Image], b: list[Image.Image]) -> float:
    with torch.no_grad():
        fa = scorer.feature(scorer._batch(a)).double().numpy()  # type: ignore[operator]
        fb = scorer.feature(scorer._batch(b)).double().numpy()  # type: ignore[operator]
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    ca, cb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def test_matches_the_closed_form_and_orders_distributions():
    scorer = FIDScorer.random_features(seed=0, dim=8)
    ref, same, other = _noise(12, 0), _noise(12, 1), _noise(12, 2, 100, 140)
    fid_same, fid_other = scorer.compute(same, ref), scorer.compute(other, ref)
    assert fid_same == pytest.approx(_closed_form(scorer, same, ref), rel=1e-3, abs=1e-6)
    assert fid_other == pytest.approx(_closed_form(scorer, other, ref), rel=1e-3)
    assert fid_other > 10 * fid_same > 0
    assert scorer.compute(ref, ref) == pytest.approx(0.0, abs=1e-6)
    assert scorer.describe()["random_weights"] is True


def test_reference_folder(tmp_path):
    for i, im in enumerate(_noise(3, 4)):
        im.save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(load_reference_images(tmp_path)) == 3
    assert len(load_reference_images(tmp_path, limit=2)) == 2
    with pytest.raises(InputError, match="does not exist"):
        load_reference_images(tmp_path / "nope")
    with pytest.raises(InputError, match="1 images"):
        load_reference_images(tmp_path, limit=1)


def test_too_few_images_and_missing_inception():
    with pytest.raises(InputError, match=">= 2"):
        FIDScorer.random_features().compute(_noise(1, 0), _noise(3, 1))
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(ModelLoadError, match="torch-fidelity"):
            FIDScorer.inception()
