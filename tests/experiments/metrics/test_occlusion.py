"""Occlusion-map metrics on constructed cases whose answer is known: a linear "model" whose relevant region is
known, tied and constant maps, class probabilities, and the unit-target floor of the scoring."""
import dataclasses
import math
from functools import partial

import numpy as np
import pytest
import torch

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.metrics import occlusion
from experiments.scoring import Scoring, score
from experiments.scoring import occlusion as scoring
from experiments.zoo.planted import build_planted
from methods.base import Target

REGION = (slice(8, 16), slice(4, 12))  # rows, cols the model looks at: 64 of 1024 pixels
SHARE = 64 / 1024


def _score(x: torch.Tensor) -> torch.Tensor:
    """A linear model: the sum of the pixels inside REGION."""
    return x[:, :, REGION[0], REGION[1]].sum(dim=(1, 2, 3))


def _weighted(seed: int = 5) -> tuple[torch.Tensor, object]:
    """Pixel weights [H, W] and the linear score sum(w * x) they define."""
    w = torch.rand(32, 32, generator=torch.Generator().manual_seed(seed))
    return w, lambda x: (x * w).sum(dim=(1, 2, 3))


def _image() -> torch.Tensor:
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    img[:, 8:16, 4:12] += 0.5 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))  # texture survives blur
    return img


def _perfect() -> torch.Tensor:
    m = torch.zeros(32, 32)
    m[REGION] = 1.0
    return m


def _blocky(seed: int = 3) -> torch.Tensor:
    """An occlusion-like map: constant on 4x4 blocks, three quarters of the blocks exactly 0."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.rand(8, 8, generator=g) * (torch.rand(8, 8, generator=g) > 0.75)
    return blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)


def test_perfect_map_beats_random_map_and_its_negation():
    img, rand = _image(), torch.rand(32, 32, generator=torch.Generator().manual_seed(2))
    auc = lambda f, m: f(_score, img, m, normalize=True)  # noqa: E731
    # two tie groups: the region (64 px), then the rest; the curve is 1 -> 0 over the region, then flat
    assert auc(occlusion.deletion_auc, _perfect()) == pytest.approx(SHARE / 2)
    assert auc(occlusion.insertion_auc, _perfect()) == pytest.approx(1 - SHARE / 2)
    assert auc(occlusion.deletion_auc, -_perfect()) == pytest.approx(1 - SHARE / 2)  # the worst ranking
    assert auc(occlusion.deletion_auc, rand) == pytest.approx(0.5, abs=0.1)
    assert auc(occlusion.insertion_auc, rand) == pytest.approx(0.5, abs=0.1)


def test_map_against_its_negation_and_insertion_against_deletion():
    """Linear score, tie-free map, H*W a multiple of step: deletion(-m) = 1 - deletion(m), and insertion(m) =
    1 - deletion(m) when deletion's substrate is insertion's blurred start."""
    img, (w, lin) = _image(), _weighted()
    m = torch.rand(32, 32, generator=torch.Generator().manual_seed(9))
    d = occlusion.deletion_auc(lin, img, m, steps=64, normalize=True)
    assert d + occlusion.deletion_auc(lin, img, -m, steps=64, normalize=True) == pytest.approx(1.0, abs=1e-6)
    ins = occlusion.insertion_auc(lin, img, m, steps=64, normalize=True)
    blur_del = occlusion.deletion_auc(lin, img, m, steps=64, substrate=occlusion.blurred(img), normalize=True)
    assert ins + blur_del == pytest.approx(1.0, abs=1e-5)  # float32 scores over a small s_full - s_base
    assert occlusion.deletion_auc(lin, img, w, normalize=True) < d  # the score's own weights rank best


def test_step_counts_follow_rise_and_snap_to_tie_groups():
    assert occlusion.step_size(224 * 224, 224) == 224 and occlusion.step_size(1000, 50) == 20
    free = np.arange(101)  # every pixel its own group
    assert occlusion.counts(free, 100, 30).tolist() == [0, 30, 60, 90, 100]  # ceil(100 / 30) = 4 steps
    assert occlusion.counts(np.array([0, 7, 64, 100]), 100, 10).tolist() == [0, 7, 64, 100]
    order, ends = occlusion.tie_groups(_perfect(), (32, 32))
    assert ends.tolist() == [0, 64, 1024]
    assert set(order[:64].tolist()) == set(_perfect().flatten().nonzero()[:, 0].tolist())
    x, curve = occlusion.perturbation_curve(_score, _image(), _perfect(), "deletion", steps=16)
    assert x.tolist() == [0.0, SHARE, 1.0] and curve[-1] == 0.0
    assert curve[0] == pytest.approx(float(_score(_image()[None])[0]))


def test_auc_does_not_depend_on_scan_order():
    """Image and map transposed, the score transposing back: the same pixels go at every count, so the same AUC
    (a raster-order curve would differ: see test_occlusion_peers)."""
    img, m = _image(), _blocky()
    g = torch.Generator().manual_seed(4)
    conv = torch.nn.Conv2d(3, 4, 5, padding=2)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
    score = lambda x: conv(x).relu().amax(dim=(1, 2, 3)).detach()  # noqa: E731 - nonlinear, position-dependent
    score_t = lambda x: score(x.transpose(-1, -2))  # noqa: E731
    for f in (occlusion.deletion_auc, occlusion.insertion_auc):
        for normalize in (False, True):
            a = f(score, img, m, normalize=normalize)
            assert math.isfinite(a)
            assert f(score_t, img.transpose(-1, -2), m.T, normalize=normalize) == pytest.approx(a, abs=1e-6)


def test_maps_without_a_ranking_have_no_auc():
    img = _image()
    for m in (torch.zeros(32, 32), torch.full((32, 32), 0.3), torch.full((32, 32), float("nan"))):
        for f in (occlusion.deletion_auc, occlusion.insertion_auc):
            assert np.isnan(f(_score, img, m)) and np.isnan(f(_score, img, m, normalize=True))
    x, curve = occlusion.perturbation_curve(_score, img, torch.zeros(32, 32))
    assert x.tolist() == [0.0, 1.0] and np.isnan(occlusion.auc(x, curve))


def test_class_probability_curve_is_raw():
    """RISE's protocol: the AUC of the class probability itself, no rescaling."""
    g = torch.Generator().manual_seed(6)
    weights = torch.randn(5, 3 * 32 * 32, generator=g) * 0.05
    prob = lambda x: (x.flatten(1) @ weights.T).softmax(1)[:, 2]  # noqa: E731
    img, m = _image(), torch.rand(32, 32, generator=g)
    x, curve = occlusion.perturbation_curve(prob, img, m, "deletion", steps=32)
    assert curve[0] == pytest.approx(float(prob(img[None])[0]), abs=1e-6) and curve[-1] == pytest.approx(0.2, abs=1e-6)
    assert occlusion.deletion_auc(prob, img, m, steps=32) == pytest.approx(np.trapezoid(curve, x))
    assert 0 < occlusion.deletion_auc(prob, img, m, steps=32) < 1
    assert len(x) == 33 and np.allclose(np.diff(x), 1 / 32)  # 32 px per step


