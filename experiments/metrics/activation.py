"""How strongly and how robustly a gradient-ascent image drives its unit, compared with natural images.

`activation` itself is the value the method reports (Visualization.values["activation"]); the functions
here relate it to natural exemplars, to small transformations and to the exemplars' activation patterns.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor, nn

from methods.base import get_module

from ._common import ArrayLike, as_numpy


def activation_vs_exemplar(achieved: ArrayLike, natural: ArrayLike) -> np.ndarray:
    """Per unit: achieved activation / the unit's top activation over natural images.

    achieved: [U] activations of the visualizations; natural: [N, U] activations of N natural images
    (same read-out). > 1 = the visualization beats every natural image. NaN where the top natural
    activation is <= 0 (the ratio is meaningless there).
    """
    a, nat = as_numpy(achieved).ravel(), as_numpy(natural)
    if nat.ndim == 1:
        nat = nat[:, None]
    if nat.shape[1] != a.size:
        raise ValueError(f"natural activations [N, U] must have U={a.size} columns, got shape {tuple(nat.shape)}")
    top = nat.max(0)
    return np.where(top > 0, a / np.where(top > 0, top, 1.0), np.nan)


def random_transforms(image: Tensor, n: int, max_shift: float = 0.1, scale: tuple[float, float] = (0.9, 1.1),
                      degrees: float = 10.0, seed: int = 0) -> Tensor:
    """n randomly transformed copies [n, C, H, W] of one image [C, H, W].

    Each copy: rotation uniform in [-degrees, degrees] and scale uniform in `scale` about the centre (the
    uncovered border filled with the image's mean colour), then a circular shift (torch.roll) of up to
    `max_shift` x side pixels in each direction, so a jitter adds no new border.
    """
    g = torch.Generator().manual_seed(seed)
    fill = image.mean(dim=(1, 2)).tolist()
    h, w = image.shape[1:]
    out = []
    for _ in range(n):
        angle, s, dy, dx = torch.rand(4, generator=g).tolist()
        x = image
        if degrees or scale != (1.0, 1.0):
            zoom = scale[0] + s * (scale[1] - scale[0])
            x = TF.affine(x, angle=(2 * angle - 1) * degrees, translate=[0, 0], scale=zoom, shear=[0.0, 0.0], fill=fill)
        shift = (round((2 * dy - 1) * max_shift * h), round((2 * dx - 1) * max_shift * w))
        out.append(torch.roll(x, shifts=shift, dims=(1, 2)))
    return torch.stack(out)


def robustness(score: Callable[[Tensor], Tensor], image: Tensor, n: int = 16, seed: int = 0, **transform) -> float:
    """Mean score of `n` random transforms of the image (`random_transforms`) / the clean image's score.

    score: images [B, C, H, W] in [0, 1] -> [B] target scores (e.g. truncated model + read_out for one
    unit); image: [C, H, W]. ~1 = the unit still responds under jitter/scale/rotation. NaN if the clean
    score is <= 0. Extra keyword arguments go to `random_transforms`.
    """
    with torch.inference_mode():
        clean = float(score(image[None])[0])
        moved = score(random_transforms(image, n, seed=seed, **transform)).float().mean().item()
    return moved / clean if clean > 0 else float("nan")


def exemplar_similarity(viz_acts: ArrayLike, exemplar_acts: ArrayLike) -> float:
    """Cosine similarity of a visualization's activation pattern with the mean pattern of the unit's top exemplars.

    viz_acts: [C] or [C, H, W] activations at the layer below the target (maps are mean-pooled over space);
    exemplar_acts: [k, C] or [k, C, H, W] for the unit's top-k natural images (sizes may differ from the
    visualization's). NaN if either pattern is all zero.
    """
    v, e = as_numpy(viz_acts), as_numpy(exemplar_acts)
    v = v.reshape(v.shape[0], -1).mean(1) if v.ndim > 1 else v
    e = e.reshape(e.shape[0], e.shape[1], -1).mean(2).mean(0) if e.ndim > 2 else e.mean(0)
    if v.shape != e.shape:
        raise ValueError(f"visualization has {v.size} channels but exemplars have {e.size}")
    denom = np.linalg.norm(v) * np.linalg.norm(e)
    return float(v @ e / denom) if denom > 0 else float("nan")


def layer_below(model: nn.Module, layer: str) -> str:
    """The last leaf module before `layer` in `named_modules()` order (its output usually feeds `layer`)."""
    get_module(model, layer)
    names = [n for n, _ in model.named_modules()]
    leaves = [n for n, m in model.named_modules() if n and next(m.children(), None) is None]
    before = [n for n in leaves if names.index(n) < names.index(layer)]
    if not before:
        raise ValueError(f"layer {layer!r} has no module below it")
    return before[-1]
