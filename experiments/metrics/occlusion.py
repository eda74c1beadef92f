"""Quality of an attribution (occlusion) map: faithfulness to the model, localization, and concentration.

deletion / insertion (Petsiuk et al. 2018, RISE): the map ranks the pixels; `step` pixels at a time (all
channels) are replaced by a substrate (deletion) or copied from the image onto a blurred copy (insertion), and
the area under the score curve says how fast the score falls (deletion, lower = better) or recovers (insertion,
higher = better). As in the RISE authors' CausalMetric: step pixels per step, n_steps = ceil(HW / step), scores
after 0, step, 2 step, ... pixels, AUC by the trapezoid rule over x = pixels changed / HW (their
(sum - first/2 - last/2) / (len - 1) when HW is a multiple of step and the map has no ties).
Departures from RISE, all deliberate:
- ties: RISE takes pixels in argsort order, so tied pixels (occlusion maps are constant on stride-sized
  blocks, and mostly zero with reduce=max) go in scan order and the AUC depends on it. Here a tie group is
  changed all at once: the curve is only sampled where whole tie groups end (each nominal count i * step is
  moved to the nearest group end), so the curve never depends on the order inside a group. Within a group the
  curve is the straight line between its ends, which is what averaging over random orders of the group gives
  (exactly for a score linear in the pixels). A constant map (one group: no ranking at all) has no AUC (NaN).
- the substrate is the caller's: vizbench deletes with the occlusion run's own fill (grey 0.5 in [0, 1]
  image space, before the model's normalization) where RISE uses zeros of the normalized tensor (the
  normalization mean); insertion starts from torchvision's Gaussian blur (kernel 11, sigma 5, reflect
  padding) where RISE convolves with zero padding, which darkens the border towards the mean.
- the score is the caller's `score` callable: RISE's softmax class probability, or any unit score, which
  `normalize_curve` rescales so that the unperturbed image scores 1 and the fully perturbed one 0.
pointing_game (Zhang et al. 2016) / mask_energy: the map falls on the object. sparseness (Gini, Chalasani et
al. 2020) and complexity (entropy, Bhatt et al. 2020): how concentrated it is.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from methods.base import invalid_choice, nan_last

from ._common import ArrayLike, as_numpy

MODES = ("deletion", "insertion")
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0  # RISE's insertion substrate, gkern(11, 5)
POINTING_TOLERANCE = 15  # px at a 224 px input (Zhang et al. 2016)

Score = Callable[[Tensor], Tensor]


def _flat_map(saliency: Tensor, size: tuple[int, int]) -> Tensor:
    """The map as [H * W] float on the CPU with NaN as -inf; a map of another size is resized bilinearly first."""
    m = saliency.detach().float().cpu()
    if m.dim() == 3 and m.shape[0] == 1:
        m = m[0]
    if m.dim() != 2:
        raise ValueError(f"saliency map must be [H, W] or [1, H, W], got shape {tuple(saliency.shape)}")
    if tuple(m.shape) != size:
        m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return nan_last(m.flatten())


def tie_groups(saliency: Tensor, size: tuple[int, int]) -> tuple[Tensor, np.ndarray]:
    """(pixel indices by decreasing map value, NaN last; the pixel counts at which a tie group ends, 0 and H*W
    included). Only those counts are sets of pixels that do not depend on how ties are broken."""
    m = _flat_map(saliency, size)
    order = torch.argsort(m, descending=True, stable=True)
    ranked = m[order]
    ends = (ranked[1:] != ranked[:-1]).nonzero().flatten() + 1
    return order, np.r_[0, ends.numpy(), len(m)]


def step_size(pixels: int, steps: int) -> int:
    """Pixels changed per step: ceil(pixels / steps) (RISE's `step`; steps = H * W / step)."""
    return math.ceil(pixels / steps)


def counts(boundaries: np.ndarray, pixels: int, step: int) -> np.ndarray:
    """RISE's counts 0, step, ..., HW, each moved to the nearest tie-group end (the lower one if two are as near),
    duplicates dropped; on a tie-free map these are RISE's counts."""
    nominal = np.minimum(np.arange(math.ceil(pixels / step) + 1) * step, pixels)
    upper = np.searchsorted(boundaries, nominal).clip(1, len(boundaries) - 1)
    lo, hi = boundaries[upper - 1], boundaries[upper]
    return np.unique(np.where(nominal - lo <= hi - nominal, lo, hi))


def blurred(image: Tensor) -> Tensor:
    """The insertion start: the image blurred with a Gaussian (kernel 11, sigma 5, torchvision's reflect padding)."""
    return TF.gaussian_blur(image, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])


