"""Model randomization and result comparisons on constructed cases."""
import numpy as np
import pytest
import torch
from torch import nn

from experiments.metrics import sanity


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 7), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3), nn.ReLU(),
                         nn.Conv2d(8, 4, 3))


def _changed(a: nn.Module, b: nn.Module) -> set[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return {k.rsplit(".", 1)[0] for k in sa if not torch.equal(sa[k], sb[k])}


def test_cascading_changes_top_down_to_layer_and_keeps_lower_layers():
    net = _net()
    with torch.no_grad():
        net[1].running_mean += 1.0
    rand = sanity.randomize(net, "3", "cascading", seed=1)
    assert _changed(net, rand) == {"3", "5"}
    assert sanity.randomized_layers(net, "3") == ["3", "4", "5"]


def test_independent_changes_only_the_layer():
    net = _net()
    assert _changed(net, sanity.randomize(net, "3", "independent", seed=1)) == {"3"}


def test_randomize_reaches_batchnorm_and_is_seeded_without_touching_the_original():
    net = _net()
    with torch.no_grad():
        net[1].weight.mul_(3.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = torch.random.get_rng_state()
    a, b = sanity.randomize(net, "0", seed=3), sanity.randomize(net, "0", seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert _changed(net, a) == {"0", "1", "3", "5"}


def test_randomize_redraws_parameters_of_modules_without_reset():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(16))

    net = nn.Sequential(nn.Conv2d(3, 3, 1), Scale())
    rand = sanity.randomize(net, "1", "independent")
    assert not torch.equal(rand[1].w, net[1].w)
    assert torch.equal(rand[0].weight, net[0].weight)


def test_randomize_rejects_bad_mode_and_layer():
    with pytest.raises(ValueError, match="cascading"):
        sanity.randomize(_net(), "0", mode="upward")
    with pytest.raises(ValueError, match="unknown layer"):
        sanity.randomize(_net(), "conv9")


def test_identical_maps_score_one():
    x = torch.rand(3, 32, 32)
    scores = sanity.compare(x, x.clone())
    assert scores == pytest.approx({k: 1.0 for k in scores})
    assert sanity.seed_ssim(x, x) == pytest.approx(1.0)


def test_independent_noise_scores_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)), rng.standard_normal((64, 64))
    scores = sanity.compare(a, b)
    assert abs(scores["sanity_ssim"]) < 0.05
    assert abs(scores["sanity_spearman"]) < 0.05
    assert abs(scores["sanity_spearman_abs"]) < 0.05
    assert abs(scores["sanity_hog"]) < 0.15
    u, v = rng.random((3, 160, 160)), rng.random((3, 160, 160))  # large cells: a shared orientation bias
    assert abs(sanity.sanity_hog(u, v)) < 0.1


def test_similarity_drops_with_added_noise():
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:64, :64]
    img = np.sin(x / 5.0) + np.cos(y / 7.0)
    slight, heavy = img + 0.1 * rng.standard_normal(img.shape), img + 3 * rng.standard_normal(img.shape)
    for name in ("sanity_ssim", "sanity_spearman", "sanity_hog"):
        assert sanity.compare(img, slight)[name] > sanity.compare(img, heavy)[name] + 0.2


def test_raw_weights_of_randomized_first_layer_score_near_zero():
    net = _net()
    w0 = net[0].weight.detach()
    w1 = sanity.randomize(net, "0", "independent", seed=5)[0].weight.detach()
    for name, fn in [("ssim", sanity.sanity_ssim), ("spearman", sanity.sanity_spearman),
                     ("spearman_abs", sanity.sanity_spearman_abs)]:
        assert abs(np.mean([fn(a, b) for a, b in zip(w0, w1)])) < 0.1, name
    assert abs(np.mean([sanity.sanity_hog(a, b) for a, b in zip(w0, w1)])) < 0.2  # small HOG bias, see hog_features
    assert abs(sanity.sanity_spearman(w0, w1)) < 0.1
    assert sanity.sanity_spearman(w0, 3 * w0 + 1) == pytest.approx(1.0)  # ranks survive a monotone map
    assert sanity.sanity_spearman(w0, -w0) == pytest.approx(-1.0)
    assert sanity.sanity_spearman_abs(w0, -w0) == pytest.approx(1.0)  # the absolute version ignores the sign


def test_shape_mismatch_and_constant_inputs():
    with pytest.raises(ValueError, match="same shape"):
        sanity.sanity_spearman(np.zeros((4, 4)), np.zeros((5, 5)))
    assert np.isnan(sanity.sanity_spearman(np.ones((8, 8)), np.random.rand(8, 8)))
