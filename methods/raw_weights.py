"""Raw weights: the filters of the model's first conv, the one that sees the input, drawn as images.

Filters of C input channels are drawn as: C = 1 grey (as RGB), C = 3 RGB, any other C one display channel per
input channel ([U, C, k, k]; pictures show them as C grey panels side by side, experiments.pictures.picture),
or, with `rgb_channels=[i, j, k]`, an RGB composite of input channels i, j, k ([U, 3, k, k]).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from methods.base import Target, Visualization, check_units, get_module, invalid_choice

NORMALIZATIONS = ("per_filter", "symmetric", "shared")


@dataclass(kw_only=True)
class Filters(Visualization):
    """First-layer filters: `images` drawn for display, `weights` [U, C, k, k] as they are."""

    weights: Tensor

    def compared(self) -> list[Tensor]:
        """The raw filters, one per unit."""
        return list(self.weights)

    @property
    def values(self) -> dict[str, Tensor]:
        """Each filter's L2 norm."""
        return {"weight_norm": self.weights.flatten(1).norm(dim=1)}


def first_conv_name(model: nn.Module) -> str:
    """Name of the first Conv2d in module order: the one that consumes the input image."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ValueError(f"{type(model).__name__} has no Conv2d layer to draw")


def normalize_filters(w: Tensor, normalization: str) -> Tensor:
    """Map filters [U, C, k, k] to [0, 1] display values."""
    if normalization == "per_filter":
        lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
        hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
        return (w - lo) / (hi - lo).clamp_min(1e-12)
    if normalization == "symmetric":  # 0 maps to grey, per filter
        scale = w.flatten(1).abs().max(1).values.view(-1, 1, 1, 1).clamp_min(1e-12)
        return 0.5 + 0.5 * w / scale
    if normalization == "shared":  # one scale for all filters, 0 = grey
        return 0.5 + 0.5 * w / w.abs().max().clamp_min(1e-12)
    raise invalid_choice("normalization", normalization, NORMALIZATIONS)


def draw(w: Tensor, normalization: str = "per_filter", rgb_channels: Sequence[int] | None = None) -> Tensor:
    """Display images of filters [U, C, k, k] (see the module docstring); a composite is normalized over its 3 channels."""
    if rgb_channels is not None:
        check_rgb_channels(rgb_channels, w.shape[1])
        w = w[:, list(rgb_channels)]
    images = normalize_filters(w, normalization)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def check_rgb_channels(rgb_channels: Sequence[int] | None, in_channels: int | None = None) -> None:
    """One line unless rgb_channels is None or three channel indices (below in_channels, where known)."""
    if rgb_channels is None:
        return
    top = f"0..{in_channels - 1}" if in_channels else "0, 1, ..."
    ok = len(rgb_channels) == 3 and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in rgb_channels)
    if not ok or in_channels is not None and max(rgb_channels) >= in_channels:
        raise ValueError(f"rgb_channels={list(rgb_channels)} must be three input channels [r, g, b] in {top}")


def check_params(normalization: str = "per_filter", rgb_channels: Sequence[int] | None = None) -> None:
    """One-line ValueError for a bad setting, before any model is built."""
    if normalization not in NORMALIZATIONS:
        raise invalid_choice("normalization", normalization, NORMALIZATIONS)
    check_rgb_channels(rgb_channels)


def check_target(model: nn.Module, target: Target) -> nn.Conv2d:
    """The target's conv layer, if its filters can be drawn: the model's first Conv2d (layer '' means it)."""
    first = first_conv_name(model)
    if target.kind != "channel":
        raise ValueError(f"raw_weights draws the channel filters of the first conv ({first!r}), not a {target.kind!r} "
                         f"target; use target.kind=channel target.layer={first}, or another method for {target.kind} targets")
    layer = target.layer or first
    conv = get_module(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"raw_weights draws Conv2d filters; {layer!r} is a {type(conv).__name__}")
    if layer != first:
        raise ValueError(f"layer {layer!r} is not the model's first conv ({first!r}, the one that sees the input): its "
                         "filters act on feature maps and cannot be drawn directly; use gradient_ascent or top_patches")
    check_units(target.units, conv.out_channels, layer)
    return conv


def visualize(model: nn.Module, target: Target, *, normalization: str = "per_filter",
              rgb_channels: Sequence[int] | None = None) -> Filters:
    """The first conv's filters as images (layer '' means it), drawn as `draw` does, with the raw weights."""
    check_params(normalization, rgb_channels)
    conv = check_target(model, target)
    layer = target.layer or first_conv_name(model)
    with torch.no_grad():
        w = conv.weight.detach()[list(target.units)].float().cpu()
    return Filters(images=draw(w, normalization, rgb_channels), units=tuple(target.units), layer=layer, weights=w)
