"""Receptive fields: against the gradient support of a unit and against published sizes."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from methods.base import truncate
from methods.receptive_field import ReceptiveField, box, receptive_field


class Plain(nn.Module):
    """Strided conv, max pool, dilated conv, avg pool and a 'same' conv: one path."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 5, stride=2, padding=2)
        self.relu = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, 2, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, dilation=2, padding=2)
        self.pool2 = nn.AvgPool2d(2)
        self.conv3 = nn.Conv2d(4, 4, 3, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu(self.conv1(x)))
        return self.conv3(self.pool2(self.relu(self.conv2(x))))


class Branchy(nn.Module):
    """Two branches shifted left/up and right/down joined by add (residual) and by concatenation."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Sequential(nn.ZeroPad2d((2, 0, 2, 0)), nn.Conv2d(3, 4, 3))
        self.right = nn.Sequential(nn.ZeroPad2d((0, 2, 0, 2)), nn.Conv2d(3, 4, 3))
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(4, 4, 1, stride=2)
        self.wide = nn.Conv2d(4, 4, 5, padding=2)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.left(x) + self.right(x))
        y = self.down(y) + self.skip(y)
        return self.head(torch.cat([y, self.wide(y)], dim=1))


def _positive(model: nn.Module) -> nn.Module:
    """A copy with positive weights and max pools swapped for average pools (same geometry), so no gradient cancels."""
    model = copy.deepcopy(model).eval()
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.MaxPool2d):
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], nn.AvgPool2d(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode))
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.constant_(mod.weight, 1.0 / mod.weight[0].numel())
            if mod.bias is not None:
                nn.init.constant_(mod.bias, 0.01)
    return model


def _support(model: nn.Module, layer: str, size: int, row: int, col: int) -> torch.Tensor:
    """Input pixels [H, W] with a nonzero gradient of unit 0 at (row, col) of `layer`."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    truncate(_positive(model), layer)(x)[0, 0, row, col].backward()
    return x.grad[0].abs().sum(0) > 0


