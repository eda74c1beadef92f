"""Model randomization and result comparisons on constructed cases whose answers are known."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from experiments.metrics import sanity

SIGNED = ("sanity_ssim", "sanity_spearman")
ABSOLUTE = ("sanity_ssim_abs", "sanity_spearman_abs", "sanity_hog_abs")


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 7), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3), nn.ReLU(),
                         nn.Conv2d(8, 4, 3))


def _saved(net: nn.Module) -> dict[str, torch.Tensor]:
    """A clone of every parameter and buffer, with its own storage."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    """State-dict keys whose tensor in `model` differs from the saved clone."""
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def _smooth(side: int = 64, seed: int = 0) -> np.ndarray:
    """A dense signed map: two gratings plus noise (no flat regions)."""
    y, x = np.mgrid[:side, :side]
    return np.sin(x / 5.0) + np.cos(y / 7.0) + 0.3 * np.random.default_rng(seed).standard_normal((side, side))


def test_cascading_changes_every_parameter_from_the_layer_up_and_nothing_below():
    net = _net()
    with torch.no_grad():
        net[1].running_mean += 1.0
    before = _saved(net)
    rand = sanity.randomize(net, "3", "cascading", seed=1)
    assert _changed(before, rand) == {"3.weight", "3.bias", "5.weight", "5.bias"}
    assert _changed(before, net) == set()  # the original is untouched
    assert rand[0].weight.data_ptr() != net[0].weight.data_ptr()  # a copy, not the same storage
    assert sanity.randomized_layers(net, "3") == ["3", "4", "5"]


def test_independent_changes_only_the_layer():
    net = _net()
    before = _saved(net)
    assert _changed(before, sanity.randomize(net, "3", "independent", seed=1)) == {"3.weight", "3.bias"}
    assert sanity.randomized_layers(net, "3", "independent") == ["3"]


def test_randomize_resets_batchnorm_and_is_seeded_without_touching_the_original():
    net = _net()
    with torch.no_grad():
        net[1].weight.mul_(3.0)
        net[1].running_mean += 1.0
    before = _saved(net)
    state = torch.random.get_rng_state()
    a, b, c = (sanity.randomize(net, "0", seed=s) for s in (3, 3, 4))
    assert torch.equal(state, torch.random.get_rng_state())
    assert _changed(before, net) == set()
    assert torch.equal(a[1].weight, torch.ones(16)) and torch.equal(a[1].running_mean, torch.zeros(16))
    assert _changed(_saved(a), b) == set()  # same seed: the same copy
    assert _changed(_saved(a), c) == {"0.weight", "0.bias", "3.weight", "3.bias", "5.weight", "5.bias"}
    convs = {f"{i}.{p}" for i in (0, 3, 5) for p in ("weight", "bias")}
    assert _changed(before, a) == convs | {"1.weight", "1.running_mean"}


def test_randomize_redraws_parameters_of_modules_without_reset_at_their_scale():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(3.0 * torch.randn(20000, generator=torch.Generator().manual_seed(7)))

    net = nn.Sequential(nn.Conv2d(3, 3, 1), Scale())
    before = _saved(net)
    rand = sanity.randomize(net, "1", "independent")
    assert _changed(before, rand) == {"1.w"}
    redrawn = rand[1].w.detach()
    assert float(redrawn.std()) == pytest.approx(3.0, rel=0.03)
    assert abs(float(torch.corrcoef(torch.stack([redrawn, before["1.w"]]))[0, 1])) < 0.05


def test_randomize_rejects_bad_mode_and_layer():
    with pytest.raises(ValueError, match="cascading"):
        sanity.randomize(_net(), "0", mode="upward")
    with pytest.raises(ValueError, match="unknown layer"):
        sanity.randomize(_net(), "conv9")


def test_equal_maps_score_one():
    x = torch.rand(3, 32, 32)
    scores = sanity.compare(x, x.numpy().astype(np.float64))  # the same values, another array and dtype
    assert scores == pytest.approx({k: 1.0 for k in scores})
    assert sanity.seed_ssim(x, x.numpy().copy()) == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(64, 64), (3, 32, 32)])
def test_a_map_against_its_negation_signed_below_zero_abs_one(shape):
    m = _smooth(shape[-1])
    m = np.stack([m, m.T, 0.5 * m]) if len(shape) == 3 else m
    scores = sanity.compare(m, -m)
    assert all(scores[name] < 0 for name in SIGNED), scores  # measured: ssim -0.66 (2-D), spearman -1
    assert scores["sanity_spearman"] == pytest.approx(-1.0)
    assert all(abs(scores[name] - 1.0) < 1e-6 for name in ABSOLUTE), scores
    assert set(scores) == set(SIGNED) | set(ABSOLUTE) == set(sanity.SIMILARITIES)


def test_spearman_is_the_rank_formula():
    x = np.arange(16.0).reshape(4, 4)
    y = x.ravel().copy()
    for i in (0, 4, 8, 12):  # swap 4 adjacent pairs: sum d^2 = 8
        y[i], y[i + 1] = y[i + 1], y[i]
    rho = 1 - 6 * 8 / (16 * (16**2 - 1))
    assert sanity.sanity_spearman(x, y.reshape(4, 4) ** 3) == pytest.approx(rho)  # a monotone map keeps ranks
    assert sanity.sanity_spearman_abs(x - 100, y.reshape(4, 4)) == pytest.approx(-rho)  # |x - 100| reverses them


def test_tied_maps():
    a, b = np.zeros((8, 8)), np.zeros((8, 8))
    a[:4], b[:5] = 1.0, 1.0  # two masks: 32 and 40 pixels, overlapping on 32 (measured ssim(a, -a): -0.69)
    n11, n10, n01, n00 = 32, 0, 8, 24
    phi = (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    assert sanity.sanity_spearman(a, b) == pytest.approx(phi)  # Spearman with average ranks of ties = phi
    assert sanity.sanity_spearman_abs(a, -b) == pytest.approx(phi)
    assert sanity.sanity_spearman(a, -b) == pytest.approx(-phi)
    assert sanity.sanity_ssim(a, -a) < -0.5 and sanity.sanity_ssim_abs(a, -a) == pytest.approx(1.0)
    checker = np.where(np.indices((8, 8)).sum(0) % 2, 1.0, -1.0)  # |values| all tied
    assert sanity.undefined(checker) is None and sanity.undefined(checker, absolute=True) == "constant |result|"
    scores = sanity.compare(checker, -checker)
    assert scores["sanity_spearman"] == pytest.approx(-1.0) and scores["sanity_ssim"] < -0.9
    assert all(math.isnan(scores[name]) for name in ABSOLUTE)


@pytest.mark.parametrize("flat", [np.zeros((16, 16)), np.full((16, 16), 0.3), 1 + 1e-9 * np.random.default_rng(0).random((16, 16))])
def test_constant_maps_are_nan_never_a_pass(flat):
    m = _smooth(16)
    assert sanity.undefined(flat) == "constant result" and sanity.undefined(m) is None
    for pair in ((flat, m), (m, flat), (flat, flat.copy())):
        scores = sanity.compare(*pair)
        assert all(math.isnan(v) for v in scores.values()), scores  # before: an all-zero map got sanity_ssim 0.0004
        assert math.isnan(sanity.seed_ssim(*pair))


def test_non_finite_maps_are_undefined():
    m = _smooth(16)
    m[3, 3] = np.nan
    assert sanity.undefined(m) == "NaN or Inf in result"
    assert all(math.isnan(v) for v in sanity.compare(m, _smooth(16, seed=1)).values())


def test_independent_noise_scores_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    scores = sanity.compare(a, b)
    for name in ("sanity_ssim", "sanity_ssim_abs", "sanity_spearman", "sanity_spearman_abs"):
        assert abs(scores[name]) < 0.05, (name, scores[name])
    assert abs(scores["sanity_hog_abs"]) < 0.15
    u, v = rng.random((3, 160, 160)), rng.random((3, 160, 160))  # large cells: a shared orientation bias
    assert abs(sanity.sanity_hog_abs(u, v)) < 0.1


def test_similarity_drops_with_added_noise():
    rng = np.random.default_rng(1)
    img = _smooth(64) - 0.3 * np.random.default_rng(0).standard_normal((64, 64))  # the two gratings only
    slight, heavy = img + 0.1 * rng.standard_normal(img.shape), img + 3 * rng.standard_normal(img.shape)
    for name in sanity.SIMILARITIES:
        assert sanity.compare(img, slight)[name] > sanity.compare(img, heavy)[name] + 0.2, name


def test_raw_weights_of_randomized_first_layer_score_near_zero():
    net = _net()
    w0 = net[0].weight.detach().clone()
    w1 = sanity.randomize(net, "0", "independent", seed=5)[0].weight.detach()
    for name, (fn, _) in sanity.SIMILARITIES.items():
        bound = 0.2 if name == "sanity_hog_abs" else 0.1  # small HOG bias on 7x7, see hog_features
        assert abs(np.mean([fn(a, b) for a, b in zip(w0, w1)])) < bound, name
    assert abs(sanity.sanity_spearman(w0, w1)) < 0.1


def test_shape_mismatch_raises():
    for fn, _ in sanity.SIMILARITIES.values():
        with pytest.raises(ValueError, match="same shape"):
            fn(np.random.rand(4, 4), np.random.rand(5, 5))
