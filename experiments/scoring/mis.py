"""mis_proxy: an automatic 2AFC score (after MIS, see experiments/metrics/mis.py) of how well a unit's max and min
references tell strong from weak natural queries."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from experiments.data.stream import LazyImages, batches
from experiments.metrics import mis
from experiments.scoring.context import Row, Scoring
from experiments.scoring.registry import metric
from methods.base import Visualization, nan_last, read_out
from methods.gradient_ascent import Ascent
from methods.receptive_field import ReceptiveField, local_field
from methods.top_patches import TopPatches

MIS_BATCH = 128


def unit_peaks(s: Scoring, images: Tensor | LazyImages) -> tuple[Tensor, Tensor | None]:
    """Each target unit's peak on each image: scores [N, U] and layer-map positions [N, U, 2] (row, col).

    Channel targets on a spatial map: the spatial max and where it is (NaN positions rank last). Neuron
    targets: the value at the target's position. Any other target (class, layer, direction kinds, or a layer
    without a spatial map): the run's read-out and no positions (None).
    """
    trunc = s.cut(s.target.layer)
    units = list(s.target.units)
    values, positions = [], []
    with torch.inference_mode():
        for batch in batches(images, MIS_BATCH, s.data.workers):
            acts = trunc(batch.to(s.device))
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


def data_peaks(s: Scoring) -> tuple[Tensor, Tensor | None]:
    """`unit_peaks` of every data image, found once per result (mis_proxy's queries, topk_precision's classes)."""
    return s.memo("data_peaks", unit_peaks, s, s.data.images)


def mis_field(s: Scoring, size: tuple[int, int]) -> ReceptiveField:
    """The target layer's receptive field for images of `size` (without global branches where they make it the whole image)."""
    return local_field(s.spec.model, s.target.layer, size, s.spec.in_channels)[0]


def minimized(s: Scoring) -> Visualization | None:
    """The method re-run with `minimize` flipped, once per result (its images: the min references, or the max ones
    of a run that minimizes); None where the method has no `minimize` option."""
    if "minimize" not in s.method.schema:
        return None
    params = {**s.params, "minimize": not s.params.get("minimize", False)}
    return s.memo("mis_minimized", s.method.call, s.spec, s.data, s.target, params, s.opts, s.spec.model)


def mis_row(s: Scoring, unit: int, value: float, kinds: str, status: str | None = None) -> Row:
    """One mis_proxy row, saying which embedding and which references (max+min or max) it used."""
    row = {"unit": unit, "metric": "mis_proxy", "value": value, "mis_embedding": s.settings.mis_embedding,
           "mis_reference_kinds": kinds}
    return row if status is None else {**row, "status": status}


def mis_rows(s: Scoring, units: tuple[int, ...], maxima: list[Tensor], minima: list[Tensor] | None,
             sources: list[list[int]], crop: bool) -> list[Row]:
    """mis_proxy of each unit's references (at most `s.settings.mis_references` of each kind), shown as the unit sees them.

    maxima[i], minima[i]: unit i's max and min references (minima None: max only); sources[i]: the data images
    they came from, never queries. Queries: held-out data images; strong and weak ones are the top and bottom
    10% by the unit's peak score (`unit_peaks`: spatial max for channels, the target position for neurons),
    `s.settings.mis_tasks` pairs drawn with the run's seed. Each query is cropped to the receptive field around
    its own peak position (the strong query's strongest location, and the weak query's strongest location too,
    so both are treated alike). With `crop`, each reference image (e.g. a gradient-ascent image, max or min) is
    cropped the same way around its own peak; without it the references are used as given (top_patches'
    receptive-field crops). Targets without positions (class, layer, direction kinds) compare whole images. A
    unit whose receptive field cannot be traced gets a failed row.
    """
    k, kinds = s.settings.mis_references, "max" if minima is None else "max+min"
    embed = mis.embedding(s.settings.mis_embedding)
    try:
        temperature = mis.temperature_for(s.settings.mis_embedding, s.settings.mis_temperature, s.data.images.shape[1])
    except ValueError as err:  # no calibrated scale for this channel count: the metric cannot apply, the run goes on
        return [mis_row(s, u, float("nan"), kinds, f"degenerate: {err}") for u in units]
    values, positions = data_peaks(s)
    try:
        rf = mis_field(s, tuple(s.data.images.shape[-2:])) if positions is not None else None
    except ValueError as err:
        return [mis_row(s, u, float("nan"), kinds, f"failed: {err}") for u in units]
    own_rf = mis_field(s, tuple(maxima[0].shape[-2:])) if rf is not None and crop else None
    rows = []
    for i, unit in enumerate(units):
        try:
            strong, weak = mis.pick_queries(values[:, i], s.settings.mis_tasks, exclude=np.asarray(sources[i], dtype=int),
                                            seed=s.opts.seed)
        except ValueError as err:  # too few usable images (all NaN, or all the explanation's own): cannot apply
            rows.append(mis_row(s, unit, float("nan"), kinds, f"degenerate: {err}"))
            continue
        queries = [s.data.images[strong], s.data.images[weak]]
        if rf is not None:
            queries = [mis.rf_crops(q, positions[idx, i], rf) for q, idx in zip(queries, (strong, weak))]
        refs = [maxima[i][:k], None if minima is None else minima[i][:k]]
        if own_rf is not None:
            refs = [r if r is None else mis.rf_crops(r, unit_peaks(s, r)[1][:, i], own_rf) for r in refs]
        value = mis.mis_proxy(refs[0], *queries, minima=refs[1], embed=embed, temperature=temperature)
        rows.append(mis_row(s, unit, value, kinds))
    return rows


@metric("mis_proxy", Ascent, "higher", needs=("rerun",))
def ascent_mis_proxy(s: Scoring, result: Ascent) -> list[Row]:
    """mis_proxy of feature visualizations against the minimizing ones (each cropped at its own peak)."""
    low = minimized(s)
    minima = None if low is None else low.unit_images()
    return mis_rows(s, result.units, result.unit_images(), minima, [[] for _ in result.units], crop=True)


@metric("mis_proxy", TopPatches, "higher", needs=("rerun",))
def patches_mis_proxy(s: Scoring, result: TopPatches) -> list[Row]:
    """mis_proxy of the top patches against the bottom patches (receptive-field crops already); queries never
    come from either's source images."""
    low = minimized(s)
    sources = [idx.tolist() for idx in result.indices]
    if low is None:
        return mis_rows(s, result.units, result.unit_images(), None, sources, crop=False)
    sources = [a + b.tolist() for a, b in zip(sources, low.indices)]
    return mis_rows(s, result.units, result.unit_images(), low.unit_images(), sources, crop=False)
