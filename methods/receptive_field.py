"""Receptive fields: theoretical from the module graph (methods.rf_graph), else measured as the support of input
gradients (methods.rf_measure); `field` is the entry point, `crop` cuts a position's field out of an image.
"""
from __future__ import annotations

import weakref

import torch.nn.functional as F
from torch import Tensor, nn

from methods.base import GREY, pair, truncate
from methods.rf_geometry import Box, GlobalField, ReceptiveField, Undecided, box
from methods.rf_graph import traced_field
from methods.rf_measure import MAX_CANVAS, empirical_field

__all__ = ["Box", "GlobalField", "MAX_CANVAS", "ReceptiveField", "Undecided", "box", "crop", "empirical_field", "field",
           "local_field", "receptive_field"]

# model -> {key: field}; geometry is fixed once a model is built (weights do not matter)
_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def field(model: nn.Module, layer: str, input_size: int | tuple[int, int], in_channels: int = 3,
          ignore_global: bool = False) -> ReceptiveField:
    """Receptive field of `layer`'s positions for `input_size` inputs: from the graph, else measured.

    The graph decides where it can (method "graph"; a global op without `ignore_global` makes it the whole image);
    where it cannot, the field is measured on `truncate(model, layer)` by `empirical_field` (method "gradient"),
    which with `ignore_global` cuts the gradient through adaptive pooling that shrinks the map (gates). Cached per
    model; raises one line where neither applies (a layer without a map, an input the model cannot take).
    """
    hw = pair(input_size)
    key = ("field", layer, hw, ignore_global, in_channels)
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        try:
            cached[key] = receptive_field(model, layer, hw, ignore_global, in_channels)
        except GlobalField:
            cached[key] = ReceptiveField(max(hw), 0, 0, "graph", whole_image=True)
        except Undecided:
            cached[key] = empirical_field(truncate(model, layer), (in_channels, *hw), ignore_global=ignore_global)
    return cached[key]


def local_field(model: nn.Module, layer: str, input_size: int | tuple[int, int], in_channels: int = 3
                ) -> tuple[ReceptiveField, bool]:
    """The layer's field (`field`); where global branches (e.g. squeeze-excitation) make it the whole image, the
    local one without them, flagged True (the whole image where there is no local one, as for a gate itself)."""
    rf = field(model, layer, input_size, in_channels)
    if not rf.whole_image:
        return rf, False
    try:
        local = field(model, layer, input_size, in_channels, ignore_global=True)
    except ValueError:
        return rf, False
    return (local, True) if not local.whole_image else (rf, False)


def receptive_field(
    model: nn.Module, layer: str, input_size: int | tuple[int, int], ignore_global: bool = False, in_channels: int = 3
) -> ReceptiveField:
    """Receptive field of `layer`'s output positions for `input_size` inputs, from the traced module graph only.

    With `ignore_global`, branches that pool over the whole map (adaptive pooling to a smaller size, reductions
    over rows or columns, squeeze-excitation, GroupNorm/InstanceNorm, LayerNorm over the map) are left out, as
    receptive-field tables usually do; without it such layers raise GlobalField, since their true receptive field
    is the whole image. Raises Undecided where the graph cannot decide (see `field` for the fallback).
    `layer=''` is the model's own output (a dense map has a field; logits raise). Results are cached per model
    object (the geometry does not depend on the weights).
    """
    key = (layer, pair(input_size), ignore_global, in_channels)
    cached = _CACHE.setdefault(model, {})
    if key not in cached:
        cached[key] = traced_field(model, layer, (in_channels, *pair(input_size)), ignore_global)
    return cached[key]


def crop(image: Tensor, rf: ReceptiveField, row: int, col: int, side: int, clip: bool = False) -> Tensor:
    """The full receptive-field box of map position (row, col) in `image` [C, H, W], grey where it sticks out
    of the image, resized to side x side; with `clip`, the box clipped to the image instead: for fields larger
    than the image, which would otherwise show a small image inside grey. A box that is not square is padded
    (grey, centred) to a square first, so nothing is stretched."""
    (t, l, b, r), (ft, fl, fb, fr) = box(rf, row, col, tuple(image.shape[-2:]))
    if b <= t or r <= l:
        raise ValueError(f"position ({row}, {col}) has its receptive field outside the {image.shape[-2]}x{image.shape[-1]} image")
    patch = image[:, t:b, l:r] if clip else F.pad(image[:, t:b, l:r], (l - fl, fr - r, t - ft, fb - b), value=GREY)
    extra_h, extra_w = max(0, patch.shape[-1] - patch.shape[-2]), max(0, patch.shape[-2] - patch.shape[-1])
    if extra_h or extra_w:
        patch = F.pad(patch, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2), value=GREY)
    if patch.shape[-1] != side:
        patch = F.interpolate(patch[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0]
    return patch
