"""Procedural shapes: seeded RGB (or grey) images of simple objects on textured grey backgrounds, with labels and masks.

Objects differ from the background in luminance (contrast 0.25-0.35, either sign) plus a small random tint,
except `red_green`, an isoluminant red blob left of a green blob. Sizes are given for 64 px and scale with the
shorter side; a non-square (h, w) spreads the objects over the whole image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from experiments.data.channels import as_channels, check_channels
from experiments.data.count import check_n
from experiments.data.spec import DataSpec, describe
from methods.base import pair

CLASSES = ("bar_h", "bar_v", "bar_diag", "cross", "corner", "disc", "grating", "checkerboard", "red_green")


def _uniform(m: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    """`m` uniform draws in [lo, hi) as a [m, 1, 1] tensor (broadcasts over the pixel grid)."""
    return (lo + (hi - lo) * torch.rand(m, generator=g)).view(m, 1, 1)


def _centre(m: int, side: int, half: Tensor, g: torch.Generator) -> Tensor:
    """Random centre coordinates [m, 1, 1] keeping an object of half-extent `half` 2 px inside an image `side` px long."""
    margin = half + 2
    return margin + torch.rand(m, 1, 1, generator=g) * (side - 1 - 2 * margin)


def rectangle(yy: Tensor, xx: Tensor, cy: Tensor, cx: Tensor, theta: Tensor, length: Tensor, width: Tensor) -> Tensor:
    """Mask of rectangles centred at (cy, cx), long side `length` at angle `theta` (0 = horizontal)."""
    u = (xx - cx) * torch.cos(theta) + (yy - cy) * torch.sin(theta)
    v = -(xx - cx) * torch.sin(theta) + (yy - cy) * torch.cos(theta)
    return (u.abs() <= length / 2) & (v.abs() <= width / 2)


def disc(yy: Tensor, xx: Tensor, cy: Tensor, cx: Tensor, r: Tensor) -> Tensor:
    """Mask of discs of radius `r` centred at (cy, cx)."""
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _bar(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor, angles: tuple[float, ...]) -> Tensor:
    """Bars of length 24-44 px and width 3-5 px at one of `angles` (degrees)."""
    s = min(h, w) / 64
    length, width = _uniform(m, 24 * s, 44 * s, g), _uniform(m, 3 * s, 5 * s, g)
    pick = torch.randint(len(angles), (m,), generator=g)
    theta = torch.tensor(angles)[pick].view(m, 1, 1) * math.pi / 180
    cos, sin = torch.cos(theta).abs(), torch.sin(theta).abs()
    cy = _centre(m, h, length / 2 * sin + width / 2 * cos, g)
    cx = _centre(m, w, length / 2 * cos + width / 2 * sin, g)
    return rectangle(yy, xx, cy, cx, theta, length, width)


def _cross(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor) -> Tensor:
    """Upright crosses (+) with arms 24-40 px long and 3-5 px wide."""
    s = min(h, w) / 64
    lh, lv, width = _uniform(m, 24 * s, 40 * s, g), _uniform(m, 24 * s, 40 * s, g), _uniform(m, 3 * s, 5 * s, g)
    cy, cx = _centre(m, h, lv / 2, g), _centre(m, w, lh / 2, g)
    zero = torch.zeros_like(cy)
    return rectangle(yy, xx, cy, cx, zero, lh, width) | rectangle(yy, xx, cy, cx, zero + math.pi / 2, lv, width)


def _corner(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor) -> Tensor:
    """Top-left corners (an L rotated to look like the corner of a box): arms 16-30 px going right and down."""
    s = min(h, w) / 64
    a, b, width = _uniform(m, 16 * s, 30 * s, g), _uniform(m, 16 * s, 30 * s, g), _uniform(m, 3 * s, 5 * s, g)
    y0 = 2 + torch.rand(m, 1, 1, generator=g) * (h - 5 - b)
    x0 = 2 + torch.rand(m, 1, 1, generator=g) * (w - 5 - a)
    arm_h = (xx >= x0) & (xx <= x0 + a) & (yy >= y0) & (yy <= y0 + width)
    arm_v = (xx >= x0) & (xx <= x0 + width) & (yy >= y0) & (yy <= y0 + b)
    return arm_h | arm_v


def _disc(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor) -> Tensor:
    """Filled discs of radius 6-14 px."""
    s = min(h, w) / 64
    r = _uniform(m, 6 * s, 14 * s, g)
    return disc(yy, xx, _centre(m, h, r, g), _centre(m, w, r, g), r)


def _grating(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor) -> tuple[Tensor, Tensor]:
    """Sine gratings (wavelength 3.5-4.5 px, any orientation) in a disc window of radius 12-20 px: (mask, wave in [-1, 1])."""
    s = min(h, w) / 64
    r, wavelength = _uniform(m, 12 * s, 20 * s, g), _uniform(m, 3.5 * s, 4.5 * s, g)
    theta, phase = _uniform(m, 0, math.pi, g), _uniform(m, 0, 2 * math.pi, g)
    cy, cx = _centre(m, h, r, g), _centre(m, w, r, g)
    along = (xx - cx) * torch.cos(theta) + (yy - cy) * torch.sin(theta)
    return disc(yy, xx, cy, cx, r), torch.sin(2 * math.pi * along / wavelength + phase)


def _checkerboard(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor) -> tuple[Tensor, Tensor]:
    """Upright checkerboards (checks 4-6 px) in a square window of side 20-32 px: (mask, pattern in {-1, 1})."""
    s = min(h, w) / 64
    side, check = _uniform(m, 20 * s, 32 * s, g), _uniform(m, 4 * s, 6 * s, g)
    cy, cx = _centre(m, h, side / 2, g), _centre(m, w, side / 2, g)
    inside = ((yy - cy).abs() <= side / 2) & ((xx - cx).abs() <= side / 2)
    parity = torch.floor((yy - cy + side / 2) / check) + torch.floor((xx - cx + side / 2) / check)
    return inside, 1 - 2 * torch.remainder(parity, 2)


def _red_green(m: int, h: int, w: int, g: torch.Generator, yy: Tensor, xx: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
    """A soft red blob left of a soft green blob (isoluminant with the background): (alpha [m,1,H,W], fill [m,3,H,W])."""
    s = min(h, w) / 64
    sigma, amp = _uniform(m, 3.5 * s, 5 * s, g), _uniform(m, 0.3, 0.4, g).view(m, 1, 1, 1)
    gap = 1.6 * sigma
    cy, cx = _centre(m, h, gap + 2 * sigma, g), _centre(m, w, gap + 2 * sigma, g)
    blob_r = torch.exp(-((yy - cy) ** 2 + (xx - cx + gap) ** 2) / (2 * sigma**2))
    blob_g = torch.exp(-((yy - cy) ** 2 + (xx - cx - gap) ** 2) / (2 * sigma**2))
    red = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)
    fill = level + amp * torch.where((blob_r > blob_g).unsqueeze(1), red, -red)
    return torch.maximum(blob_r, blob_g).unsqueeze(1), fill


def _background(n: int, h: int, w: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Grey backgrounds (level 0.4-0.6) with smooth texture and pixel noise: (images [n,3,H,W], levels [n,1,1,1])."""
    level = 0.4 + 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    texture = F.interpolate(torch.randn(n, 1, 8, 8, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    images = torch.randn(n, 3, h, w, generator=g).mul_(0.02)
    return images.add_(texture.mul_(0.04)).add_(level), level


def _object_colour(m: int, level: Tensor, g: torch.Generator) -> Tensor:
    """Object colours [m,3,1,1]: background level +- 0.25-0.35 in luminance plus a zero-sum tint of up to 0.15."""
    sign = torch.randint(2, (m, 1, 1, 1), generator=g) * 2 - 1
    tint = torch.rand(m, 3, 1, 1, generator=g) - 0.5
    tint = 0.3 * (tint - tint.mean(1, keepdim=True))
    return level + sign * (0.25 + 0.1 * torch.rand(m, 1, 1, 1, generator=g)) + tint


def _draw(k: int, m: int, h: int, w: int, g: torch.Generator, level: Tensor) -> tuple[Tensor, Tensor]:
    """Alpha [m,1,H,W] and fill [m,3,H,W] of `m` objects of class `k` on backgrounds of grey `level` [m,1,1,1]."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    name = CLASSES[k]
    if name == "red_green":
        return _red_green(m, h, w, g, yy, xx, level)
    colour = _object_colour(m, level, g)
    if name in ("grating", "checkerboard"):
        mask, pattern = (_grating if name == "grating" else _checkerboard)(m, h, w, g, yy, xx)
        return mask.unsqueeze(1).float(), level + pattern.unsqueeze(1) * (colour - level)
    bars = {"bar_h": (0.0,), "bar_v": (90.0,), "bar_diag": (45.0, 135.0)}
    if name in bars:
        mask = _bar(m, h, w, g, yy, xx, bars[name])
    else:
        mask = {"cross": _cross, "corner": _corner, "disc": _disc}[name](m, h, w, g, yy, xx)
    return mask.unsqueeze(1).float(), colour


def check_make_shapes(n: int = 512) -> None:
    """data.n is a count (shapes are drawn: there is no all), checked before drawing
    (experiments.builders.check_builder)."""
    check_n(n, "shapes")


def make_shapes(n: int = 512, size: int | tuple[int, int] = 64, seed: int = 0, channels: int = 3) -> DataSpec:
    """`n` seeded shape images at `size` (px, or (h, w)), classes balanced (see CLASSES), with object masks;
    `channels`=1 gives the luminance of the RGB drawing (experiments.data.channels)."""
    check_make_shapes(n)
    h, w = pair(size)
    if min(h, w) < 32:
        raise ValueError(f"data=shapes draws images of >= 32 px; the model's input is {describe(size)}")
    check_channels("shapes", channels)
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    images, level = _background(n, h, w, g)
    masks = torch.zeros(n, h, w, dtype=torch.bool)
    for k in range(len(CLASSES)):
        idx = (labels == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        alpha, fill = _draw(k, idx.numel(), h, w, g, level[idx])
        images[idx] = torch.lerp(images[idx], fill, alpha)
        masks[idx] = alpha.squeeze(1) > 0.5
    images = as_channels(images.clamp_(0, 1), "shapes", channels)
    return DataSpec(name="shapes", images=images, labels=labels, masks=masks, class_names=CLASSES)
