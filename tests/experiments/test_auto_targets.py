"""Default targets: the first conv, then spatial maps at about 1/3 and 2/3 of the depth, whole blocks, never a gate."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torchvision.ops import SqueezeExcitation

from experiments.zoo import auto_targets, build_model
from experiments.zoo.planted import build_planted
from experiments.zoo.torchvision_models import build_torchvision, classification_models
from methods.layout import detect
from tests.conftest import make_cfg, make_tiny_cnn


def outputs(model: nn.Module, layers: list[str], hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The outputs of `layers` for one random image, by forward hooks (independent of the zoo's probe)."""
    found: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: found.setdefault(n, o)) for n in layers]
    with torch.no_grad():
        model(torch.rand(1, 3, *hw))
    for handle in handles:
        handle.remove()
    return found


def inside(layer: str, names: list[str]) -> bool:
    """Whether `layer` is one of `names` or a submodule of one."""
    return any(layer == n or layer.startswith(n + ".") for n in names)


def check_targets(model: nn.Module, hw: tuple[int, int]) -> dict[str, list[int]]:
    """auto_targets of `model`, checked: the first conv first, then module names whose outputs are spatial maps
    larger than 1x1, none a squeeze-excitation or attention module or inside one."""
    targets = auto_targets(model, hw)
    first = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    assert list(targets)[0] == first and 2 <= len(targets) <= 3
    gates = [n for n, m in model.named_modules() if isinstance(m, (SqueezeExcitation, nn.MultiheadAttention))
             or type(m).__name__.endswith("Attention")]
    for layer, out in outputs(model, list(targets), hw).items():
        c, h, w = detect(tuple(out.shape[1:]), hw).map_shape(tuple(out.shape[1:]))
        assert h * w > 1 and targets[layer] == list(range(min(4, c))), (layer, out.shape)
        assert not inside(layer, gates), layer
    return targets


