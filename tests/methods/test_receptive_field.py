"""Receptive fields: against the gradient support of a unit and against published sizes."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from methods.base import truncate
from methods.receptive_field import (
    GlobalField, ReceptiveField, Undecided, box, crop, empirical_field, field, local_field, receptive_field,
)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Fixed random weights: with 4 channels, some draws leave ReLUs dead for every input (a smaller support)."""
    torch.manual_seed(0)


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
        receptive_field(torchvision.models.resnet18(weights=None), "", 32)
    assert receptive_field(Plain(), "", 48) == ReceptiveField(45, 8, -20)  # a dense output is a map
    merged = nn.Sequential(Plain(), nn.Flatten(2), nn.Unflatten(2, (12, 12)))  # rows and columns merged: measured
    assert field(merged, "", 96) == ReceptiveField(45, 8, -20, "gradient")


def test_grey_inputs_and_wrong_channels() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 3))
    assert receptive_field(model, "2", 20, in_channels=1) == ReceptiveField(7, 2, 0)
    with pytest.raises(ValueError, match="cannot run up to '2'"):
        receptive_field(model, "2", 20)


# --- ops beyond convs and pools: each on a tiny module with its hand-computed field ---------------------------


class ChannelsLast(nn.Module):
    """A ConvNeXt-style block: conv, permute to [N, H, W, C], LayerNorm and Linear per position, back, conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(4)
        self.mlp = nn.Linear(4, 4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(self.norm(self.conv1(x).permute(0, 2, 3, 1)))
        return self.conv2(torch.transpose(x.permute(0, 3, 2, 1), 2, 3))  # [N, C, W, H], then rows and cols swapped back


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle (a size() read, view, transpose, view) and split, between two convs."""

    def __init__(self, merge: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.merge = merge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        n, c, h, w = x.size()
        x = torch.transpose(x.view(n, 2, c // 2, h, w), 1, 2).contiguous().view(n, -1, h, w)
        a, b = x.chunk(2, dim=1)
        if self.merge:  # rows and columns merged into one dim and split again: not modelled, so measured
            b = b.flatten(2).unflatten(2, (h, w))
        return self.conv2(torch.cat([b, a], dim=1))


class Pools(nn.Module):
    """Functional pools with ceil_mode, and an adaptive pool to the size it reads off the map (the identity)."""

    def __init__(self, max_pool=F.max_pool2d) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.max_pool(self.conv(x), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(x, kernel_size=2, stride=2, padding=1, ceil_mode=True)
        return F.adaptive_avg_pool2d(x, x.shape[-2:])


class Up(nn.Module):
    """A stride-4 conv upsampled by `scale` (F.interpolate), then a 1x1 conv."""

    def __init__(self, mode: str = "nearest", scale: float = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 4, stride=4)
        self.head = nn.Conv2d(4, 2, 1)
        self.mode, self.scale = mode, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.interpolate(self.conv(x), scale_factor=self.scale, mode=self.mode))


def test_permute_round_trip_and_channels_last_nodes() -> None:
    model = ChannelsLast()
    assert receptive_field(model, "conv1", 16) == ReceptiveField(3, 2, -1)
    assert receptive_field(model, "mlp", 16) == ReceptiveField(3, 2, -1)  # [N, H, W, C]: still a map
    assert receptive_field(model, "conv2", 16) == ReceptiveField(3 + 2 * 2, 2, -3)
    # (the measured field agrees: test_measured_equals_graph; _positive's equal channels would make LayerNorm constant)


def test_channel_shuffle_keeps_the_field() -> None:
    assert receptive_field(Shuffle(), "conv2", 12) == ReceptiveField(5, 1, -2)
    _check_support(Shuffle(), "conv2", 12, 6, 0)


def test_functional_pools_with_ceil_mode() -> None:
    # conv 3 / 1 / 0; max pool 3, s2: 3 + 2 = 5 / 2 / 0; avg pool 2, s2, p1: 5 + 2 = 7 / 4 / 0 - 2
    model = nn.Sequential(Pools())
    assert receptive_field(model, "0", 20) == ReceptiveField(7, 4, -2)
    # ceil_mode adds a last position whose window sticks out of the map: same field, clipped (here 20 -> 18 -> 9 -> 5)
    same_geometry = nn.Sequential(Pools(F.avg_pool2d))
    assert receptive_field(same_geometry, "0", 20) == ReceptiveField(7, 4, -2)
    for rc in ((0, 0), (4, 4), (2, 3)):
        _check_support(same_geometry, "0", 20, *rc)


@pytest.mark.parametrize("mode,expected", [("nearest", ReceptiveField(6, 2, -2)), ("bilinear", ReceptiveField(10, 2, -4))])
def test_integer_upsampling_holds_every_positions_field(mode: str, expected: ReceptiveField) -> None:
    # conv: 4 / 4 / 0. x2 nearest: output i reads input i // 2, pixels [4 (i // 2), 4 (i // 2) + 4): with stride 2 the
    # smallest field holding them all starts 2 earlier and is 2 longer. x2 bilinear (align_corners=False): i reads
    # inputs floor((2i - 1) / 4) and the next, i.e. [i/2 - 1, i/2 + 1/2]: 4 + 1.5 * 4 = 10 / 2 / -4.
    model = Up(mode)
    rf = receptive_field(model, "head", 24)
    assert rf == expected
    slack = []  # per position: (support top - box top, box bottom - support bottom), rows
    for r in range(12):
        support = _bounding_box(_support(model, "head", 24, r, 5))
        (top, _, bottom, _), _ = box(rf, r, 5, 24)
        assert top <= support[0] and support[2] <= bottom
        slack.append((support[0] - top, bottom - support[2]))
    assert min(s[0] for s in slack) == 0 and min(s[1] for s in slack) == 0  # tight at both ends
    assert max(sum(s) for s in slack) == expected.size - 4 - 4 * (mode == "bilinear")  # a position sees 4 or 8 pixels


def test_upsample_modules() -> None:
    conv = nn.Conv2d(3, 4, 4, stride=4)
    assert receptive_field(nn.Sequential(conv, nn.Upsample(scale_factor=2)), "1", 24) == ReceptiveField(6, 2, -2)
    with pytest.raises(Undecided, match="align_corners=True"):
        receptive_field(nn.Sequential(conv, nn.UpsamplingBilinear2d(scale_factor=2)), "1", 24)


class Ops(nn.Module):
    """Slices of the rows and columns, per-position softmax and reductions over channels, stacking; or a softmax
    over the columns."""

    def __init__(self, spatial_softmax: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.out = nn.Identity()
        self.spatial_softmax = spatial_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)[..., 1:, 1:]  # position i is the conv's i + 1
        y = y.softmax(-1 if self.spatial_softmax else 1)
        y = y - y.mean(1, keepdim=True) + y.amax(dim=1)[:, None]
        return self.out(torch.stack([y, y.sigmoid()], 1).sum(1))


def test_slices_softmax_and_reductions() -> None:
    assert receptive_field(Ops(), "out", 17) == ReceptiveField(3, 2, 2)  # conv 3 / 2 / 0, shifted by one stride
    assert _measured(Ops(), "out", 17) == ReceptiveField(3, 2, 2, "gradient")
    with pytest.raises(Undecided, match="acts along the map's rows or columns"):
        receptive_field(Ops(spatial_softmax=True), "out", 17)


def test_non_integer_upsampling_is_measured_or_refused() -> None:
    with pytest.raises(Undecided, match="integer-factor"):
        receptive_field(Up("nearest", 1.5), "head", 24)
    rf = field(Up("nearest", 1.5), "head", 24)  # output i reads input floor(i / 1.5): no one stride fits
    assert rf.whole_image and rf.method == "gradient"  # so each position is shown the whole image, not a wrong box


def test_size_reads_set_kernels() -> None:
    class Read(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, kernel_size=x.shape[-1] // 4, stride=x.size(-1) // 4)  # 16 px: 4 / 4 / 0

    assert receptive_field(nn.Sequential(Read()), "0", 16) == ReceptiveField(4, 4, 0)


def test_gates_are_global_or_left_out() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv(x)
            return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))  # squeeze-excitation by a reduction

    model = nn.Sequential(Gate(), nn.Conv2d(4, 4, 3, padding=1))
    with pytest.raises(GlobalField, match="ignore_global"):
        receptive_field(model, "1", 16)
    assert receptive_field(model, "1", 16, ignore_global=True) == ReceptiveField(5, 1, -2)
    whole = field(model, "1", (16, 12))
    assert whole == ReceptiveField(16, 0, 0, "graph", whole_image=True) and whole.exceeds_image((16, 12))
    assert box(whole, 3, 5, (16, 12))[0] == (0, 0, 16, 12)
    assert local_field(model, "1", 16) == (ReceptiveField(5, 1, -2), True)
    assert local_field(model, "0.fc", 16) == (ReceptiveField(16, 0, 0, "graph", whole_image=True), False)  # the gate itself


# --- the measured field ---------------------------------------------------------------------------------------


def _measured(model: nn.Module, layer: str, size: int, **kw) -> ReceptiveField:
    """empirical_field of the model cut at `layer`."""
    return empirical_field(truncate(model, layer), (3, size, size), **kw)


@pytest.mark.parametrize("make,layer,size", [
    (Plain, "pool1", 32), (Plain, "conv2", 32), (Plain, "conv3", 32), (Branchy, "head", 16), (Branchy, "left", 16),
    (ChannelsLast, "conv2", 16), (Shuffle, "conv2", 12), (lambda: nn.Sequential(Pools()), "0", 20),
])
def test_measured_equals_graph(make, layer: str, size: int) -> None:
    model = make()
    rf = receptive_field(model, layer, size)
    measured = _measured(model, layer, size)
    assert (measured.size, measured.stride, measured.offset, measured.method) == (rf.size, rf.stride, rf.offset, "gradient")


def test_measured_field_grows_the_canvas() -> None:
    # conv3's 45 px field is larger than a 32 px image: probed at 64 and 128 px it is measured, not clipped
    assert _measured(Plain(), "conv3", 32) == ReceptiveField(45, 8, -20, "gradient")
    assert _measured(Plain(), "conv3", 32, grow=1) == ReceptiveField(32, 0, 0, "gradient", whole_image=True)


def test_stride_gaps_at_the_border() -> None:
    # a 1x1 conv with stride 2 and padding 1 reads pixels 2q - 1: the field (5 / 2 / -3) has gaps, and position 0's
    # clipped box [0, 2) holds pixel 0, which no path reaches; both fields agree, boxes hold the support.
    model = nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1))
    assert receptive_field(model, "1", 16) == ReceptiveField(5, 2, -3)
    assert _measured(model, "1", 16) == ReceptiveField(5, 2, -3, "gradient")
    assert _bounding_box(_support(model, "1", 16, 0, 0)) == (1, 1, 2, 2) and box(ReceptiveField(5, 2, -3), 0, 0, 16)[0] == (0, 0, 2, 2)
    assert _bounding_box(_support(model, "1", 16, 4, 4)) == box(ReceptiveField(5, 2, -3), 4, 4, 16)[0]