def test_normalized_curve_floor_is_absolute():
    curve = 1 + 1e-4 * np.array([1.0, 3.0, 5.0, 2.0, 0.0])  # moves by 1e-4: the old relative guard gave ~1.06
    assert np.isnan(occlusion.normalize_curve(curve, "deletion", floor=1e-3)).all()
    assert not np.isnan(occlusion.normalize_curve(curve, "deletion")).any()
    assert occlusion.normalize_curve(np.array([1.0, 0.5, 0.0]), "deletion").tolist() == [1.0, 0.5, 0.0]
    assert occlusion.normalize_curve(np.array([0.0, 0.5, 2.0]), "insertion").tolist() == [0.0, 0.25, 1.0]
    assert occlusion.endpoints(np.array([3.0, 1.0]), "insertion") == (1.0, 3.0)
    with pytest.raises(ValueError, match="deletion"):
        occlusion.perturbation_curve(_score, _image(), _perfect(), "blur")


def test_map_of_another_size_is_resized():
    img = _image()
    small = _perfect()[::2, ::2]  # a 16x16 map of the same region
    full = occlusion.deletion_auc(_score, img, _perfect(), normalize=True)
    assert occlusion.deletion_auc(_score, img, small, normalize=True) == pytest.approx(full, abs=0.02)


def test_random_map_is_a_seeded_permutation():
    a, b = occlusion.random_map((224, 224), 1), occlusion.random_map((224, 224), 2)
    assert a.unique().numel() == 224 * 224
    assert torch.equal(a, occlusion.random_map((224, 224), 1)) and not torch.equal(a, b)


