"""Occlusion-map metrics on a linear "model" whose relevant region is known."""
import math

import numpy as np
import pytest
import torch

from experiments.metrics import occlusion

REGION = (slice(8, 16), slice(4, 12))  # rows, cols the model looks at


def _score(x: torch.Tensor) -> torch.Tensor:
    """A linear model: the sum of the pixels inside REGION."""
    return x[:, :, REGION[0], REGION[1]].sum(dim=(1, 2, 3))


def _image() -> torch.Tensor:
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    img[:, 8:16, 4:12] += 0.5 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # texture survives blur
    return img


def _perfect() -> torch.Tensor:
    m = torch.zeros(32, 32)
    m[REGION] = 1.0
    return m


def test_perfect_map_beats_random_map():
    img, rand = _image(), torch.rand(32, 32, generator=torch.Generator().manual_seed(2))
    good_del, bad_del = occlusion.deletion_auc(_score, img, _perfect()), occlusion.deletion_auc(_score, img, rand)
    good_ins, bad_ins = occlusion.insertion_auc(_score, img, _perfect()), occlusion.insertion_auc(_score, img, rand)
    assert good_del < 0.1 and bad_del == pytest.approx(0.5, abs=0.1)
    assert good_ins > 0.9 and bad_ins == pytest.approx(0.5, abs=0.1)
    assert occlusion.deletion_auc(_score, img, -_perfect()) > 0.9  # the worst ranking


def test_curve_endpoints_normalized_and_map_resized():
    img = _image()
    curve = occlusion.perturbation_curve(_score, img, _perfect(), "deletion", steps=10)
    assert len(curve) == 11 and curve[0] == pytest.approx(float(_score(img[None])[0]))
    assert curve[-1] == 0.0
    norm = occlusion.normalize_curve(curve, "deletion")
    assert norm[0] == 1.0 and norm[-1] == 0.0
    small = _perfect()[::2, ::2]  # a 16x16 map of the same region
    full = occlusion.deletion_auc(_score, img, _perfect())
    assert occlusion.deletion_auc(_score, img, small) == pytest.approx(full, abs=0.02)
    assert occlusion.auc(np.ones(51)) == pytest.approx(1.0)
    assert occlusion.auc(np.linspace(1, 0, 51)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="deletion"):
        occlusion.perturbation_curve(_score, img, _perfect(), "blur")


def test_pointing_game_and_mask_energy():
    mask = _perfect().bool()
    inside, outside = torch.zeros(32, 32), torch.zeros(32, 32)
    inside[10, 6], outside[0, 0] = 1.0, 1.0
    assert occlusion.pointing_game(inside, mask) == 1.0
    assert occlusion.pointing_game(outside, mask) == 0.0
    assert occlusion.pointing_game(torch.ones(32, 32), mask) == pytest.approx(64 / 1024)
    assert occlusion.mask_energy(_perfect() - 0.5, mask) == pytest.approx(1.0)
    assert occlusion.mask_energy(torch.ones(32, 32), mask) == pytest.approx(64 / 1024)
    assert np.isnan(occlusion.mask_energy(-torch.ones(32, 32), mask))


def test_gini_and_entropy_one_hot_and_uniform():
    one_hot = np.zeros(400)
    one_hot[7] = -3.0
    assert occlusion.sparseness(one_hot) == pytest.approx(1 - 1 / 400)
    assert occlusion.sparseness(np.full((20, 20), 0.2)) == pytest.approx(0.0)
    assert occlusion.complexity(np.full((20, 20), 0.2)) == pytest.approx(math.log(400))
    assert occlusion.complexity(one_hot) == pytest.approx(0.0)
    half = np.r_[np.zeros(200), np.ones(200)]
    assert occlusion.sparseness(half) == pytest.approx(0.5)
    assert occlusion.complexity(half) == pytest.approx(math.log(200))


def test_curve_that_ends_where_it_starts_has_no_auc():
    curve = np.array([1.0, 3.0, 5.0, 2.0, 1.01])  # endpoints 1% of the range apart: the AUC would be noise
    assert np.isnan(occlusion.normalize_curve(curve, "deletion")).all()
    assert not np.isnan(occlusion.normalize_curve(np.array([1.0, 0.5, 0.0]), "deletion")).any()


def test_pointing_game_tolerance_grows_the_mask():
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[8, 2:14] = True  # a thin bar
    m = torch.zeros(16, 16)
    m[10, 8] = 1.0  # the peak 2 px off the bar
    assert occlusion.pointing_game(m, mask) == 0.0
    assert occlusion.pointing_game(m, mask, tolerance=2) == 1.0
    assert occlusion.pointing_game(m, mask, tolerance=1) == 0.0


def test_nan_pixels_rank_last():
    mask = _perfect().bool()
    m = torch.zeros(32, 32)
    m[10, 6], m[0, 0] = 1.0, float("nan")  # torch and numpy would put the NaN first
    assert occlusion.pointing_game(m, mask) == 1.0
    assert np.isnan(occlusion.pointing_game(torch.full((32, 32), float("nan")), mask))
    order = occlusion._order(m, (32, 32))
    assert order[0] == 10 * 32 + 6 and order[-1] == 0
