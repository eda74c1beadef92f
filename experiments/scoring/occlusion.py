"""Occlusion metrics: faithfulness (deletion/insertion), localization (pointing game, mask energy), map statistics.

Each unit is scored on its own images (the ones that excite it most). Deletion and insertion work in the
model's input space, so deleted pixels are 0 there (the normalization mean colour, e.g. grey for planted),
not black, which would itself excite edge detectors.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor

from experiments.metrics import occlusion
from experiments.scoring.context import Row, Scoring
from experiments.scoring.registry import declare
from methods.occlusion import OcclusionMaps
from methods.occlusion import score as occlusion_score


def occluded_scorer(s: Scoring, unit_index: int) -> Callable[[Tensor], Tensor]:
    """Model-input images -> the occluded score of one unit, read out as the occlusion run read it."""
    trunc = s.cut(s.target.layer, normalized=False)
    reduce, output = s.params.get("reduce", "mean"), s.params.get("output", "logit")

    def score(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return occlusion_score(trunc(x.to(s.device)), s.target, reduce, output)[:, unit_index].float().cpu()

    return score


def map_rows(name: str, value: Callable[[Scoring, int, int, Tensor], float], s: Scoring, result: OcclusionMaps) -> list[Row]:
    """One row per unit and own image: value(s, unit index, image index, map)."""
    rows = []
    for i, unit in enumerate(result.units):
        own, maps = result.own_maps(i)
        rows += [{"unit": unit, "image": idx, "metric": name, "value": value(s, i, idx, m)} for idx, m in zip(own, maps)]
    return rows


def auc(curve: Callable[..., float], s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """A deletion or insertion AUC of one map on its image, in the model's input space."""
    image = s.normalize(s.data.images[idx:idx + 1].to(s.device))[0].cpu()
    return curve(occluded_scorer(s, i), image, m, steps=s.settings.auc_steps)


def pointing_game(s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """Whether the map's peak lies on the object, with the map's stride as tolerance."""
    return occlusion.pointing_game(m, s.data.masks[idx], tolerance=s.params.get("stride", 0))


def mask_energy(s: Scoring, i: int, idx: int, m: Tensor) -> float:
    """Share of the map's positive energy on the object."""
    return occlusion.mask_energy(m, s.data.masks[idx])


for _name, _value, _better, _needs in (
    ("deletion_auc", partial(auc, occlusion.deletion_auc), "lower", ()),
    ("insertion_auc", partial(auc, occlusion.insertion_auc), "higher", ()),
    ("pointing_game", pointing_game, "higher", ("masks",)),
    ("mask_energy", mask_energy, "higher", ("masks",)),
    ("sparseness", lambda s, i, idx, m: occlusion.sparseness(m), "descriptive", ()),
    ("complexity", lambda s, i, idx, m: occlusion.complexity(m), "descriptive", ()),
):
    declare(_name, OcclusionMaps, _better, _needs, partial(map_rows, _name, _value))