def test_pointing_game_and_mask_energy():
    mask = _perfect().bool()
    inside, outside = torch.zeros(32, 32), torch.zeros(32, 32)
    inside[10, 6], outside[0, 0] = 1.0, 1.0
    assert occlusion.pointing_game(inside, mask) == 1.0
    assert occlusion.pointing_game(outside, mask) == 0.0
    assert np.isnan(occlusion.pointing_game(torch.ones(32, 32), mask))  # before: the mask's area share
    assert np.isnan(occlusion.pointing_game(torch.zeros(32, 32), mask))
    assert np.isnan(occlusion.pointing_game(inside, torch.zeros(32, 32, dtype=torch.bool)))  # no object
    assert occlusion.mask_energy(_perfect() - 0.5, mask) == pytest.approx(1.0)
    assert np.isnan(occlusion.mask_energy(torch.ones(32, 32), mask))  # before: the area share
    assert np.isnan(occlusion.mask_energy(-torch.ones(32, 32), mask))


def test_pointing_game_tied_maxima_hit_if_any_is_inside():
    mask = _perfect().bool()
    m = torch.zeros(32, 32)
    m[0, 0], m[31, 31], m[10, 6] = 1.0, 1.0, 1.0  # one of three tied maxima on the object
    assert occlusion.pointing_game(m, mask) == 1.0  # before: 1/3
    m[10, 6] = 0.5
    assert occlusion.pointing_game(m, mask) == 0.0


def test_pointing_game_tolerance_grows_the_mask():
    assert occlusion.pointing_tolerance(224) == 15 and occlusion.pointing_tolerance(64) == 4
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[8, 2:14] = True  # a thin bar
    m = torch.zeros(16, 16)
    m[10, 8] = 1.0  # the peak 2 px off the bar
    assert occlusion.pointing_game(m, mask) == 0.0
    assert occlusion.pointing_game(m, mask, tolerance=2) == 1.0
    assert occlusion.pointing_game(m, mask, tolerance=1) == 0.0


def test_gini_and_entropy_one_hot_and_uniform():
    one_hot = np.zeros(400)
    one_hot[7] = -3.0
    assert occlusion.sparseness(one_hot) == pytest.approx(1 - 1 / 400)
    assert occlusion.sparseness(np.full((20, 20), 0.2)) == pytest.approx(0.0)  # a true value: uniform
    assert occlusion.complexity(np.full((20, 20), 0.2)) == pytest.approx(math.log(400))
    assert occlusion.complexity(one_hot) == pytest.approx(0.0)
    assert np.isnan(occlusion.sparseness(np.zeros((20, 20)))) and np.isnan(occlusion.complexity(np.zeros((20, 20))))
    half = np.r_[np.zeros(200), np.ones(200)]
    assert occlusion.sparseness(half) == pytest.approx(0.5)
    assert occlusion.complexity(half) == pytest.approx(math.log(200))


def test_nan_pixels_rank_last():
    mask = _perfect().bool()
    m = torch.zeros(32, 32)
    m[10, 6], m[0, 0] = 1.0, float("nan")  # torch and numpy would put the NaN first
    assert occlusion.pointing_game(m, mask) == 1.0
    assert np.isnan(occlusion.pointing_game(torch.full((32, 32), float("nan")), mask))
    order, ends = occlusion.tie_groups(m, (32, 32))
    assert order[0] == 10 * 32 + 6 and order[-1] == 0 and ends.tolist() == [0, 1, 1023, 1024]


@pytest.fixture(scope="module")
def planted_run():
    spec, data = build_planted(), make_shapes(n=48, size=64, seed=3)
    target, params, opts = Target("conv2", (0, 1)), {"window": 16, "stride": 16}, RunOptions(n_images=2)
    return spec, data, target, params, opts, call_method("occlusion", spec, data, target, params, opts)