FAMILIES = {  # the handful run by default, with their expected blocks
    "resnet18": ["conv1", "layer2.0", "layer3.0"],
    "efficientnet_b1": ["features.0.0", "features.3.2", "features.5.2"],
    "regnet_y_400mf": ["stem.0", "trunk_output.block3.block3-0", "trunk_output.block4.block4-0"],
    "convnext_tiny": ["features.0.0", "features.3.2", "features.5.5"],
    "vit_b_16": ["conv_proj", "encoder.layers.encoder_layer_3", "encoder.layers.encoder_layer_7"],
    "swin_t": ["features.0.0", "features.3.1", "features.5.3"],
    "shufflenet_v2_x0_5": ["conv1.0", "stage3.0", "stage3.6"],
    "inception_v3": ["Conv2d_1a_3x3.conv", "Mixed_5b", "Mixed_6c"],
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_default_targets_of_model_families(name: str) -> None:
    spec = build_torchvision(name)
    assert list(check_targets(spec.model, spec.hw)) == FAMILIES[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", classification_models())
def test_default_targets_of_every_torchvision_classifier(name: str) -> None:
    spec = build_torchvision(name)
    check_targets(spec.model, spec.hw)


class Gate(nn.Module):
    """Squeeze-excitation written by hand: every submodule sees a 1x1 map."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool, self.fc1, self.fc2 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 2, 1), nn.Conv2d(2, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class Gated(nn.Module):
    """A residual block whose body ends in a gate."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), Gate(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Branches(nn.Module):
    """An Inception-style block: two parallel branches, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Sequential(Gated(c), nn.Conv2d(c, 2, 1))
        self.b = nn.Sequential(Gated(c), nn.Conv2d(c, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1)


class Stage(nn.Module):
    """Blocks in a container followed by a norm: a stage, made of its blocks (as ViT's Encoder)."""

    def __init__(self, c: int, n: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[Gated(c) for _ in range(n)])
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))


def staged() -> nn.Module:
    """stem conv, a stage of 6 gated blocks, a branching block, a head."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(stem=nn.Conv2d(3, 8, 3, stride=2), stage=Stage(8, 6), mix=Branches(8),
                                     pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(5, 2))).eval()


def test_blocks_in_a_stage_and_never_a_gate() -> None:
    assert auto_targets(staged(), (32, 32)) == {"stem": [0, 1, 2, 3], "stage.blocks.1": [0, 1, 2, 3],
                                                "stage.blocks.4": [0, 1, 2, 3]}


def test_a_branching_block_is_one_target_not_its_branches() -> None:
    model = nn.Sequential(OrderedDict(stem=nn.Conv2d(3, 8, 3), mix1=Branches(8), conv1=nn.Conv2d(5, 8, 3),
                                      mix2=Branches(8), conv2=nn.Conv2d(5, 8, 3), mix3=Branches(8))).eval()
    assert list(auto_targets(model, (24, 24))) == ["stem", "mix1", "mix2"]  # three blocks: those ending 1/3, 2/3


def test_plain_conv_stack_gets_its_convs_and_units_fit_the_channels() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3), nn.ReLU(),
                          nn.Conv2d(6, 3, 3), nn.AdaptiveAvgPool2d(1)).eval()
    assert auto_targets(model, (16, 16)) == {"0": [0, 1], "2": [0, 1, 2, 3], "4": [0, 1, 2, 3]}
    assert auto_targets(make_tiny_cnn(), (32, 32)) == {"conv1": [0, 1, 2, 3], "conv2": [0, 1, 2, 3]}


def test_maps_at_1x1_are_no_targets() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1))
    assert auto_targets(model, (8, 8)) == {"0": [0, 1, 2, 3]}


def test_one_channel_model_and_non_square_input() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2), nn.Conv2d(4, 5, 3)).eval()
    assert auto_targets(model, (28, 12), in_channels=1) == {"0": [0, 1, 2, 3], "2": [0, 1, 2, 3]}  # two convs after
    # the first: the one ending 1/3 and 2/3 of them is the first


def test_models_setting_their_own_targets_keep_them() -> None:
    assert build_model(make_cfg("model=planted").model).default_targets == build_planted().default_targets
    assert list(build_model(make_cfg("model=shapes_cnn").model).default_targets) == ["conv1", "conv2", "conv3"]
    assert list(build_model(make_cfg("model=googlenet").model).default_targets) == ["conv1.conv", "inception4a"]


class Mlp(nn.Module):
    """Linear + GELU on tokens [N, T, C]."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc, self.act = nn.Linear(c, c), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


class PairBlock(nn.Module):
    """A TNT-like block: (pixel-level tensor, tokens) in, the same pair out."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = Mlp(c)

    def forward(self, inner: torch.Tensor, outer: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return inner, outer + self.mlp(outer)


class Folding(nn.Module):
    """TNT-like: a conv over 4x4 patches folded into the batch ([N * 16, 3, 4, 4]), tokens [N, 16, 8], and blocks
    that return tuples: no conv and no block gives one map per image."""

    def __init__(self) -> None:
        super().__init__()
        self.pixel = nn.Conv2d(3, 4, 3, padding=1)
        self.proj = nn.Linear(64, 8)
        self.blocks = nn.ModuleList([PairBlock(8) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        patches = x.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(n * 16, 3, 4, 4)
        inner = self.pixel(patches)
        outer = self.proj(inner.reshape(n, 16, 64))
        for block in self.blocks:
            inner, outer = block(inner, outer)
        return outer.mean(1)


def test_batch_folding_layers_are_never_targets_and_are_refused_in_one_line() -> None:
    from methods.base import truncate

    model = Folding().eval()
    assert auto_targets(model, (16, 16)) == {"blocks.0.mlp": [0, 1, 2, 3], "blocks.1.mlp": [0, 1, 2, 3]}
    assert truncate(model, "blocks.1.mlp")(torch.rand(2, 3, 16, 16)).shape == (2, 8, 4, 4)
    with pytest.raises(ValueError, match=r"^a layer output of shape \[32, 4, 4, 4\] for 2 input images is not one map per image"):
        truncate(model, "pixel")(torch.rand(2, 3, 16, 16))
