"""Incremental occlusion (Krypton) gives the full-forward maps, on real architectures, toy graphs and odd sizes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from methods import occlusion
from methods.base import Normalize, Target
from methods.graph import fast_forward
from methods.occlusion_incremental import Incremental, Region, patched

NORM = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def maps(model: nn.Module, images: Tensor, target: Target, **params) -> dict[str, occlusion.OcclusionMaps]:
    """The full and the incremental engine's results with the same params."""
    return {engine: occlusion.visualize(model, images, target, normalize=NORM, engine=engine, **params)
            for engine in ("full", "incremental")}


def assert_same(results: dict[str, occlusion.OcclusionMaps]) -> None:
    """Incremental maps within 1e-4 of the full maps' largest magnitude (which must be non-trivial)."""
    full, inc = results["full"].maps, results["incremental"].maps
    assert results["incremental"].engine == "incremental" and results["full"].engine == "full"
    scale = float(full.abs().max())
    assert scale > 1e-6, "the maps are flat: the comparison would prove nothing"
    assert float((full - inc).abs().max()) <= 1e-4 * scale


class ResidualConcat(nn.Module):
    """Residual adds, a channel concatenation, ceil-mode and padded pools, dilation, groups and 'same' padding."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.a = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.b = nn.Conv2d(8, 8, 3, padding="same", groups=4)
        self.c = nn.Conv2d(16, 12, 1)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1)
        self.head = nn.Linear(12, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.stem(x))
        y = F.relu(self.a(x)) + x
        z = torch.cat([y, self.b(x) * 0.5], dim=1)
        z = self.avg(F.relu(self.c(z))) + F.max_pool2d(z, 3, 1, 1)[:, :12]
        return self.head(z.mean((2, 3)))


class Rolled(nn.Module):
    """A conv net with an op the engine does not know in the middle (a roll moves every position)."""

    def __init__(self) -> None:
        super().__init__()
        self.one, self.two = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.roll(F.relu(self.one(x)), shifts=3, dims=3)
        return self.two(x).amax((2, 3))


def seeded(module: nn.Module) -> nn.Module:
    """The module with seeded weights that keep the signal alive through depth (Kaiming convs, random BatchNorm
    statistics), in eval mode: default-initialized deep nets give logits that barely depend on the image."""
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return module.eval()


def images(n: int, h: int, w: int) -> Tensor:
    torch.manual_seed(1)
    return torch.rand(n, 3, h, w)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "googlenet"])
def test_torchvision_classifiers_class_target(name: str) -> None:
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = seeded(getattr(torchvision.models, name)(weights=None, **kwargs))
    results = maps(model, images(1, 67, 61), Target("", (0, 7), "class"), window=11, stride=6, batch_size=48)
    assert_same(results)


def test_inner_layer_channel_and_neuron_targets() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = images(2, 50, 50)
    assert_same(maps(model, x, Target("layer2", (0, 5), "channel"), window=7, stride=3, fill="mean"))
    assert_same(maps(model, x, Target("layer1.1.conv1", (2,), "neuron"), window=5, stride=2, fill="blur"))


def test_residual_and_concat_toy_net_with_a_window_that_does_not_divide_the_image() -> None:
    x = images(2, 45, 38)  # (45 - 8) / 5 and (38 - 8) / 5 leave a last window sticking out
    results = maps(seeded(ResidualConcat()), x, Target("", (0, 3), "class"), window=8, stride=5, batch_size=16)
    assert_same(results)
    assert results["full"].windows[0][-1] + 8 > 45


def test_an_unknown_op_runs_in_full_from_there_on() -> None:
    results = maps(seeded(Rolled()), images(1, 24, 24), Target("", (0, 1, 2, 3), "class"), window=6, stride=3)
    assert_same(results)


def test_regions_shrink_where_the_engine_knows_the_op_and_cover_the_map_after_an_unknown_one() -> None:
    net = fast_forward(seeded(Rolled()), "", None, False)
    engine, x = Incremental(net), images(1, 24, 24)
    engine.prepare(x)
    seen = {}
    original = engine._node

    def spy(n, env):
        out = original(n, env)
        seen[n.name] = out.full if isinstance(out, Region) else None
        return out

    engine._node = spy
    engine.occluded(x[:, :, :6, :6].clone().fill_(0.5), torch.tensor([0]), torch.tensor([0]))
    assert seen["one"] is False and seen["roll"] is True and seen["two"] is True


def test_approximate_mode_at_full_threshold_is_exact_and_below_it_differs() -> None:
    torch.manual_seed(0)
    model = torchvision.models.vgg11(weights=None).eval()
    x, target = images(1, 64, 64), Target("", (0,), "class")
    exact = occlusion.visualize(model, x, target, window=8, stride=8, engine="full").maps
    whole = occlusion.visualize(model, x, target, window=8, stride=8, approx=1.0)
    small = occlusion.visualize(model, x, target, window=8, stride=8, approx=0.1)
    assert whole.engine == small.engine == "incremental" and small.approx == 0.1
    assert torch.allclose(whole.maps, exact, atol=1e-4 * float(exact.abs().max()), rtol=0)
    assert not torch.allclose(small.maps, exact, atol=1e-3 * float(exact.abs().max()), rtol=0)


def test_auto_engine_gives_the_full_maps_whichever_engine_wins_the_race() -> None:
    model = seeded(ResidualConcat())
    x, target = images(1, 40, 40), Target("", (1,), "class")
    full = occlusion.visualize(model, x, target, window=4, stride=2, engine="full", batch_size=8)
    auto = occlusion.visualize(model, x, target, window=4, stride=2, engine="auto", batch_size=8)  # 361 windows
    assert auto.engine in ("incremental", "full")
    assert torch.allclose(auto.maps, full.maps, atol=1e-4 * float(full.maps.abs().max()), rtol=0)
    few = occlusion.visualize(model, x, target, window=20, stride=20, engine="auto")  # one batch: no race
    assert few.engine == "full"


def test_models_fx_cannot_trace_fall_back_or_fail_in_one_line() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: Tensor) -> Tensor:
            y = self.conv(x)
            return y.mean((2, 3)) if float(y.sum()) > -1e9 else y.amax((2, 3))  # data-dependent: untraceable

    x = images(1, 16, 16)
    assert occlusion.visualize(Branchy(), x, Target("", (0,), "class"), window=4, stride=4).engine == "full"
    with pytest.raises(ValueError, match=r"^engine=incremental needs the incremental engine.*torch\.fx cannot trace"):
        occlusion.visualize(Branchy(), x, Target("", (0,), "class"), window=4, stride=4, engine="incremental")


def test_a_normalization_not_known_to_act_per_pixel_is_refused_by_the_incremental_engine() -> None:
    x = images(1, 16, 16)
    model = seeded(Rolled())
    with pytest.raises(ValueError, match="normalization Sequential is not known to act per pixel"):
        occlusion.visualize(model, x, Target("", (0,), "class"), normalize=nn.Sequential(NORM), window=4, stride=4,
                            engine="incremental")


@pytest.mark.parametrize("params, message", [
    ({"engine": "fast"}, r"unknown engine 'fast'; valid: auto, incremental, full"),
    ({"approx": 0.0}, r"approx=0.0 must be in \(0, 1\]"),
    ({"approx": 0.5, "engine": "full"}, r"approx=0.5 needs engine=incremental or auto"),
])
def test_bad_engine_settings_fail_in_one_line(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        occlusion.check_params(**params)


def test_patched_pastes_each_windows_values_over_the_cached_map_and_pads_outside() -> None:
    base = torch.arange(16.0).view(1, 1, 4, 4)
    r = Region(base, torch.full((2, 1, 2, 2), -1.0), torch.tensor([0, 2]), torch.tensor([1, 2]))
    out = patched(r, torch.tensor([-1, 1]), torch.tensor([0, 1]), 3, 3, 99.0)
    assert out.shape == (2, 1, 3, 3)
    assert out[0, 0].tolist() == [[99, 99, 99], [0, -1, -1], [4, -1, -1]]
    assert out[1, 0].tolist() == [[5, 6, 7], [9, -1, -1], [13, -1, -1]]