def perturbation_curve(score: Score, image: Tensor, saliency: Tensor, mode: str = "deletion", steps: int = 50,
                       substrate: Tensor | float | None = None, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(x = share of pixels changed, raw scores) as pixels are deleted or inserted in decreasing map order.

    score: images [B, C, H, W] -> [B] scores, in whatever space `image` is; image: [C, H, W]; saliency: [H, W]
    (resized bilinearly if it has another size). The pixels of a count (all channels) are those of the first
    tie groups; counts as in `counts` with step = ceil(H * W / steps). Deletion: the changed pixels take the
    substrate's values (default 0.0, RISE's zeros, i.e. the mean when `image` is a normalized tensor).
    Insertion: the curve starts from the substrate (default `blurred(image)`) and the changed pixels take the
    image's values. Substrate: a number or a tensor shaped like `image`, in the image's space.
    """
    if mode not in MODES:
        raise invalid_choice("mode", mode, MODES)
    c, h, w = image.shape
    order, boundaries = tie_groups(saliency, (h, w))
    n = counts(boundaries, h * w, step_size(h * w, steps))
    if substrate is None:
        substrate = 0.0 if mode == "deletion" else blurred(image)
    other = torch.as_tensor(substrate, dtype=image.dtype, device=image.device).expand_as(image)
    source, target = (image, other) if mode == "deletion" else (other, image)
    order = order.to(image.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(h * w, device=image.device)  # position of each pixel in the order
    scores = []
    with torch.inference_mode():
        for b in range(0, len(n), batch_size):
            changed = rank[None, :] < torch.as_tensor(n[b:b + batch_size], device=image.device)[:, None]
            x = torch.where(changed.view(-1, 1, h, w), target, source)
            scores.append(score(x).float().cpu())
    return n / (h * w), torch.cat(scores).numpy().astype(np.float64)


def endpoints(curve: np.ndarray, mode: str) -> tuple[float, float]:
    """(s_full, s_base): the unperturbed image's score and the fully perturbed one's (deletion: first and last
    point; insertion: last and first)."""
    full, base = (curve[0], curve[-1]) if mode == "deletion" else (curve[-1], curve[0])
    return float(full), float(base)


def normalize_curve(curve: np.ndarray, mode: str, floor: float = 0.0) -> np.ndarray:
    """(s - s_base) / (s_full - s_base), so the full image scores 1 and the fully perturbed one 0 (see `endpoints`).

    All NaN when |s_full - s_base| <= floor (the perturbation barely moves the score: the AUC would be noise;
    the floor is absolute, in the score's units). Values may leave [0, 1] when the score is not monotone.
    """
    full, base = endpoints(curve, mode)
    if abs(full - base) <= floor or full == base:
        return np.full_like(curve, np.nan)
    return (curve - base) / (full - base)


def auc(x: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at x in [0, 1]; NaN for a curve of fewer than 3 points (a map with
    one tie group ranks nothing)."""
    return float(np.trapezoid(curve, x)) if len(curve) >= 3 else float("nan")


def causal_auc(score: Score, image: Tensor, saliency: Tensor, mode: str, steps: int = 50,
               substrate: Tensor | float | None = None, normalize: bool = False, floor: float = 0.0) -> float:
    """AUC of the deletion or insertion curve: raw scores (RISE, e.g. a class probability) or, with `normalize`,
    `normalize_curve(curve, mode, floor)`. Arguments as in `perturbation_curve`."""
    x, curve = perturbation_curve(score, image, saliency, mode, steps, substrate)
    return auc(x, normalize_curve(curve, mode, floor) if normalize else curve)


def deletion_auc(score: Score, image: Tensor, saliency: Tensor, steps: int = 50,
                 substrate: Tensor | float | None = None, normalize: bool = False, floor: float = 0.0) -> float:
    """Deletion AUC (lower = better): pixels replaced by `substrate` (default 0.0, in the space of `image`) in
    decreasing map order; see `causal_auc`. In [0, 1] for probabilities or normalized monotone curves."""
    return causal_auc(score, image, saliency, "deletion", steps, substrate, normalize, floor)


def insertion_auc(score: Score, image: Tensor, saliency: Tensor, steps: int = 50,
                  substrate: Tensor | float | None = None, normalize: bool = False, floor: float = 0.0) -> float:
    """Insertion AUC (higher = better): image pixels copied onto `substrate` (default `blurred(image)`) in
    decreasing map order; see `causal_auc`."""
    return causal_auc(score, image, saliency, "insertion", steps, substrate, normalize, floor)


def random_map(size: tuple[int, int], seed: int) -> Tensor:
    """A tie-free map [H, W] that ranks the pixels in a uniformly random order drawn with `seed`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(size[0] * size[1], generator=g).view(size).float()


def _map_mask(saliency: ArrayLike, mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A [H, W] map and bool mask of the same shape."""
    m, k = np.squeeze(as_numpy(saliency)), np.squeeze(as_numpy(mask)).astype(bool)
    if m.shape != k.shape or m.ndim != 2:
        raise ValueError(f"map and mask must both be [H, W], got {tuple(m.shape)} and {tuple(k.shape)}")
    return m, k


def constant(m: np.ndarray) -> bool:
    """Whether a map has a single value over its non-NaN pixels (or none): it ranks nothing."""
    finite = m[~np.isnan(m)]
    return finite.size == 0 or bool(finite.min() == finite.max())


def pointing_tolerance(side: int) -> int:
    """Zhang et al.'s 15 px at 224 px, scaled to an input side: round(15 * side / 224)."""
    return round(POINTING_TOLERANCE * side / 224)


def pointing_game(saliency: ArrayLike, mask: ArrayLike, tolerance: int = 0) -> float:
    """Zhang et al. 2016: 1 if the map's maximum lies within `tolerance` px (Euclidean) of the object mask, else 0.

    saliency: [H, W]; mask: [H, W] bool (True on the object). With tied maxima it is a hit if any of them is
    within the tolerance (as Quantus's PointingGame). NaN pixels are never the maximum. NaN when the map is
    constant or all NaN (no maximum to point with) or the mask is empty (no object).
    """
    m, k = _map_mask(saliency, mask)
    if constant(m) or not k.any():
        return float("nan")
    if tolerance > 0:
        from skimage.morphology import dilation, disk
        k = dilation(k, disk(tolerance))
    return float(k[m == np.nanmax(m)].any())


def mask_energy(saliency: ArrayLike, mask: ArrayLike) -> float:
    """Share of the map's positive mass inside the mask (energy-based pointing game); NaN if no positive mass or
    the map is constant (it would be the mask's area share, which says nothing about the map)."""
    m, k = _map_mask(saliency, mask)
    pos = np.clip(m, 0, None)
    return float(pos[k].sum() / pos.sum()) if pos.sum() > 0 and not constant(m) else float("nan")


def sparseness(saliency: ArrayLike) -> float:
    """Gini index of |map| over all its entries: 0 = uniform, (n - 1) / n ~ 1 = one-hot; NaN for an all-zero map."""
    x = np.sort(np.abs(as_numpy(saliency)).ravel())
    n = x.size
    if x.sum() == 0:
        return float("nan")
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def complexity(saliency: ArrayLike) -> float:
    """Entropy (nats) of p = |map| / sum |map|: 0 = one-hot, log(n) = uniform; NaN for an all-zero map."""
    x = np.abs(as_numpy(saliency)).ravel()
    if x.sum() == 0:
        return float("nan")
    p = x[x > 0] / x.sum()
    return float(-(p * np.log(p)).sum())


def approx_max_abs_error(approx: Tensor, exact: Tensor) -> float:
    """Largest absolute difference of an approximate map to the exact one, over the exact map's largest magnitude
    (0: equal); NaN where the exact map is all zero (no scale to measure against)."""
    scale = float(exact.float().abs().max())
    return float((approx.float() - exact.float()).abs().max()) / scale if scale > 0 else math.nan
