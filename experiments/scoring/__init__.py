"""Quality scoring: every declared metric (scoring.registry) whose result type and needs a run meets.

One module per family declares its metrics next to the function computing them; the plain metric functions
they call live in experiments/metrics/.
"""
from __future__ import annotations

from experiments.scoring import ascent, common, filters, mis, occlusion, patches  # noqa: F401 (declare metrics)
from experiments.scoring.context import Row, Scoring
from experiments.scoring.registry import METRICS, Metric, better, metric_names
from methods.base import Visualization, one_line

__all__ = ["METRICS", "Metric", "Row", "Scoring", "applicable", "better", "metric_names", "score"]


def applicable(s: Scoring, result: Visualization) -> list[Metric]:
    """The computed metrics the run asked for whose result type and needs this result meets."""
    return [m for m in METRICS if m.compute is not None and isinstance(result, m.on) and s.wants(m.name)
            and all(s.meets(need, result) for need in m.needs)]


def score(s: Scoring, result: Visualization) -> list[Row]:
    """All quality-metric rows the run asked for; a metric that fails gives a failed row, not a lost target."""
    rows: list[Row] = []
    for m in applicable(s, result):
        try:
            rows += m.compute(s, result)
        except Exception as err:  # noqa: BLE001 - recorded in the table
            rows.append({"unit": None, "metric": m.name, "value": float("nan"), "status": f"failed: {one_line(err)}"})
    return rows
