"""Occlusion metrics: faithfulness (deletion/insertion), localization (pointing game, mask energy), map statistics.

Each unit is scored on its own images (the ones that excite it most). Deletion and insertion (Petsiuk et al.
2018, see experiments.metrics.occlusion for the protocol and its departures from RISE) change pixels in [0, 1]
image space, all channels at once, and the scorer applies the model's normalization to every perturbed image:
deletion replaces the ranked pixels with the occlusion run's own fill (methods.occlusion.baseline: grey 0.5,
zero, the image's mean colour, its blur, or a number), insertion copies them from the image onto the image
blurred with a Gaussian (kernel 11, sigma 5). Pixels per step: ceil(H * W / metrics.auc_steps).
Class targets score the softmax probability of the class, and the AUC is of the raw probability (as RISE).
Unit targets have no probability: the unit is read out as the occlusion run read it (its reduce), and the
curve is normalized to (s - s_base) / (s_full - s_base); when |s_full - s_base| is at most FLOOR_SHARE of the
unit's range over the data (and at least FLOOR_MIN) the perturbation does not move the unit, and the value is
NaN with a degenerate status giving the numbers. deletion_auc_random / insertion_auc_random run the same
protocol on a uniformly random pixel order (seed: the run's seed + the image's index): the chance level.
A map with no ranking (constant, all NaN) gets NaN with its reason wherever the metric needs a ranking.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor

from experiments.data.stream import batches
from experiments.metrics import occlusion
from experiments.scoring.context import Row, Scoring
from experiments.scoring.degenerate import BATCH, flat
from experiments.scoring.registry import declare
from methods.occlusion import OcclusionMaps, baseline
from methods.occlusion import score as occlusion_score

FLOOR_SHARE = 0.01  # of the unit's score range over the data: a smaller change of the score is noise
FLOOR_MIN = 1e-6  # absolute floor, for units whose range is itself ~0


class Undefined(Exception):
    """A metric has no value on this map; the message says why (it becomes the row's degenerate status)."""


def occluded_scores(s: Scoring) -> Callable[[Tensor], Tensor]:
    """[0, 1] images [B, 3, H, W] -> [B, U] target scores, read out as the occlusion run read them (its reduce);
    class targets: the softmax probability of the class."""
    trunc = s.cut(s.target.layer)
    reduce = s.params.get("reduce", "mean")
    output = "prob" if s.target.kind == "class" else s.params.get("output", "logit")

    def score(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return occlusion_score(trunc(x.to(s.device)), s.target, reduce, output).float().cpu()

    return score


def occluded_scorer(s: Scoring, unit_index: int) -> Callable[[Tensor], Tensor]:
    """[0, 1] images -> [B] occluded score of one unit (see `occluded_scores`)."""
    scores = occluded_scores(s)
    return lambda x: scores(x)[:, unit_index]


def score_range(s: Scoring) -> Tensor:
    """[U] range (max - min) of each unit's occluded score over the data images, computed once per result."""
    def make() -> Tensor:
        score = occluded_scores(s)
        acts = torch.cat([score(batch) for batch in batches(s.data.images, BATCH, s.data.workers)])
        return acts.amax(0) - acts.amin(0)

    return s.memo("occlusion/score_range", make)


def floor(s: Scoring, i: int) -> float:
    """The smallest change of unit i's score that deletion/insertion may normalize by."""
    return max(FLOOR_MIN, FLOOR_SHARE * float(score_range(s)[i]))


def map_reason(m: Tensor) -> str | None:
    """Why a map ranks no pixel (all NaN, or constant as scoring.degenerate.flat decides), or None."""
    if m.isnan().all():
        return "all-NaN occlusion map"
    if flat(m):
        return f"constant occlusion map (range {float(m.max() - m.min()):.3g})"
    return None


def map_rows(name: str, value: Callable[[Scoring, int, int, Tensor], float], s: Scoring, result: OcclusionMaps) -> list[Row]:
    """One row per unit and own image: value(s, unit index, image index, map), or NaN with the reason it raised."""
    rows = []
    for i, unit in enumerate(result.units):
        own, maps = result.own_maps(i)
        for idx, m in zip(own, maps):
            row = {"unit": unit, "image": idx, "metric": name}
            try:
                rows.append({**row, "value": value(s, i, idx, m)})
            except Undefined as why:
                rows.append({**row, "value": float("nan"), "status": f"degenerate: {why}"})
    return rows


def causal(mode: str, randomized: bool, s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """Deletion or insertion AUC of one map (or of a random order) on its image; see the module docstring."""
    if not randomized and (why := map_reason(m)):
        raise Undefined(why)
    image = s.data.images[idx].float().to(s.device)
    saliency = occlusion.random_map(tuple(image.shape[-2:]), s.opts.seed + idx) if randomized else m
    substrate = None  # insertion: metrics.occlusion.blurred(image)
    if mode == "deletion":
        fill = baseline(image[None], s.params.get("fill", "grey"), s.params.get("window", 8))
        substrate = fill[0] if isinstance(fill, Tensor) else fill
    x, curve = occlusion.perturbation_curve(occluded_scorer(s, i), image, saliency, mode, s.settings.auc_steps,
                                            substrate)
    if s.target.kind == "class":
        return occlusion.auc(x, curve)
    full, base = occlusion.endpoints(curve, mode)
    if abs(full - base) <= (least := floor(s, i)):
        raise Undefined(f"{mode} moves the score by {abs(full - base):.3g} (image {full:.3g}, fully perturbed "
                        f"{base:.3g}), at most the floor {least:.3g} ({FLOOR_SHARE:g} x the unit's range "
                        f"{float(score_range(s)[i]):.3g} over {len(s.data.images)} images, at least {FLOOR_MIN:g})")
    return occlusion.auc(x, occlusion.normalize_curve(curve, mode))


def pointing_game(s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """Whether the map's peak lies within Zhang et al.'s tolerance (15 px at 224 px, scaled) of the object."""
    mask = s.data.masks[idx]
    if why := map_reason(m):
        raise Undefined(why)
    if not mask.any():
        raise Undefined("empty object mask")
    return occlusion.pointing_game(m, mask, tolerance=occlusion.pointing_tolerance(min(mask.shape[-2:])))


def mask_energy(s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """Share of the map's positive energy on the object."""
    if why := map_reason(m):
        raise Undefined(why)
    if not (m > 0).any():
        top = float(m.nan_to_num(float("-inf")).max())
        raise Undefined(f"no positive mass in the occlusion map (largest drop {top:.3g})")
    if not s.data.masks[idx].any():
        raise Undefined("empty object mask")
    return occlusion.mask_energy(m, s.data.masks[idx])


def statistic(fn: Callable[[Tensor], float], s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """A statistic of the map itself (sparseness, complexity): defined on any map with some mass."""
    if not (m.nan_to_num(0.0) != 0).any():
        raise Undefined("all-zero occlusion map")
    return fn(m)


for _name, _value, _better, _needs in (
    ("deletion_auc", partial(causal, "deletion", False), "lower", ()),
    ("insertion_auc", partial(causal, "insertion", False), "higher", ()),
    ("deletion_auc_random", partial(causal, "deletion", True), "descriptive", ()),
    ("insertion_auc_random", partial(causal, "insertion", True), "descriptive", ()),
    ("pointing_game", pointing_game, "higher", ("masks",)),
    ("mask_energy", mask_energy, "higher", ("masks",)),
    ("sparseness", partial(statistic, occlusion.sparseness), "descriptive", ()),
    ("complexity", partial(statistic, occlusion.complexity), "descriptive", ()),
):
    declare(_name, OcclusionMaps, _better, _needs, partial(map_rows, _name, _value))


def approx_error(s: Scoring, result: OcclusionMaps) -> list[Row]:
    """Approximate incremental occlusion (method.params.approx): per unit and image, the largest absolute
    difference of its map to the exact map (the method again with approx unset), over the exact map's largest
    magnitude."""
    exact = s.memo("exact", lambda: s.method.call(s.spec, s.data, s.target, {**s.params, "approx": None}, s.opts,
                                                  s.spec.model))
    rows = []
    for i, unit in enumerate(result.units):
        (own, approx), (_, truth) = result.own_maps(i), exact.own_maps(i)
        for idx, a, m in zip(own, approx, truth):
            row = {"unit": unit, "image": idx, "metric": "approx_max_abs_error"}
            error = occlusion.approx_max_abs_error(a, m)
            rows.append({**row, "value": error} if error == error else
                        {**row, "value": error, "status": "degenerate: the exact occlusion map is all zero"})
    return rows


declare("approx_max_abs_error", OcclusionMaps, "lower", ("rerun", "approximate"), approx_error)
