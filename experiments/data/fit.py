"""Fitting an image and its mask to the model's (h, w): the same geometry for both, so masks stay on their objects.

pad: the whole image, resized to fit inside (h, w) keeping its aspect ratio, centred on grey (masks: on False).
crop: resized to cover (h, w) keeping its aspect ratio, then centre-cropped. stretch: resized to (h, w).
Images resize bilinearly with antialiasing, masks by nearest neighbour.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn.functional as F
from torch import Tensor

from methods.base import invalid_choice, pair

RESIZE = ("pad", "crop", "stretch")
GREY = 0.5  # what pad fills around an image


def check_resize(mode: str) -> str:
    """`mode` if it is one of RESIZE; one line naming data.resize and the valid ones otherwise."""
    if mode not in RESIZE:
        raise invalid_choice("data.resize", mode, RESIZE)
    return mode


def placement(src: tuple[int, int], size: Any, mode: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a `src` (h, w) image goes: its resized (h, w) and the (top, left) offset of the pad or the crop."""
    (sh, sw), (h, w) = src, pair(size)
    if check_resize(mode) == "stretch":
        return (h, w), (0, 0)
    scale = (min if mode == "pad" else max)(h / sh, w / sw)
    rh, rw = max(1, round(sh * scale)), max(1, round(sw * scale))
    return (rh, rw), (abs(h - rh) // 2, abs(w - rw) // 2)


def resize_images(images: Tensor, size: Any) -> Tensor:
    """Float images [N, C, H, W] at (h, w) (bilinear, antialiased); unchanged where already that size."""
    size = pair(size)
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def resize_masks(masks: Tensor, size: Any) -> Tensor:
    """Bool masks [N, H, W] at (h, w) (nearest neighbour, pixel centres); unchanged where already that size."""
    size = pair(size)
    if tuple(masks.shape[-2:]) == size:
        return masks
    return F.interpolate(masks[:, None].float(), size=size, mode="nearest-exact")[:, 0] > 0.5


def _fit(x: Tensor, size: Any, mode: str, resize: Callable[[Tensor, Any], Tensor], fill: float | bool) -> Tensor:
    """`x` [..., H, W] resized by `resize` to its placement, then padded with `fill` or cropped to (h, w)."""
    (h, w), ((rh, rw), (top, left)) = pair(size), placement(tuple(x.shape[-2:]), size, mode)
    x = resize(x[None], (rh, rw))[0]
    if mode == "crop":
        return x[..., top : top + h, left : left + w]
    if (rh, rw) == (h, w):
        return x
    out = x.new_full((*x.shape[:-2], h, w), fill)
    out[..., top : top + rh, left : left + rw] = x
    return out


def fit_image(image: Tensor, size: Any, mode: str) -> Tensor:
    """A float image [C, H, W] in [0, 1] fitted to (h, w) by `mode` (see the module docstring)."""
    return _fit(image, size, mode, resize_images, GREY)


def fit_mask(mask: Tensor, size: Any, mode: str) -> Tensor:
    """A bool mask [H, W] fitted to (h, w) exactly as fit_image fits its image."""
    return _fit(mask, size, mode, resize_masks, False)
