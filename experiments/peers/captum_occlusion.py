"""Peer for the occlusion speed comparison: captum's Occlusion on the same scores, one call per unit."""
from __future__ import annotations

import torch
from captum.attr import Occlusion
from torch import Tensor, nn

from methods.base import Target, truncate
from methods.occlusion import baseline, score


def captum_occlusion(
    model: nn.Module,
    images: Tensor,
    target: Target,
    window: int,
    stride: int,
    fill: str | float,
    perturbations_per_eval: int,
    *,
    normalize: nn.Module | None = None,
    reduce: str = "mean",
    output: str = "logit",
) -> Tensor:
    """captum Occlusion maps [N, U, H, W] with the scores methods.occlusion uses (same truncated forward)."""
    images = images.to(next(model.parameters()).device)
    net = truncate(model, target.layer, normalize)
    occlusion = Occlusion(lambda x: score(net(x), target, reduce, output))
    base = baseline(images, fill, window)
    maps = [
        occlusion.attribute(
            images,
            sliding_window_shapes=(images.shape[1], window, window),
            strides=(images.shape[1], stride, stride),
            baselines=base,
            target=j,
            perturbations_per_eval=perturbations_per_eval,
        )[:, 0]
        for j in range(len(target.units))
    ]
    return torch.stack(maps, dim=1)
