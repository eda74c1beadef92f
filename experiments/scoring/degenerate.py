"""Degenerate units: units whose scores would be numbers without meaning, labelled instead of scored.

A unit is degenerate when its activations over the data are not finite (NaN or inf anywhere), when it is
dead (its activation range over the data is below DEAD_ATOL + DEAD_RTOL x its largest |activation|: an
all-zero ReLU unit, or one stuck at a constant; like Zimmermann et al. 2024, who leave units with a
constant response out of their evaluation), when its own result is not finite (its images, or the typed
result's tensors: ascent activation, occlusion maps, top-patch activations, filter weights), or when its
result is constant (every own occlusion map flat, or a flat first-layer filter). `label` then gives every
row of such a unit value NaN and the reason as its status, and marks any other ok row whose value is not a
number, so that no number in a results table is reported ok without meaning something.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from experiments.data.stream import batches
from experiments.scoring.context import Row, Scoring
from experiments.tables import not_a_number
from methods.base import Visualization, one_line
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.raw_weights import Filters
from methods.top_patches import TopPatches

DEAD_ATOL = 1e-6  # an all-zero unit, up to float rounding
DEAD_RTOL = 1e-5  # a unit stuck at any constant: ~100x float32 epsilon, so rounding noise does not look alive
BATCH = 128


def unit_reasons(s: Scoring, result: Visualization) -> dict[int, str]:
    """Why each degenerate unit of `result` is degenerate, by unit ('degenerate: ...'; a unit absent is fine).

    Found once per result. Where the data activations cannot be computed, only the result itself is checked
    (`score` records that failure as a failed row).
    """
    return check(s, result)[0]


def check(s: Scoring, result: Visualization) -> tuple[dict[int, str], str | None]:
    """(unit_reasons, why the data activations could not be computed or None), found once per result."""
    return s.memo(f"degenerate/{id(result)}", find_reasons, s, result)[1:]


def find_reasons(s: Scoring, result: Visualization) -> tuple[Visualization, dict[int, str], str | None]:
    """See check; the result is kept with the answer so that its id, the memo key, stays its own."""
    try:
        acts, error = unit_activations(s, result), None
    except Exception as err:  # noqa: BLE001 - recorded by score as a failed row
        acts, error = None, one_line(err)
    reasons = {}
    for i, unit in enumerate(result.units):
        why = (activation_reason(acts[:, i]) if acts is not None else None) or result_reason(result, i)
        if why:
            reasons[unit] = f"degenerate: {why}"
    return result, reasons, error


def unit_activations(s: Scoring, result: Visualization) -> Tensor:
    """[N, U] read-out of each unit of `result` on every data image (s.natural, at the result's own layer)."""
    if result.layer == s.target.layer:
        acts = s.natural
    else:  # e.g. raw_weights with layer '': the target names the output, the result the first conv
        score = s.scorer(result.layer)
        acts = torch.cat([score(batch) for batch in batches(s.data.images, BATCH, s.data.workers)])
    acts = acts.reshape(len(acts), -1)
    return acts.expand(-1, len(result.units)) if acts.shape[1] == 1 else acts  # layer, direction: one score


def activation_reason(acts: Tensor) -> str | None:
    """Why a unit with these activations over the data [N] is degenerate (not finite, dead), or None."""
    if bad := not_finite(acts):
        return f"{bad} in activations ({int((~acts.isfinite()).sum())} of {len(acts)} images)"
    if flat(acts):
        return f"dead unit (activation range {float(acts.max() - acts.min()):.3g} over {len(acts)} images)"
    return None


def result_reason(result: Visualization, i: int) -> str | None:
    """Why unit i's own result is degenerate (not finite, or constant where that means nothing), or None."""
    for name, tensor in {"its images": result.unit_images()[i], **own_tensors(result, i)}.items():
        if bad := not_finite(tensor):
            return f"{bad} in {name}"
    if isinstance(result, OcclusionMaps) and len(own := result.own_maps(i)[1]) and all(flat(m) for m in own):
        return "constant occlusion map"
    if isinstance(result, Filters) and flat(result.weights[i]):
        return f"constant filter (every weight {float(result.weights[i].flatten()[0]):.3g})"
    return None


def own_tensors(result: Visualization, i: int) -> dict[str, Tensor]:
    """Unit i's part of the tensors a typed result holds besides its images, by what they are."""
    if isinstance(result, Ascent):
        return {"ascent activation": result.activation[i]}
    if isinstance(result, OcclusionMaps):
        return {"occlusion maps": result.maps[:, i]}
    if isinstance(result, TopPatches):
        return {"top-patch activations": result.activations[i]}
    if isinstance(result, Filters):
        return {"weights": result.weights[i]}
    return {}


def not_finite(x: Tensor) -> str | None:
    """'NaN' or 'Inf' if `x` holds one (NaN first), else None."""
    x = x.float()
    if x.isnan().any():
        return "NaN"
    return "Inf" if x.isinf().any() else None


def flat(x: Tensor) -> bool:
    """Whether `x` is constant: its range is at most DEAD_ATOL + DEAD_RTOL x its largest |value|."""
    x = x.float()
    return x.numel() > 0 and float(x.max() - x.min()) <= DEAD_ATOL + DEAD_RTOL * float(x.abs().max())


def finite(value: object) -> bool:
    """Whether a row's value is a finite number."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def label(rows: list[Row], reasons: dict[int, str]) -> list[Row]:
    """The rows with every row of a degenerate unit set to NaN with its reason as status, and every other ok row
    whose value is not a finite number (a unit's or the layer's) marked degenerate: no number stays ok unearned."""
    out = []
    for row in rows:
        if row.get("unit") is not None and row["unit"] in reasons:
            row = {**row, "value": float("nan"), "status": reasons[row["unit"]]}
        elif str(row.get("status", "ok")).startswith(("ok", "flagged")) and not finite(row.get("value")):
            row = {**row, "status": not_a_number(row.get("metric", "value"))}
        out.append(row)
    return out
