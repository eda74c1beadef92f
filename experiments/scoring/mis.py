"""mis_proxy: an automatic 2AFC score of how well a unit's explanation tells strong from weak natural queries."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from experiments.metrics import mis
from experiments.scoring.context import Row, Scoring
from experiments.scoring.registry import metric
from methods.base import nan_last, read_out
from methods.gradient_ascent import Ascent
from methods.receptive_field import ReceptiveField, local_field
from methods.top_patches import TopPatches

MIS_BATCH = 128


def unit_peaks(s: Scoring, images: Tensor) -> tuple[Tensor, Tensor | None]:
    """Each target unit's peak on each image: scores [N, U] and layer-map positions [N, U, 2] (row, col).

    Channel targets on a spatial map: the spatial max and where it is (NaN positions rank last). Neuron
    targets: the value at the target's position. Any other target (class, layer, direction kinds, or a layer
    without a spatial map): the run's read-out and no positions (None).
    """
    trunc = s.cut(s.target.layer)
    units = list(s.target.units)
    values, positions = [], []
    with torch.inference_mode():
        for start in range(0, len(images), MIS_BATCH):
            acts = trunc(images[start:start + MIS_BATCH].to(s.device))
            if s.target.kind not in ("channel", "neuron") or acts.dim() != 4:
                values.append(read_out(acts, s.target).float().cpu())
                continue
            maps = acts[:, units].flatten(2).float().cpu()  # [B, U, h * w]
            h, w = acts.shape[-2:]
            if s.target.kind == "neuron":
                r, c = s.target.position_in(h, w)
                flat = torch.full(maps.shape[:2], r * w + c)
                values.append(maps[..., r * w + c])
            else:
                top, flat = nan_last(maps).max(2)
                values.append(top)
            positions.append(torch.stack([flat // w, flat % w], -1))
    return torch.cat(values), torch.cat(positions) if positions else None


def mis_field(s: Scoring, size: tuple[int, int]) -> ReceptiveField:
    """The target layer's receptive field for images of `size` (without global branches where they make it the whole image)."""
    return local_field(s.spec.model, s.target.layer, size)[0]


def mis_rows(s: Scoring, units: tuple[int, ...], explanations: list[Tensor], excludes: list[list[int]], crop: bool) -> list[Row]:
    """mis_proxy of each unit's explanation, both explanation and queries shown as the unit sees them.

    Queries: held-out data images (never those in the unit's `excludes`, its explanation's sources); strong
    and weak ones are the top and bottom 10% by the unit's peak score (`unit_peaks`: spatial max for channels,
    the target position for neurons), `s.settings.mis_tasks` pairs drawn with the run's seed. Each query is
    cropped to the receptive field around its own peak position (the strong query's strongest location, and
    the weak query's strongest location too, so both are treated alike). With `crop`, each explanation image
    (e.g. a gradient-ascent image) is cropped the same way around its own peak; without it the explanation is
    used as given (top_patches' receptive-field crops). Targets without positions (class, layer, direction
    kinds) compare whole images. A unit whose receptive field cannot be traced gets a failed row.
    """
    values, positions = unit_peaks(s, s.data.images)
    try:
        rf = mis_field(s, tuple(s.data.images.shape[-2:])) if positions is not None else None
    except ValueError as err:
        return [{"unit": u, "metric": "mis_proxy", "value": float("nan"), "status": f"failed: {err}"} for u in units]
    own_rf = mis_field(s, tuple(explanations[0].shape[-2:])) if rf is not None and crop else None
    rows = []
    for i, (unit, expl, exclude) in enumerate(zip(units, explanations, excludes)):
        try:
            strong, weak = mis.pick_queries(values[:, i], s.settings.mis_tasks, exclude=np.asarray(exclude, dtype=int),
                                            seed=s.opts.seed)
        except ValueError as err:  # e.g. a unit whose activations are all NaN: the other units are still scored
            rows.append({"unit": unit, "metric": "mis_proxy", "value": float("nan"), "status": f"failed: {err}"})
            continue
        queries = [s.data.images[strong], s.data.images[weak]]
        if rf is not None:
            queries = [mis.rf_crops(q, positions[idx, i], rf) for q, idx in zip(queries, (strong, weak))]
        if own_rf is not None:
            expl = mis.rf_crops(expl, unit_peaks(s, expl)[1][:, i], own_rf)
        rows.append({"unit": unit, "metric": "mis_proxy", "value": mis.mis_proxy(expl, *queries)})
    return rows


@metric("mis_proxy", Ascent, "higher")
def ascent_mis_proxy(s: Scoring, result: Ascent) -> list[Row]:
    """mis_proxy of feature visualizations, each cropped at its own peak."""
    return mis_rows(s, result.units, result.unit_images(), [[] for _ in result.units], crop=True)


@metric("mis_proxy", TopPatches, "higher")
def patches_mis_proxy(s: Scoring, result: TopPatches) -> list[Row]:
    """mis_proxy of the top patches (receptive-field crops already), queries never from their source images."""
    return mis_rows(s, result.units, result.unit_images(), [idx.tolist() for idx in result.indices], crop=False)
