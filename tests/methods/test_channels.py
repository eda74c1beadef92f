"""1- and N-channel, square and non-square inputs through the methods and the pictures, on a constructed
1-channel 28 px CNN (MNIST-like) and a 4-channel 64 px CNN (RGB + near-infrared)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from experiments import pictures
from methods import random_baseline, raw_weights
from methods.base import Normalize, Target, read_out, truncate
from methods.gradient_ascent import visualize


def mnist_cnn() -> nn.Sequential:
    """1 channel in, 28 px, 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 6, 5, padding=2), relu1=nn.ReLU(), pool=nn.MaxPool2d(2), conv2=nn.Conv2d(6, 8, 3, padding=1),
        relu2=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 10))).eval()


def rgbn_cnn() -> nn.Sequential:
    """4 channels in (RGB + near-infrared), 64 px, 5 classes."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(4, 8, 3, stride=2, padding=1), relu1=nn.ReLU(), conv2=nn.Conv2d(8, 8, 3, stride=2, padding=1),
        relu2=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(8, 5))).eval()


# name -> (model, channels, side, normalization of the model's input)
CASES = {"mnist": (mnist_cnn, 1, 28, Normalize([0.1307], [0.3081])),
         "rgbn": (rgbn_cnn, 4, 64, Normalize([0.485, 0.456, 0.406, 0.5], [0.229, 0.224, 0.225, 0.25]))}


def smooth_images(n: int, channels: int, size: int | tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Natural-ish images [n, C, H, W] in [0, 1]: upsampled 8x8 noise."""
    coarse = torch.rand(n, channels, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=size if isinstance(size, tuple) else (size, size), mode="bilinear")


def grey_score(net: nn.Module, target: Target, norm: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    """[U] the target's read-out on one grey image of `shape` [C, H, W]."""
    with torch.no_grad():
        return read_out(truncate(net, target.layer, norm)(torch.full((1, *shape), 0.5)), target)[0]


@pytest.mark.parametrize("param", ["pixel", "fourier", "maco"])
@pytest.mark.parametrize("case", CASES)
def test_gradient_ascent_raises_the_unit_above_grey(case: str, param: str) -> None:
    make, c, side, norm = CASES[case]
    net, target = make(), Target("conv2", (0, 1, 5))  # maco fixes each channel's mean: units that mostly follow
    # the mean brightness of a band (here rgbn's 3 and 6) cannot be raised by it
    extra = {"maco_images": smooth_images(6, c, side + 10), "optimizer": "nadam", "lr": 1.0} if param == "maco" else {}
    v = visualize(net, target, input_size=side, in_channels=c, normalize=norm, param=param, steps=30, images_per_unit=2,
                  **extra)
    assert v.images.shape == (6, c, side, side) and v.images.min() >= 0 and v.images.max() <= 1
    assert torch.all(v.values["activation"] > grey_score(net, target, norm, (c, side, side)))
    with torch.no_grad():  # the activation is that of the returned images
        own = read_out(truncate(net, "conv2", norm)(v.images), target, torch.tensor([0, 0, 1, 1, 5, 5])).view(3, 2).mean(1)
    torch.testing.assert_close(v.values["activation"], own, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["channel", "neuron"])
@pytest.mark.parametrize("case", CASES)
def test_non_square_fourier(case: str, kind: str) -> None:
    make, c, _, norm = CASES[case]
    net, target = make(), Target("conv2", (1, 2), kind)
    v = visualize(net, target, input_size=(24, 40), in_channels=c, normalize=norm, param="fourier", steps=30,
                  snapshots=(10,))
    assert v.images.shape == (2, c, 24, 40) and v.snapshots[10].shape == (2, c, 24, 40)
    assert torch.all(v.values["activation"] > grey_score(net, target, norm, (c, 24, 40)))


def test_grey_photos_for_maco_and_one_line_errors() -> None:
    net, norm = mnist_cnn(), CASES["mnist"][3]
    v = visualize(net, Target("conv2", (0,)), input_size=28, in_channels=1, normalize=norm, param="maco", steps=2)
    assert v.images.shape == (1, 1, 28, 28)  # no maco_images: grayscale skimage photos
    with pytest.raises(ValueError, match="param='maco' needs maco_images with 4 channels"):
        visualize(rgbn_cnn(), Target("conv2", (0,)), input_size=64, in_channels=4, param="maco", steps=2)
    with pytest.raises(ValueError, match=r"the model fails on a \[1, 3, 28, 28\] input \(in_channels=3, "
                                         r"input_size=\[28, 28\]\): RuntimeError: .*channels") as err:
        visualize(net, Target("conv2", (0,)), input_size=28, steps=2)  # in_channels left at 3
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="in_channels=0 must be a positive number of channels"):
        visualize(net, Target("conv2", (0,)), input_size=28, in_channels=0, steps=2)
    with pytest.raises(ValueError, match=r"input_size=\(28, 0\) must be a positive number of pixels or \[h, w\]"):
        visualize(net, Target("conv2", (0,)), input_size=(28, 0), in_channels=1, steps=2)


