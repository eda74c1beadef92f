"""Regularizers: differentiable penalties per image ([B]) and in-place steps on raw pixels (Yosinski 2015, Erhan 2009).

Penalties measure images in [0, 1] around grey (0.5) and average over pixels, so weights do not depend on size.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur

from methods.base import GREY


def l1(x: Tensor) -> Tensor:
    """Mean absolute deviation from grey per image: [B]."""
    return (x - GREY).abs().flatten(1).mean(1)


def l2(x: Tensor) -> Tensor:
    """Mean squared deviation from grey per image: [B]."""
    return (x - GREY).pow(2).flatten(1).mean(1)


def tv(x: Tensor, beta: float = 2.0) -> Tensor:
    """Total variation per image, mean over pixels of (dx^2 + dy^2)^(beta/2) (Mahendran & Vedaldi): [B]."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).sum(1).pow(beta / 2).flatten(1).mean(1)


def alpha_norm(x: Tensor, alpha: float = 6.0) -> Tensor:
    """Mean over pixels of ||x(pixel) - grey||^alpha, the colour vector's norm (Mahendran & Vedaldi): [B]."""
    return (x - GREY).pow(2).sum(1).pow(alpha / 2).flatten(1).mean(1)


@torch.no_grad()
def decay_(raw: Tensor, decay: float, centre: float) -> None:
    """Yosinski's L2 decay step: pull raw pixels towards `centre` by a factor (1 - decay)."""
    raw.sub_(centre).mul_(1.0 - decay).add_(centre)


@torch.no_grad()
def blur_(raw: Tensor, sigma: float) -> None:
    """Gaussian blur (std `sigma` pixels, kernel radius ceil(3 sigma)) of raw pixels, in place."""
    k = 2 * math.ceil(3 * sigma) + 1
    raw.copy_(gaussian_blur(raw, [k, k], [sigma, sigma]))


def _below_percentile(score: Tensor, pct: float) -> Tensor:
    """Mask [B, 1, H, W] of pixels whose per-pixel score [B, H, W] is below its image's `pct` percentile."""
    cut = torch.quantile(score.flatten(1), pct / 100.0, dim=1).view(-1, 1, 1)
    return (score < cut).unsqueeze(1)


@torch.no_grad()
def clip_small_norm_(raw: Tensor, pct: float, centre: float) -> None:
    """Yosinski: set pixels whose colour-vector norm is in the lowest `pct` percent to `centre`."""
    raw.masked_fill_(_below_percentile((raw - centre).norm(dim=1), pct), centre)


@torch.no_grad()
def clip_small_contrib_(raw: Tensor, grad: Tensor, pct: float, centre: float) -> None:
    """Yosinski: set pixels whose contribution |sum_c (x - centre) * grad| is in the lowest `pct` percent to `centre`."""
    contrib = ((raw - centre) * grad).sum(1).abs()
    raw.masked_fill_(_below_percentile(contrib, pct), centre)


@torch.no_grad()
def project_l2_(raw: Tensor, bound: float, centre: float) -> None:
    """Erhan 2009: project each image onto the ball ||x - centre||_2 <= bound * sqrt(numel) (bound = RMS radius)."""
    d = raw - centre
    radius = bound * math.sqrt(d[0].numel())
    norm = d.flatten(1).norm(dim=1).view(-1, *[1] * (d.dim() - 1))
    raw.copy_(centre + d * (radius / norm.clamp(min=radius)))
