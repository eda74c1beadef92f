"""The truncated model rebuilt for speed: one fx graph up to the layer, BatchNorm folded into convs, channels_last."""
from __future__ import annotations

import copy

import torch
from torch import Tensor, fx, nn
from torch.fx.experimental.optimization import fuse
from torchvision.models.feature_extraction import create_feature_extractor

from methods.base import truncate


class FastForward(nn.Module):
    """normalize, then NHWC when asked, then the body; returns the output of `layer` (the model's when layer is '')."""

    def __init__(self, body: nn.Module, normalize: nn.Module | None, channels_last: bool, traced: bool) -> None:
        super().__init__()
        self.body = body
        self.normalize = normalize if normalize is not None else nn.Identity()
        self.channels_last = channels_last
        self.traced = traced

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalize(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.body(x)
        return out["out"] if self.traced and isinstance(out, dict) else out


def traced(model: nn.Module, layer: str) -> fx.GraphModule:
    """The model cut after `layer` as an fx graph of its own copies of the modules (the model is left as it is)."""
    body = create_feature_extractor(model, {layer: "out"}) if layer else fx.symbolic_trace(model)
    return copy.deepcopy(body).train(model.training)  # the graph shares modules with model; deepcopy resets .training


def fast_forward(model: nn.Module, layer: str, normalize: nn.Module | None = None, channels_last: bool = False) -> nn.Module:
    """A copy of `truncate(model, layer, normalize)` that computes the same function faster.

    Nothing above the layer is in the graph; in eval mode each BatchNorm after a conv is folded into that conv's
    weights (one op fewer forward and backward); with channels_last weights and inputs are NHWC (oneDNN and
    cuDNN's fast layout). Outputs and input gradients equal the model's up to float rounding. Models torch.fx
    cannot trace (data-dependent control flow) fall back to a hook-truncated copy, unfolded.
    """
    try:
        body: nn.Module = traced(model, layer)
    except Exception:  # noqa: BLE001 - any tracing failure means: use the plain truncation
        net = FastForward(truncate(copy.deepcopy(model), layer), copy.deepcopy(normalize), channels_last, traced=False)
    else:
        if not model.training:
            body = fuse(body, inplace=True, no_trace=True).eval()
        net = FastForward(body, copy.deepcopy(normalize), channels_last, traced=bool(layer))
    return net.to(memory_format=torch.channels_last) if channels_last else net
