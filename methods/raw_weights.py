"""Raw weights: a first-layer conv's filters drawn as images (only layers that see colours can be)."""
from __future__ import annotations

from dataclasses import dataclass

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


def check_params(normalization: str = "per_filter") -> None:
    """One-line ValueError for a bad setting, before any model is built."""
    if normalization not in NORMALIZATIONS:
        raise invalid_choice("normalization", normalization, NORMALIZATIONS)


def check_target(model: nn.Module, target: Target) -> nn.Conv2d:
    """The target's conv layer, if its filters can be drawn: the model's first Conv2d (layer '' means it)."""
    layer = target.layer or first_conv_name(model)
    conv = get_module(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"raw_weights draws Conv2d filters; {layer!r} is a {type(conv).__name__}")
    if conv.in_channels not in (1, 3) or layer != first_conv_name(model):
        raise ValueError(
            f"layer {layer!r} takes {conv.in_channels} feature maps, not colours, as input: its filters cannot be "
            f"drawn directly; use gradient_ascent or top_patches for deeper layers (first conv: {first_conv_name(model)!r})"
        )
    check_units(target.units, conv.out_channels, layer)
    return conv


def visualize(model: nn.Module, target: Target, *, normalization: str = "per_filter") -> Filters:
    """The target layer's filters as images; layer '' means the first conv layer of the model."""
    conv = check_target(model, target)
    layer = target.layer or first_conv_name(model)
    with torch.no_grad():
        w = conv.weight.detach()[list(target.units)].float().cpu()
    images = normalize_filters(w, normalization)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return Filters(images=images, units=tuple(target.units), layer=layer, weights=w)
