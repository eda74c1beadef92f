"""Gradient-ascent activation metrics on constructed scores."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from experiments.metrics import activation


def test_activation_vs_exemplar_ratio_per_unit():
    achieved = torch.tensor([2.0, 1.0, 3.0])
    natural = torch.tensor([[1.0, 4.0, -1.0], [0.5, 2.0, -2.0]])
    ratio = activation.activation_vs_exemplar(achieved, natural)
    assert ratio[:2] == pytest.approx([2.0, 0.25])
    assert np.isnan(ratio[2])
    with pytest.raises(ValueError, match="U=3"):
        activation.activation_vs_exemplar(achieved, natural[:, :2])


def _blob(n: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(n) - n / 2, torch.arange(n) - n / 2, indexing="ij")
    return torch.exp(-(x**2 + y**2) / 8.0).expand(3, n, n).clone()


def test_robustness_of_translation_invariant_score_is_one():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    score = lambda x: torch.relu(conv(x)).mean(dim=(1, 2, 3))  # noqa: E731
    img = torch.rand(3, 32, 32)
    jitter_only = activation.robustness(score, img, scale=(1.0, 1.0), degrees=0.0, max_shift=0.2)
    assert jitter_only == pytest.approx(1.0, abs=1e-5)
    mean_score = lambda x: x.mean(dim=(1, 2, 3))  # noqa: E731
    assert activation.robustness(mean_score, img) == pytest.approx(1.0, abs=0.02)


def test_robustness_of_position_sensitive_score_drops():
    centre = lambda x: x[:, 0, 14:18, 14:18].mean(dim=(1, 2))  # noqa: E731
    assert activation.robustness(centre, _blob(), max_shift=0.2) < 0.6


def test_random_transforms_are_seeded_and_shaped():
    img = torch.rand(3, 16, 16)
    a, b = activation.random_transforms(img, 5, seed=2), activation.random_transforms(img, 5, seed=2)
    assert a.shape == (5, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, activation.random_transforms(img, 5, seed=3))


def test_exemplar_similarity_cosine_of_pooled_patterns():
    pattern = torch.rand(8, 5, 5)
    exemplars = torch.stack([pattern, 2 * pattern])
    assert activation.exemplar_similarity(pattern, exemplars) == pytest.approx(1.0)
    a, b = torch.zeros(4), torch.zeros(3, 4)
    a[0], b[:, 1] = 1.0, 1.0
    assert activation.exemplar_similarity(a, b) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="channels"):
        activation.exemplar_similarity(torch.rand(8), torch.rand(3, 7))


def test_layer_below():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert activation.layer_below(net, "2") == "1"
    resnet = torchvision.models.resnet18(weights=None)
    assert activation.layer_below(resnet, "layer1.0.conv2") == "layer1.0.relu"
    with pytest.raises(ValueError, match="no module below"):
        activation.layer_below(net, "0")


@pytest.mark.parametrize("channels", [1, 4])
def test_robustness_for_any_channel_count_and_non_square_images(channels):
    img = torch.rand(channels, 24, 40, generator=torch.Generator().manual_seed(0))
    moved = activation.random_transforms(img, 4, scale=(1.0, 1.0), degrees=0.0, max_shift=0.2)
    assert moved.shape == (4, channels, 24, 40)
    for x in moved:  # a circular shift of at most 0.2 x side, per axis, of every channel at once
        hits = [(dy, dx) for dy in range(-5, 6) for dx in range(-8, 9) if torch.equal(torch.roll(img, (dy, dx), (1, 2)), x)]
        assert len(hits) == 1
    last = lambda x: x[:, -1].mean(dim=(1, 2))  # noqa: E731 - the mean of the last band ignores moving it
    assert activation.robustness(last, img + 0.1) == pytest.approx(1.0, abs=0.02)