@pytest.mark.parametrize("case", CASES)
def test_random_baseline_takes_the_models_channels(case: str) -> None:
    make, c, side, norm = CASES[case]
    net, target = make(), Target("conv2", (0, 2))
    noise = random_baseline.visualize(net, target, like="gradient_ascent", input_size=(24, 40), normalize=norm,
                                      images_per_unit=2)
    assert noise.images.shape == (4, c, 24, 40)  # the first conv's in_channels
    with torch.no_grad():
        own = read_out(truncate(net, "conv2", norm)(noise.images), target, torch.tensor([0, 0, 2, 2])).view(2, 2).mean(1)
    torch.testing.assert_close(noise.values["activation"], own)
    data = smooth_images(6, c, side)
    from_data = random_baseline.visualize(net, target, data, like="gradient_ascent", input_size=side)
    assert from_data.images.shape == (2, c, side, side)
    filters = random_baseline.visualize(net, Target("conv1", (0, 1, 2)), like="raw_weights")
    assert filters.weights.shape == (3, c, *net.conv1.kernel_size)
    assert filters.images.shape[1] == (3 if c == 1 else c)  # drawn as raw_weights draws
    maps = random_baseline.visualize(net, Target("", (1,), "class"), data, like="occlusion", window=8, stride=4)
    assert maps.maps.shape == (6, 1, side, side) and maps.images.shape == (6, 3, side, side)
    patches = random_baseline.visualize(net, target, data, like="top_patches", k=3)
    assert patches.images.shape[:2] == (6, c)


def test_random_baseline_without_images_or_conv_is_one_line() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="Sequential has no Conv2d to read its input channels from; pass images"):
        random_baseline.visualize(mlp, Target("", (0,), "class"), like="gradient_ascent", input_size=2)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("size", [(7, 7), (24, 40)])
def test_tiles_show_channels_as_panels(channels: int, size: tuple[int, int]) -> None:
    h, w = size
    level = torch.arange(channels) / channels  # channel i of every image is the constant i / C
    images = level.view(1, -1, 1, 1).expand(2, -1, h, w).clone()
    images[1, :, 0, 0] = 1.0  # one bright pixel top left in image 1
    tiles = pictures.tiles(images)
    f = -(-pictures.MIN_TILE // min(h, w))  # upscale factor: the shorter side to >= MIN_TILE px
    gap = pictures.PANEL_GAP if channels not in (1, 3) else 0
    width = f * w * (1 if channels in (1, 3) else channels) + (channels - 1) * gap
    assert [t.size for t in tiles] == [(width, f * h)] * 2
    png = np.asarray(tiles[0].convert("RGB"))
    if channels == 3:
        assert png[1, 1].tolist() == [round(255 * v) for v in level.tolist()]
    else:
        for i, v in enumerate(level.tolist()):  # grey panel i, channel 0 on the left, gap pixels white
            x = i * (f * w + gap) * (channels != 1)
            assert png[1, x + 1].tolist() == [round(255 * v)] * 3
            if 0 < i:
                assert png[1, x - 1].tolist() == [255] * 3
    bright = np.asarray(tiles[1].convert("RGB"))
    assert bright[f - 1, f - 1].tolist() == [255] * 3  # the bright corner pixel, upscaled f x f
    below = [round(255 * v) for v in level.tolist()] if channels == 3 else [0] * 3  # channel 0 (or RGB) level
    assert bright[f, f - 1].tolist() == below


def test_picture_rgb_composite_and_raw_weights_panels(tmp_path) -> None:
    images = torch.rand(2, 4, 5, 6)
    torch.testing.assert_close(pictures.picture(images, rgb_channels=[3, 1, 0]), images[:, [3, 1, 0]])
    with pytest.raises(ValueError, match=r"rgb_channels=\[0, 4, 1\] must be three channels \[r, g, b\] in 0..3"):
        pictures.picture(images, rgb_channels=[0, 4, 1])
    panels = pictures.picture(images)
    assert panels.shape == (2, 1, 5, 4 * 6 + 3)
    torch.testing.assert_close(panels[:, 0, :, 7:13], images[:, 1])  # panel 1 after panel 0 and one gap column
    filters = raw_weights.visualize(rgbn_cnn(), Target("conv1", (0, 1)))
    f = -(-pictures.MIN_TILE // 3)
    assert [t.width for t in pictures.tiles(filters.images)] == [4 * 3 * f + 3] * 2  # two filters of four 3x3 panels
