"""Occlusion: maps equal captum's Occlusion, a known one-pixel answer, receptive-field skipping is exact."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torch import Tensor, nn

from experiments.peers.captum_occlusion import captum_occlusion
from methods import occlusion
from methods.base import Normalize, Target
from tests.conftest import small_net

CONF = Path(__file__).resolve().parents[2] / "conf" / "method" / "occlusion.yaml"


class OnePixel(nn.Module):
    """'Logit' 0 = red value of pixel (r, c); logit 1 = minus it."""

    def __init__(self, r: int, c: int) -> None:
        super().__init__()
        self.r, self.c = r, c
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        v = self.scale * x[:, 0, self.r, self.c]
        return torch.stack([v, -v], dim=1)


def _assert_matches(maps: Tensor, ref: Tensor) -> None:
    """Within 1e-5 absolute and 1e-3 of the map's scale, which is not zero (drops are differences of activations
    far larger than they are: float32 rounding of those, e.g. from folded BatchNorm, is ~1e-4 of a small map)."""
    err, scale = (maps - ref).abs().max().item(), ref.abs().max().item()
    assert scale > 1e-5, "the comparison is between two zero maps"
    assert err <= 1e-5 and err <= 1e-3 * scale, (err, scale)


@pytest.mark.parametrize("target,kw", [
    (Target("", (0, 3), "class"), dict(fill="grey", window=5, stride=2)),
    (Target("", (4,), "class"), dict(fill="mean", window=4, stride=4, output="prob")),
    (Target("conv2", (1, 6), "channel"), dict(fill="blur", window=6, stride=4, reduce="max")),
    (Target("conv2", (2,), "channel"), dict(fill="zero", window=3, stride=3)),
    (Target("relu2", (0, 7), "neuron"), dict(fill=0.2, window=5, stride=3)),
    (Target("conv2", (5,), "neuron", position=(1, 4)), dict(fill="grey", window=4, stride=2)),
])
def test_matches_captum_on_small_net(target: Target, kw: dict) -> None:
    torch.manual_seed(1)
    images = torch.rand(3, 3, 22, 22)
    model = small_net()
    vis = occlusion.visualize(model, images, target, batch_size=7, **kw)
    window, stride, fill = kw.pop("window"), kw.pop("stride"), kw.pop("fill")
    ref = captum_occlusion(model, images, target, window, stride, fill, perturbations_per_eval=4, **kw)
    _assert_matches(vis.maps, ref)


@pytest.mark.parametrize("target", [Target("", (1, 9), "class"), Target("layer1", (3,), "neuron")])
def test_matches_captum_on_resnet18(target: Target) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    images = torch.rand(2, 3, 64, 64)
    norm = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    vis = occlusion.visualize(model, images, target, normalize=norm, window=24, stride=20, batch_size=32)
    ref = captum_occlusion(model, images, target, 24, 20, "grey", perturbations_per_eval=16, normalize=norm)
    _assert_matches(vis.maps, ref)


def test_one_pixel_model_known_map() -> None:
    h, w, window, stride, (r, c) = 11, 9, 4, 3, (5, 2)
    images = torch.rand(1, 3, h, w)
    vis = occlusion.visualize(OnePixel(r, c), images, Target("", (0, 1), "class"), window=window, stride=stride)
    drop = images[0, 0, r, c] - 0.5  # hiding the pixel replaces it with grey
    expected = torch.zeros(h, w)
    for y in range(h):
        for x in range(w):
            covering = [(t, l) for t in range(0, h - window + stride, stride) for l in range(0, w - window + stride, stride)
                        if t <= y < t + window and l <= x < l + window]
            hits = sum(t <= r < t + window and l <= c < l + window for t, l in covering)
            expected[y, x] = drop * hits / len(covering)
    torch.testing.assert_close(vis.maps[0, 0], expected)
    torch.testing.assert_close(vis.maps[0, 1], -expected)
    assert vis.perturbations == 4 * 3  # rows 11: starts 0,3,6,9 (the last clipped) x cols 9: 0,3,6
    torch.testing.assert_close(vis.values["mean_drop"], torch.stack([expected.mean(), -expected.mean()]))


def test_heatmaps_are_unit_major_red_for_drops() -> None:
    images = torch.full((2, 3, 10, 10), 0.9)
    vis = occlusion.visualize(OnePixel(4, 4), images, Target("", (0, 1), "class"), window=3, stride=1)
    assert vis.images.shape == (4, 3, 10, 10) and vis.images.min() >= 0 and vis.images.max() <= 1
    hot = vis.images[:, :, 4, 4]  # rows: unit 0 image 0, unit 0 image 1, unit 1 image 0, unit 1 image 1
    assert (hot[:2, 0] > hot[:2, 2] + 0.5).all()  # unit 0 drops when the bright pixel is hidden: red
    assert (hot[2:, 2] > hot[2:, 0] + 0.5).all()  # unit 1 rises: blue
    torch.testing.assert_close(vis.images[:, :, 0, 9], torch.full((4, 3), 0.9))  # untouched pixels: the photo


@pytest.mark.parametrize("model_fn,layer,n,size,window,stride", [
    (small_net, "conv2", 2, 24, 6, 3),
    (lambda: torchvision.models.resnet18(weights=None).eval(), "layer1.0", 1, 64, 8, 6),
])
def test_skipping_outside_receptive_field_changes_nothing(model_fn, layer: str, n: int, size: int, window: int, stride: int) -> None:
    torch.manual_seed(2)
    model, images = model_fn(), torch.rand(n, 3, size, size)
    target = Target(layer, (0, 2), "neuron", position=(2, 3))
    skip = occlusion.visualize(model, images, target, window=window, stride=stride)
    full = occlusion.visualize(model, images, target, window=window, stride=stride, skip_outside_rf=False)
    torch.testing.assert_close(skip.maps, full.maps, atol=1e-6, rtol=0)
    assert skip.perturbations < full.perturbations
    assert full.maps.abs().max() > 1e-3


def net_of(channels: int) -> nn.Module:
    """small_net with `channels` input channels."""
    torch.manual_seed(channels)
    net = small_net()
    net.conv1 = nn.Conv2d(channels, 6, 3, padding=1)
    return net.eval()


@pytest.mark.parametrize("channels", [1, 4])
@pytest.mark.parametrize("size", [(22, 22), (24, 40)])
@pytest.mark.parametrize("target,kw", [
    (Target("", (0, 3), "class"), dict(fill="grey", window=5, stride=2)),
    (Target("conv2", (1, 6), "channel"), dict(fill="blur", window=6, stride=4, reduce="max")),
    (Target("conv2", (2,), "neuron", position=(3, 7)), dict(fill="mean", window=4, stride=3)),
])
def test_any_channel_count_and_non_square_images_match_captum(channels: int, size: tuple[int, int], target: Target,
                                                                kw: dict) -> None:
    torch.manual_seed(1)
    images, kw = torch.rand(2, channels, *size), dict(kw)  # kw is shared by the parametrizations
    model, norm = net_of(channels), Normalize([0.4] * channels, [0.2] * channels)
    vis = occlusion.visualize(model, images, target, normalize=norm, batch_size=9, **kw)
    window, stride, fill = kw.pop("window"), kw.pop("stride"), kw.pop("fill")
    ref = captum_occlusion(model, images, target, window, stride, fill, perturbations_per_eval=4, normalize=norm, **kw)
    _assert_matches(vis.maps, ref)  # captum hides all C channels of each window, as the docstring says
    rows, cols = vis.windows
    assert rows.tolist() == occlusion.window_starts(size[0], window, stride).tolist() and cols[-1] + window >= size[1]
    assert vis.images.shape == (2 * len(target.units), 3, *size)  # RGB heat pictures whatever C
    if target.kind == "neuron":  # the receptive field is found for C channels and h x w: far windows are skipped
        assert 0 < int(vis.evaluated.sum()) < vis.evaluated.numel()


def test_progress_and_batch_size_do_not_change_maps() -> None:
    images = torch.rand(2, 3, 16, 16)
    target = Target("", (2,), "class")
    a = occlusion.visualize(small_net(), images, target, batch_size=1)
    b = occlusion.visualize(small_net(), images, target, batch_size=100, progress=True)
    torch.testing.assert_close(a.maps, b.maps, atol=1e-6, rtol=0)


@pytest.mark.parametrize("target,kw,match", [
    (Target("", (0,), "class"), dict(fill="pink"), "unknown fill 'pink'"),
    (Target("", (0,), "class"), dict(window=4, stride=5), "stride=5"),
    (Target("", (0,), "class"), dict(window=40), "window=40"),
    (Target("", (0,), "class"), dict(window="big"), "window='big' must be a number of pixels or 'auto'"),
    (Target("", (0,), "class"), dict(window=4, stride=0), "stride=0 must be >= 1"),
    (Target("", (0,), "class"), dict(stride=3), "stride=3 must be in 1..window=2"),
    (Target("conv2", (0,), "layer"), {}, "kind"),
    (Target("", (7,), "class"), {}, "unit index 7"),
    (Target("conv2", (0,), "channel"), dict(output="prob"), "prob"),
    (Target("conv2", (0,), "class"), {}, "class targets"),
    (Target("", (0,), "class"), dict(reduce="median"), "reduce"),
    (Target("conv2", (0,), "neuron", position=(3, 8)), {}, "outside layer 'conv2'"),
])
def test_bad_arguments_raise_one_line(target: Target, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        occlusion.visualize(small_net(), torch.rand(1, 3, 16, 16), target, **kw)


@pytest.mark.parametrize("hw,expected", [((64, 64), (8, 4)), ((224, 224), (28, 14)), ((32, 200), (4, 2)), ((5, 5), (1, 1))])
def test_auto_window_is_an_eighth_of_the_shorter_side(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert occlusion.sizes("auto", "auto", hw) == expected
    assert occlusion.sizes(6, "auto", hw) == (6, 3) and occlusion.sizes("auto", 1, hw) == (expected[0], 1)


def test_auto_window_gives_the_maps_of_its_pixel_sizes() -> None:
    images, target = torch.rand(2, 3, 24, 24), Target("conv2", (0, 1), "channel")
    auto = occlusion.visualize(small_net(), images, target)
    explicit = occlusion.visualize(small_net(), images, target, window=3, stride=1)
    torch.testing.assert_close(auto.maps, explicit.maps)


def test_config_params_are_keyword_arguments() -> None:
    cfg = yaml.safe_load(CONF.read_text())
    assert cfg["name"] == "occlusion" and cfg["preset"] == "default"
    kwargs = {k for k, p in inspect.signature(occlusion.visualize).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(cfg["params"]) <= kwargs
