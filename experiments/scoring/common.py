"""Metrics of every method: the model randomization test, seed stability, planted ground truth, reported values."""
from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch
from skimage.feature import match_template
from torch import Tensor

from experiments.metrics import ground_truth, sanity
from experiments.scoring.context import Row, Scoring, rows_for
from experiments.scoring.registry import declare, metric
from methods.base import GREY, Visualization, layer_shape
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.raw_weights import Filters
from methods.receptive_field import box, field
from methods.top_patches import TopPatches


def randomized(s: Scoring, result: Visualization) -> Visualization:
    """The method's result with the same seed on a randomized copy of the model (Adebayo et al. 2018)."""
    return s.memo("randomized", rerun_randomized, s, result)


def rerun_randomized(s: Scoring, result: Visualization) -> Visualization:
    """The method re-run on a copy of the model randomized from the target layer (the run's randomization mode)."""
    model = sanity.randomize(s.spec.model, s.target.layer or result.layer, mode=s.settings.randomization_mode,
                             seed=s.opts.seed + 1)
    return s.rerun(model=model)


def sanity_rows(name: str, compare: Callable[[Tensor, Tensor], float], absolute: bool, s: Scoring,
                result: Visualization) -> list[Row]:
    """`compare` of each unit's result on the model and on the randomized model (low = depends on the weights)."""
    return similarity_rows(result, randomized(s, result), name, compare, absolute, ("the model", "the randomized model"))


def similarity_rows(result: Visualization, other: Visualization, name: str, compare: Callable[[Tensor, Tensor], float],
                    absolute: bool, sides: tuple[str, str]) -> list[Row]:
    """`compare` of each unit's `compared()` result in `result` and in `other`; where either is constant or not
    finite (`sanity.undefined`; |result| if `absolute`), NaN with the reason as a degenerate status."""
    rows = []
    for unit, a, b in zip(result.units, result.compared(), other.compared()):
        why = [f"{reason} on {side}" for x, side in zip((a, b), sides) if (reason := sanity.undefined(x, absolute))]
        if why:
            rows.append({"unit": unit, "metric": name, "value": float("nan"), "status": "degenerate: " + "; ".join(why)})
        else:
            rows.append({"unit": unit, "metric": name, "value": float(compare(a, b))})
    return rows


for _name, (_fn, _absolute) in sanity.SIMILARITIES.items():
    declare(_name, Visualization, "lower", ("randomization",), partial(sanity_rows, _name, _fn, _absolute))


@metric("seed_ssim", Visualization, "higher", needs=("stochastic", "rerun"))
def seed_ssim(s: Scoring, result: Visualization) -> list[Row]:
    """Stability: SSIM between each unit's results for two seeds (NaN with the reason where either is constant)."""
    other = s.memo("next_seed", s.rerun, None, s.opts.seed + 1)
    sides = (f"seed {s.opts.seed}", f"seed {s.opts.seed + 1}")
    return similarity_rows(result, other, "seed_ssim", sanity.seed_ssim, False, sides)


def neuron_box(s: Scoring, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Unclipped input box (top, left, bottom, right) of the target neuron's receptive field."""
    rf = field(s.spec.model, s.target.layer, size, s.spec.in_channels)
    h, w = layer_shape(s.spec.model, s.target.layer, size, s.spec.in_channels)[-2:]
    return box(rf, *s.target.position_in(h, w), size)[1]


def truth_window(s: Scoring, image: Tensor, truth: Tensor) -> Tensor:
    """The window of `image` compared with the ground truth: a neuron's receptive field, else where it matches best."""
    if s.target.kind == "neuron":
        top, left, bottom, right = neuron_box(s, tuple(image.shape[-2:]))
        pad = max(0, -top, -left, bottom - image.shape[-2], right - image.shape[-1])
        padded = torch.nn.functional.pad(image, (pad,) * 4, value=GREY)
        return padded[:, top + pad:bottom + pad, left + pad:right + pad]
    r, t = image.float().numpy(), truth.float().numpy()
    ncc = match_template(r.transpose(1, 2, 0), t.transpose(1, 2, 0))[..., 0]
    ncc = np.where(np.isnan(ncc), -np.inf, ncc)  # NaN never matches best (an all-NaN image: the top-left window)
    top, left = np.unravel_index(np.argmax(ncc), ncc.shape)
    return image[:, top:top + t.shape[1], left:left + t.shape[2]]


def truth_pairs(s: Scoring, result: Visualization) -> list[list[tuple[Tensor, Tensor]]]:
    """Per unit, (window of each of its images, the planted unit's preferred stimulus); found once for gt_corr
    and gt_ssim."""
    return s.memo("truth_pairs", find_truth_pairs, s, result)


def find_truth_pairs(s: Scoring, result: Visualization) -> list[list[tuple[Tensor, Tensor]]]:
    """See truth_pairs."""
    pairs = []
    for unit, images in zip(result.units, result.unit_images()):
        truth = s.spec.ground_truth(s.target.layer or result.layer, unit)
        pairs.append([(truth_window(s, img, truth), truth) for img in images])
    return pairs


def mask_pairs(s: Scoring, result: OcclusionMaps) -> list[list[tuple[Tensor, Tensor]]]:
    """Per unit, (its map of each of its own images, that image's object mask)."""
    pairs = []
    for i in range(len(result.units)):
        own, maps = result.own_maps(i)
        pairs.append(list(zip(maps, s.data.masks[own].float())))
    return pairs


def agreement_rows(name: str, agree: Callable[[Tensor, Tensor], float],
                   pairs: Callable[[Scoring, Visualization], list], s: Scoring, result: Visualization) -> list[Row]:
    """Each unit's mean agreement of its results with their ground truth."""
    return rows_for(result, name, [nan_mean([agree(a, b) for a, b in unit]) for unit in pairs(s, result)])


def nan_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN (NaN, without a warning, when none is)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


for _name, _fn in (("gt_corr", ground_truth.gt_corr), ("gt_ssim", ground_truth.gt_ssim)):
    declare(_name, (Filters, Ascent, TopPatches), "higher", ("ground_truth",), partial(agreement_rows, _name, _fn, truth_pairs))
    declare(_name, OcclusionMaps, "higher", ("ground_truth", "masks"), partial(agreement_rows, _name, _fn, mask_pairs))

declare("weight_norm", Filters, "descriptive")
declare("activation", Ascent, "higher")
declare("objective_start", Ascent, "descriptive")  # the random start's objective (activation should end above it)
declare("objective_grey", Ascent, "descriptive")  # a grey image's objective (likewise)
declare("mean_drop", OcclusionMaps, "descriptive")
declare("topk_mean_activation", TopPatches, "higher")
