"""Raw weights: exact filters of any channel count, three normalizations, composites, one-line refusals."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import googlenet

from methods.base import Target
from methods.raw_weights import check_params, first_conv_name, normalize_filters, visualize
from tests.conftest import make_tiny_cnn


def test_per_filter_reproduces_filters_up_to_affine_map() -> None:
    model = make_tiny_cnn()
    vis = visualize(model, Target("conv1", (0, 3)))
    for img, w in zip(vis.images, model.conv1.weight[[0, 3]].detach()):
        assert torch.allclose(img * (w.max() - w.min()) + w.min(), w, atol=1e-6)


def test_symmetric_keeps_zero_grey_and_shared_uses_one_scale() -> None:
    w = torch.tensor([[[[-2.0, 0.0, 1.0]]], [[[0.0, 0.5, 0.0]]]])
    sym = normalize_filters(w, "symmetric")
    assert sym[0, 0, 0].tolist() == [0.0, 0.5, 0.75] and sym[1, 0, 0].tolist() == [0.5, 1.0, 0.5]
    shared = normalize_filters(w, "shared")
    assert shared[1, 0, 0].tolist() == [0.5, 0.625, 0.5]


def test_bad_normalization_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="per_filter, symmetric, shared"):
        normalize_filters(torch.zeros(1, 3, 3, 3), "minmax")


def first_conv(channels: int) -> nn.Sequential:
    """A seeded CNN whose first conv takes `channels` input channels (5x5 filters)."""
    torch.manual_seed(channels)
    return nn.Sequential(nn.Conv2d(channels, 6, 5), nn.ReLU(), nn.Conv2d(6, 4, 3)).eval()


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_any_channel_count_is_drawn_from_the_first_conv(channels: int) -> None:
    model = first_conv(channels)
    vis = visualize(model, Target("", (0, 5)))
    w = model[0].weight[[0, 5]].detach()
    assert vis.layer == "0" and torch.equal(vis.weights, w)
    shown = vis.images[:, :1] if channels == 1 else vis.images  # 1 channel: grey as RGB
    assert vis.images.shape == (2, 3 if channels == 1 else channels, 5, 5)
    if channels == 1:
        assert torch.equal(vis.images[:, 0], vis.images[:, 1]) and torch.equal(vis.images[:, 1], vis.images[:, 2])
    for img, f in zip(shown, w):  # per_filter: one affine map of the whole filter, all channels
        assert torch.allclose(img * (f.max() - f.min()) + f.min(), f, atol=1e-6)


def test_rgb_composite_of_chosen_channels() -> None:
    model = first_conv(4)
    vis = visualize(model, Target("0", (1,)), rgb_channels=[3, 0, 2], normalization="shared")
    w = model[0].weight[1, [3, 0, 2]].detach()
    assert vis.images.shape == (1, 3, 5, 5)
    assert torch.allclose(vis.images[0], 0.5 + 0.5 * w / w.abs().max(), atol=1e-6)  # scaled over the 3 shown
    assert vis.weights.shape == (1, 4, 5, 5)  # the metrics still read all channels
    with pytest.raises(ValueError, match=r"rgb_channels=\[0, 4, 1\] must be three input channels \[r, g, b\] in 0..3"):
        visualize(model, Target("0", (1,)), rgb_channels=[0, 4, 1])
    with pytest.raises(ValueError, match="must be three input channels"):
        check_params(rgb_channels=[0, 1])


def test_deeper_layer_cannot_be_drawn() -> None:
    with pytest.raises(ValueError, match="'conv2' is not the model's first conv \\('conv1'.*gradient_ascent or top_patches"):
        visualize(make_tiny_cnn(), Target("conv2", (0,)))
    rgb_deeper = nn.Sequential(nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3))  # '2' takes 3 maps, like RGB
    assert visualize(rgb_deeper, Target("0", (0,))).weights.shape == (1, 4, 3, 3)
    with pytest.raises(ValueError, match="'2' is not the model's first conv \\('0'"):
        visualize(rgb_deeper, Target("2", (0,)))


@pytest.mark.parametrize("kind", ["class", "neuron", "layer"])
def test_other_target_kinds_are_one_line(kind: str) -> None:
    with pytest.raises(ValueError, match=f"draws the channel filters of the first conv \\('conv1'\\), not a '{kind}' "
                                         "target; use target.kind=channel target.layer=conv1") as err:
        visualize(make_tiny_cnn(), Target("" if kind == "class" else "conv1", (0,), kind))
    assert "\n" not in str(err.value)


def test_first_conv_found_without_conv1_name() -> None:
    model = googlenet(weights=None, aux_logits=False, init_weights=False)
    assert first_conv_name(model) == "conv1.conv"
    vis = visualize(model, Target("", (0, 1)))
    assert vis.images.shape == (2, 3, 7, 7) and vis.layer == "conv1.conv"
