"""Gradient-ascent metrics: naturalness, robustness and faithfulness of feature visualizations."""
from __future__ import annotations

import math
from functools import partial
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from experiments.metrics import activation, images
from experiments.scoring.context import Row, Scoring, rows_for
from experiments.scoring.registry import declare, metric
from methods.base import nan_last
from methods.gradient_ascent import Ascent


@metric("activation_vs_exemplar", Ascent, "higher")
def activation_vs_exemplar(s: Scoring, result: Ascent) -> list[Row]:
    """Achieved activation over the unit's top natural activation; undefined (NaN, labelled) where that top is <= 0."""
    rows = rows_for(result, "activation_vs_exemplar", activation.activation_vs_exemplar(result.activation, s.natural))
    for row, top in zip(rows, s.natural.reshape(len(s.natural), -1).max(0).values.tolist()):
        if top <= 0:  # e.g. a pre-ReLU channel whose spatial mean is negative on every data image
            row["status"] = f"degenerate: activation_vs_exemplar undefined (top natural activation {top:.3g} <= 0)"
    return rows


def image_statistic(name: str, statistic: Callable[[Tensor], float], s: Scoring, result: Ascent) -> list[Row]:
    """An image statistic averaged over each unit's images."""
    return rows_for(result, name, [np.mean([statistic(img) for img in imgs]) for imgs in result.unit_images()])


for _name, _fn, _better in (("hf_energy", images.hf_energy, "lower"), ("spectral_slope", images.spectral_slope, "descriptive"),
                            ("tv", images.tv, "lower")):
    declare(_name, Ascent, _better, compute=partial(image_statistic, _name, _fn))


@metric("diversity", Ascent, "descriptive", needs=("several_images",))
def diversity(s: Scoring, result: Ascent) -> list[Row]:
    """How different each unit's images are from one another."""
    return rows_for(result, "diversity", [images.diversity(imgs) for imgs in result.unit_images()])


@metric("robustness", Ascent, "higher")
def robustness(s: Scoring, result: Ascent) -> list[Row]:
    """How much of its activation each unit's first image keeps under small jitter, scaling and rotation; undefined
    (NaN, labelled) where the image's own activation is <= 0."""
    rows = []
    for i, (unit, imgs) in enumerate(zip(result.units, result.unit_images())):
        score = s.scorer(unit_index=i)
        row = {"unit": unit, "metric": "robustness", "value": activation.robustness(score, imgs[0], seed=s.opts.seed)}
        if math.isnan(row["value"]) and (clean := float(score(imgs[:1])[0])) <= 0:
            row["status"] = f"degenerate: robustness undefined (activation of the image itself {clean:.3g} <= 0)"
        rows.append(row)
    return rows


@metric("exemplar_similarity", Ascent, "higher", needs=("layer",))
def exemplar_similarity(s: Scoring, result: Ascent) -> list[Row]:
    """Similarity of the activation pattern below the target to that of the unit's top 9 natural exemplars."""
    feats = below_target(s)
    with torch.inference_mode():
        top = nan_last(s.natural).topk(min(9, len(s.natural)), dim=0).indices  # [9, U]
        values = [activation.exemplar_similarity(feats(imgs[:1].to(s.device))[0].cpu(),
                                                 feats(s.data.images[top[:, i]].to(s.device)).cpu())
                  for i, imgs in enumerate(result.unit_images())]
    return rows_for(result, "exemplar_similarity", values)


def below_target(s: Scoring) -> Callable[[Tensor], Tensor]:
    """The model up to the layer below the target (the normalized input itself for a first layer)."""
    try:
        return s.cut(activation.layer_below(s.spec.model, s.target.layer))
    except ValueError:
        return s.normalize
