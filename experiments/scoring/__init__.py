"""Quality scoring: every declared metric (scoring.registry) whose result type and needs a run meets.

One module per family declares its metrics next to the function computing them; the plain metric functions
they call live in experiments/metrics/. Every row `score` returns is labelled (scoring.degenerate): the rows
of a degenerate unit are NaN with the reason as status, and no value that is not a number stays ok.
"""
from __future__ import annotations

from experiments.scoring import ascent, cascade, common, filters, mis, occlusion, patches  # noqa: F401 (declare metrics)
from experiments.scoring.context import Row, Scoring
from experiments.scoring.degenerate import check, label, unit_reasons
from experiments.scoring.registry import METRICS, Metric, better, metric_names
from methods.base import Visualization, one_line

__all__ = ["METRICS", "Metric", "Row", "Scoring", "applicable", "better", "label", "metric_names", "score",
           "unit_reasons"]


def applicable(s: Scoring, result: Visualization) -> list[Metric]:
    """The computed metrics the run asked for whose result type and needs this result meets."""
    return [m for m in METRICS if m.compute is not None and isinstance(result, m.on) and s.wants(m.name)
            and all(s.meets(need, result) for need in m.needs)]


def score(s: Scoring, result: Visualization) -> list[Row]:
    """All quality-metric rows the run asked for, labelled; a metric that fails gives a failed row, not a lost
    target, and so do data activations that cannot be computed for the degenerate-unit check. No metric asked
    for (metrics=none): no rows, and no pass over the data."""
    metrics = applicable(s, result)
    if not metrics:
        return []
    reasons, error = check(s, result)
    rows: list[Row] = []
    if error is not None:
        rows.append(failed("unit_check", f"data activations for the degenerate-unit check: {error}"))
    for m in metrics:
        try:
            rows += m.compute(s, result)
        except Exception as err:  # noqa: BLE001 - recorded in the table
            rows.append(failed(m.name, one_line(err)))
    return label(rows, reasons)


def failed(metric: str, why: str) -> Row:
    """A layer-level failed row."""
    return {"unit": None, "metric": metric, "value": float("nan"), "status": f"failed: {why}"}