class TinyViT(nn.Module):
    """Patch embedding, one self-attention layer over all tokens, tokens back to a [N, C, h, w] map."""

    def __init__(self, fixed: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Identity()
        self.fixed = fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed is not None:
            torch._assert(x.shape[-1] == self.fixed, "wrong image size")
        x = self.embed(x)
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0]
        return self.out(tokens.transpose(1, 2).reshape(n, c, h, w))


@pytest.mark.parametrize("fixed", [None, 32])
def test_attention_falls_back_to_the_whole_image(fixed: int | None) -> None:
    model = TinyViT(fixed)
    with pytest.raises(Undecided):
        receptive_field(model, "out", 32)
    rf = field(model, "out", 32)
    assert rf == ReceptiveField(32, 0, 0, "gradient", whole_image=True) and rf.exceeds_image(32)
    assert field(model, "embed", 32) == ReceptiveField(4, 4, 0)  # below the attention, the graph decides


class Untraceable(nn.Module):
    """Plain behind data-dependent control flow, which torch.fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Plain()
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return self.out(y if y.sum() > -1e9 else -y)


def test_untraceable_and_unknown_ops_are_measured() -> None:

    with pytest.raises(Undecided, match="cannot trace"):
        receptive_field(Untraceable(), "out", 32)
    assert field(Untraceable(), "out", 32) == ReceptiveField(45, 8, -20, "gradient")
    with pytest.raises(Undecided, match="merges or splits"):
        receptive_field(Shuffle(merge=True), "conv2", 12)
    assert field(Shuffle(merge=True), "conv2", 12) == ReceptiveField(5, 1, -2, "gradient")


def test_field_is_cached_per_model() -> None:
    calls = []
    model = TinyViT()
    model.embed.register_forward_hook(lambda *_: calls.append(1))
    first = field(model, "out", 32)
    n = len(calls)
    assert n > 0 and field(model, "out", 32) is first and len(calls) == n


def test_measuring_errors_are_one_line() -> None:
    dead = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    nn.init.zeros_(dead[1].weight)
    cases = [
        (lambda: _measured(dead, "1", 16), "zero input gradient"),
        (lambda: _measured(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), "1", 16), r"needs an \[N, C, H, W\] map"),
        (lambda: empirical_field(truncate(dead, "1"), (1, 16, 16)), r"cannot run on a \[1, 16, 16\] input"),
    ]
    for run, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            run()
        assert "\n" not in str(err.value)


def test_exceeds_image_and_clipped_crops() -> None:
    rf = ReceptiveField(size=20, stride=2, offset=-8)
    assert rf.exceeds_image(16) and rf.exceeds_image((24, 16)) and not rf.exceeds_image(20)
    image = torch.rand(3, 16, 16)
    assert torch.equal(crop(image, rf, 4, 4, 16, clip=True), image)  # [0, 20) clipped: the whole image, as it is
    full = crop(image, rf, 0, 4, 20)  # rows [-8, 12), cols [0, 20): 8 grey rows above, 4 grey columns right
    assert (full[:, :8] == 0.5).all() and (full[:, :, 16:] == 0.5).all() and torch.equal(full[:, 8:, :16], image[:, :12])
    clipped = crop(image, rf, 0, 4, 16, clip=True)  # rows [0, 12) x cols [0, 16), padded to a square: 2 rows each side
    assert (clipped[:, :2] == 0.5).all() and (clipped[:, -2:] == 0.5).all() and torch.equal(clipped[:, 2:14], image[:, :12])


def test_non_square_fields_per_axis() -> None:
    # a 3x7 kernel with stride (1, 2): rows (3, 1, -1), columns (7, 2, -3); traced, measured and cut per axis
    model = nn.Sequential(nn.Conv2d(3, 4, (3, 7), stride=(1, 2), padding=(1, 3)), nn.ReLU(), nn.Conv2d(4, 4, 1))
    rf = receptive_field(model, "2", 16)
    assert rf == ReceptiveField(3, 1, -1, cols=(7, 2, -3)) and rf.sizes == (3, 7) and str(rf) == "3x7"
    measured = _measured(model, "2", 16)
    assert (measured.along(0), measured.along(1), measured.method) == ((3, 1, -1), (7, 2, -3), "gradient")
    assert box(rf, 5, 4, 16) == ((4, 5, 7, 12), (4, 5, 7, 12)) and rf.centre(4, axis=1) == 8.0
    assert rf.exceeds_image((2, 16)) and not rf.exceeds_image((3, 7))
    image = torch.rand(3, 16, 16)
    patch = crop(image, rf, 5, 4, 7)  # 3x7 box padded with 2 grey rows above and below: square, not stretched
    assert patch.shape == (3, 7, 7) and (patch[:, :2] == 0.5).all() and (patch[:, 5:] == 0.5).all()
    assert torch.equal(patch[:, 2:5], image[:, 4:7, 5:12])


def test_inception_factorized_conv_field_is_rectangular() -> None:
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    rf = receptive_field(model, "Mixed_6e.branch7x7_2", 299)
    (rows, stride_h, _), (cols, stride_w, _) = rf.along(0), rf.along(1)
    assert stride_h == stride_w == 16 and cols - rows == 6 * 16  # a 1x7 conv at stride 16 widens the field by 6 strides