def test_scoring_unit_floor_gives_nan_with_the_numbers(planted_run):
    """A grey image with the grey fill: deletion changes nothing, so the unit's curve has no scale."""
    spec, data, target, params, opts, result = planted_run
    idx = int(result.unit_sources[0, 0])
    images = data.images.clone()
    images[idx] = 0.5
    s = Scoring.for_method("occlusion", spec, dataclasses.replace(data, images=images), target, params, opts)
    m = torch.rand(64, 64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(scoring.Undefined, match=r"deletion moves the score by 0 \(.*at most the floor"):
        scoring.causal("deletion", False, s, 0, idx, m)
    assert scoring.floor(s, 0) == pytest.approx(max(1e-6, 0.01 * float(scoring.score_range(s)[0])))
    deletion = partial(scoring.causal, "deletion", False)
    same_map = dataclasses.replace(result, maps=m.expand_as(result.maps).clone())
    rows = scoring.map_rows("deletion_auc", deletion, s, same_map)
    grey = [r for r in rows if r["unit"] == 0 and r["image"] == idx]
    assert grey and all(np.isnan(r["value"]) and r["status"].startswith("degenerate: deletion moves") for r in grey)


def test_scoring_rows_constant_map_and_random_baseline(planted_run):
    spec, data, target, params, opts, result = planted_run
    maps = result.maps.clone()
    first = result.sources().tolist().index(int(result.unit_sources[0, 0]))
    maps[first, 0] = 0.0  # one of unit 0's maps all zero
    enabled = ["deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random", "pointing_game",
               "mask_energy", "sparseness", "complexity"]
    s = Scoring.for_method("occlusion", spec, data, target, params, opts, enabled=enabled, auc_steps=8)
    rows = score(s, dataclasses.replace(result, maps=maps))
    flat = [r for r in rows if r["unit"] == 0 and r["image"] == int(result.unit_sources[0, 0])]
    by = {r["metric"]: r for r in flat}
    for name in ("deletion_auc", "insertion_auc", "pointing_game", "mask_energy", "sparseness", "complexity"):
        assert np.isnan(by[name]["value"]) and by[name]["status"].startswith("degenerate: ")
    assert by["deletion_auc"]["status"] == "degenerate: constant occlusion map (range 0)"
    assert by["sparseness"]["status"] == "degenerate: all-zero occlusion map"
    assert math.isfinite(by["deletion_auc_random"]["value"])  # the chance level needs no map
    with pytest.raises(scoring.Undefined, match="no positive mass"):
        scoring.mask_energy(s, 0, 0, -torch.rand(64, 64))  # hiding any window raises the score
    again = score(s, dataclasses.replace(result, maps=maps))
    assert [r["value"] for r in again if r["metric"] == "deletion_auc_random"] == \
        [r["value"] for r in rows if r["metric"] == "deletion_auc_random"]  # seeded
    random = [r["value"] for r in rows if r["metric"] in ("deletion_auc_random", "insertion_auc_random")]
    assert all(0.2 < v < 0.8 for v in random if not math.isnan(v))


def test_scoring_class_target_uses_the_probability(planted_run):
    """Class targets: the raw AUC of the softmax probability, deleting with the run's fill in [0, 1] space."""
    spec, data, _, params, opts, _ = planted_run
    target = Target("", (0, 1), kind="class")
    s = Scoring.for_method("occlusion", spec, data, target, {**params, "fill": 0.25}, opts)
    idx, m = 5, torch.rand(64, 64, generator=torch.Generator().manual_seed(1))
    prob = scoring.occluded_scorer(s, 1)
    with torch.inference_mode():
        logits = spec.model(s.normalize(data.images[idx:idx + 1].to(s.device)))
    assert float(prob(data.images[idx:idx + 1])[0]) == pytest.approx(float(logits.softmax(1)[0, 1]), abs=1e-6)
    expected = occlusion.deletion_auc(prob, data.images[idx], m, steps=s.settings.auc_steps, substrate=0.25)
    assert scoring.causal("deletion", False, s, 1, idx, m) == pytest.approx(expected)
    assert scoring.causal("insertion", False, s, 1, idx, m) == pytest.approx(
        occlusion.insertion_auc(prob, data.images[idx], m, steps=s.settings.auc_steps))


def test_approx_max_abs_error_is_relative_to_the_exact_maps_largest_magnitude() -> None:
    exact = torch.tensor([[0.0, -2.0], [1.0, 0.5]])
    assert occlusion.approx_max_abs_error(exact.clone(), exact) == 0.0
    assert occlusion.approx_max_abs_error(exact + torch.tensor([[0.0, 0.5], [0.0, 0.0]]), exact) == 0.25
    assert math.isnan(occlusion.approx_max_abs_error(exact, torch.zeros(2, 2)))