def _box_mask(b: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """Boolean [H, W] mask of a (top, left, bottom, right) box."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[b[0]:b[2], b[1]:b[3]] = True
    return mask


def _bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the True pixels, bottom/right exclusive."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _check_support(model: nn.Module, layer: str, size: int, row: int, col: int, filled: bool = True) -> ReceptiveField:
    """Assert the clipped box of (row, col) is the bounding box of the gradient support (and, if `filled`,
    exactly the support); return the field."""
    rf = receptive_field(model, layer, size)
    clipped, _ = box(rf, row, col, size)
    support = _support(model, layer, size, row, col)
    assert _bounding_box(support) == clipped
    if filled:
        assert torch.equal(support, _box_mask(clipped, size))
    return rf


@pytest.mark.parametrize("layer,rc", [("conv1", (3, 5)), ("pool1", (0, 0)), ("conv2", (4, 2)), ("pool2", (2, 3)), ("conv3", (2, 2)), ("conv3", (0, 3))])
def test_plain_matches_gradient_support(layer: str, rc: tuple[int, int]) -> None:
    _check_support(Plain(), layer, 48, *rc)


def test_plain_numbers() -> None:
    # conv1: 5 / 2 / -2; pool1: 5 + 2*2 = 9 / 4 / -4; conv2 (dilated 5): 9 + 4*4 = 25 / 4 / -12;
    # pool2: 25 + 4 = 29 / 8 / -12; conv3: 29 + 2*8 = 45 / 8 / -20
    assert receptive_field(Plain(), "conv3", 48) == ReceptiveField(45, 8, -20)


@pytest.mark.parametrize("layer,rc", [("left", (3, 3)), ("right", (0, 7)), ("down", (3, 2)), ("skip", (1, 1)), ("head", (3, 4)), ("head", (0, 0))])
def test_branches_match_gradient_support(layer: str, rc: tuple[int, int]) -> None:
    # the union of a top-left and a bottom-right branch is L-shaped: its bounding box is the field
    _check_support(Branchy(), layer, 16, *rc, filled=layer in ("left", "right"))


def test_union_is_larger_than_each_branch() -> None:
    model = Branchy()
    assert receptive_field(model, "left", 16) == ReceptiveField(3, 1, -2)
    assert receptive_field(model, "right", 16) == ReceptiveField(3, 1, 0)
    # add: [-2, 3) is the union; down conv (3, s2, p1) then wide (5, p2) at stride 2 in the concat
    assert receptive_field(model, "down", 16) == ReceptiveField(5 + 2, 2, -3)
    assert receptive_field(model, "head", 16) == ReceptiveField(7 + 8, 2, -7)


def test_resnet18_residual_blocks_match_gradient_support() -> None:
    model = torchvision.models.resnet18(weights=None)
    rf = _check_support(model, "layer2", 96, 6, 5)
    assert (rf.size, rf.stride) == (99, 8)
    _check_support(model, "layer1.1", 64, 8, 2)


def test_published_sizes() -> None:
    # VGG16 (Araujo et al. 2019, distill "Computing receptive fields"): conv5_3 = 196, pool5 = 212.
    vgg = torchvision.models.vgg16(weights=None).eval()
    assert receptive_field(vgg, "features.28", 64) == ReceptiveField(196, 16, -90)
    assert receptive_field(vgg, "features.30", 64).size == 212
    # ResNet-18 theoretical sizes: conv1 7, layer1 43, layer2 99, layer3 211, layer4 435.
    res = torchvision.models.resnet18(weights=None).eval()
    sizes = [receptive_field(res, n, 64).size for n in ("conv1", "layer1", "layer2", "layer3", "layer4")]
    assert sizes == [7, 43, 99, 211, 435]


@pytest.mark.slow
def test_published_sizes_match_gradient_support() -> None:
    _check_support(torchvision.models.vgg16(weights=None), "features.30", 224, 3, 3)
    _check_support(torchvision.models.vgg16(weights=None), "features.28", 224, 7, 6)
    _check_support(torchvision.models.resnet18(weights=None), "layer4", 448, 7, 7)


def test_box_clips_to_image() -> None:
    rf = ReceptiveField(size=7, stride=2, offset=-3)
    assert box(rf, 0, 5, 16) == ((0, 7, 4, 14), (-3, 7, 4, 14))
    assert box(rf, 7, 7, (16, 18)) == ((11, 11, 16, 18), (11, 11, 18, 18))
    assert rf.centre(0) == 0.0 and rf.centre(5) == 10.0


def test_global_layers_rejected_or_ignored() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(36, 2))
    with pytest.raises(ValueError, match="adaptive pooling"):
        receptive_field(model, "1", 12)
    with pytest.raises(ValueError, match="no spatial positions"):
        receptive_field(model, "3", 11)
    with pytest.raises(ValueError, match="no local receptive field"):
        receptive_field(model, "1", 12, ignore_global=True)
    assert receptive_field(model, "1", 11) == ReceptiveField(3 + 2, 3, 0)  # 9 -> 3 divides: an exact pool of 3


def test_squeeze_excitation_needs_ignore_global() -> None:
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    with pytest.raises(ValueError, match="ignore_global"):
        receptive_field(model, "features.4", 64)
    assert receptive_field(model, "features.1", 64, ignore_global=True).stride == 4


def test_bad_layer_names() -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        receptive_field(Plain(), "conv9", 32)
    with pytest.raises(ValueError, match="logits"):
        receptive_field(Plain(), "", 32)


def test_grey_inputs_and_wrong_channels() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 3))
    assert receptive_field(model, "2", 20, in_channels=1) == ReceptiveField(7, 2, 0)
    with pytest.raises(ValueError, match="cannot run up to '2'"):
        receptive_field(model, "2", 20)
