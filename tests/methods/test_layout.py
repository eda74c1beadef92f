"""Layer outputs as maps: token and channels-last layers are folded back so that "channel k" is feature channel k."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from methods.base import Target, layer_shape, pair, read_out, truncate
from methods.graph import fast_forward
from methods.layout import Layout, detect

PATCH, DIM = 4, 6


class TokenNet(nn.Module):
    """A tiny ViT-like net: patch embedding, a class token in front, then a per-token linear `block`."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, DIM, PATCH, stride=PATCH)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM))
        self.block = nn.Linear(DIM, DIM)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # [N, h*w, C], row-major over the grid
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1)
        return self.block(tokens)[:, 0]


class ChannelsLastNet(nn.Module):
    """A conv, then a per-position linear on a channels-last map (as ConvNeXt and Swin blocks do)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, DIM, 3, stride=2, padding=1)
        self.mix = nn.Linear(DIM, DIM)

    def forward(self, x: Tensor) -> Tensor:
        return self.mix(self.conv(x).permute(0, 2, 3, 1)).mean((1, 2))


@pytest.mark.parametrize("shape, hw, layout", [
    ((768, 14, 14), (224, 224), Layout("nchw")),
    ((28, 28, 192), (224, 224), Layout("nhwc")),
    ((197, 768), (224, 224), Layout("tokens", (14, 14), 1)),
    ((198, 384), (224, 224), Layout("tokens", (14, 14), 2)),
    ((196, 768), (224, 224), Layout("tokens", (14, 14), 0)),
    ((1 + 6 * 10, 32), (24, 40), Layout("tokens", (6, 10), 1)),
    ((32, 147, 147), (299, 299), Layout("nchw")),  # inception's valid 3x3 convs lose pixels
    ((1000,), (224, 224), Layout("vector")),
])
def test_detect(shape: tuple[int, ...], hw: tuple[int, int], layout: Layout) -> None:
    assert detect(shape, hw) == layout


@pytest.mark.parametrize("shape", [(7, 5, 3, 2), (3, 1000), (2, 1000)])
def test_outputs_that_are_no_map_are_one_line(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="cannot be seen as a feature map") as err:
        detect(shape, (224, 224))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("build", [truncate, fast_forward])
def test_token_channel_k_is_feature_k(build) -> None:
    torch.manual_seed(0)
    net = TokenNet().eval()
    x = torch.rand(2, 3, 16, 24)
    tokens = net.block(torch.cat([net.cls.expand(2, -1, -1), net.embed(x).flatten(2).transpose(1, 2)], 1))
    acts = build(net, "block")(x)
    assert acts.shape == (2, DIM, 4, 6)
    for k in range(DIM):
        for i, j in ((0, 0), (1, 4), (3, 5)):
            assert torch.allclose(acts[:, k, i, j], tokens[:, 1 + i * 6 + j, k])
    means = read_out(acts, Target("block", (2, 5)))
    assert torch.allclose(means, tokens[:, 1:, [2, 5]].mean(1), atol=1e-6)  # not tokens 2 and 5
    assert layer_shape(net, "block", (16, 24)) == (DIM, 4, 6)


@pytest.mark.parametrize("build", [truncate, fast_forward])
def test_channels_last_channel_k_is_feature_k(build) -> None:
    torch.manual_seed(0)
    net = ChannelsLastNet().eval()
    x = torch.rand(2, 3, 20, 20)
    raw = net.mix(net.conv(x).permute(0, 2, 3, 1))  # [N, 10, 10, C]
    acts = build(net, "mix")(x)
    assert acts.shape == (2, DIM, 10, 10)
    assert torch.allclose(acts, raw.permute(0, 3, 1, 2))


def test_pair_reads_a_side_or_h_w_and_names_a_bad_value() -> None:
    import numpy as np
    from omegaconf import OmegaConf

    assert pair(16) == (16, 16) and pair((24, 40)) == (24, 40) and pair(OmegaConf.create([24, 40])) == (24, 40)
    assert pair(np.int64(8)) == (8, 8) and pair(torch.Size([3, 5])) == (3, 5)
    for bad in (0, (24,), (24, 0), (24, 40, 3), (24.0, 40), "24", True, None):
        with pytest.raises(ValueError, match=r"^input_size=.* must be a positive number of pixels or \[h, w\]$"):
            pair(bad)
    with pytest.raises(ValueError, match=r"^out_size=\(1, -2\) must"):
        pair((1, -2), "out_size")
