"""First-layer filter metrics: smoothness, colour and Gabor-likeness."""
from __future__ import annotations

from experiments.metrics import raw_weights
from experiments.scoring.context import Row, Scoring, rows_for
from experiments.scoring.registry import metric
from methods.raw_weights import Filters


@metric("filter_smoothness", Filters, "lower")
def filter_smoothness(s: Scoring, result: Filters) -> list[Row]:
    """Total variation of each filter."""
    return rows_for(result, "filter_smoothness", raw_weights.filter_smoothness(result.weights))


@metric("color_fraction", Filters, "descriptive")
def color_fraction(s: Scoring, result: Filters) -> list[Row]:
    """Share of the layer's filters that are coloured (`raw_weights.color_fraction`, mean colour included; one row)."""
    row = {"unit": None, "metric": "color_fraction", "value": float(raw_weights.color_fraction(result.weights))}
    if why := raw_weights.color_undefined(result.weights):
        row["status"] = f"degenerate: {why}"
    return [row]


@metric("gabor_fit", Filters, "higher")
def gabor_fit(s: Scoring, result: Filters) -> list[Row]:
    """How well a Gabor function fits each filter."""
    return rows_for(result, "gabor_fit", raw_weights.gabor_fit(result.weights))
