"""The metric registry: each quality metric declared once, with the result types it reads and what it needs.

A metric's `compute(scoring, result)` returns rows ({unit, metric, value} and optionally image, status).
Metrics with compute=None are values the method reports itself (the result's `values`): declared for their
direction and so that `metrics.enabled` and the tables know them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from methods.base import Visualization, invalid_choice

Row = dict[str, Any]
BETTER = ("higher", "lower", "descriptive")
NEEDS = ("ground_truth", "masks", "labels", "randomization", "randomization_curve", "stochastic", "layer",
         "several_images", "rerun", "approximate")  # rerun: the metric runs the method again (off under metrics=fast);
# approximate: the result is an approximation (occlusion's approx) that the metric compares with the exact one


@dataclass(frozen=True)
class Metric:
    """One quality metric on one kind of result."""

    name: str
    on: tuple[type[Visualization], ...]  # result types it applies to
    better: str  # higher | lower | descriptive
    compute: Callable[[Any, Any], list[Row]] | None = None  # (Scoring, result) -> rows; None: reported by the method
    needs: tuple[str, ...] = ()  # what the run must offer besides the result (NEEDS)

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise invalid_choice(f"better of metric {self.name}", self.better, BETTER)
        for need in self.needs:
            if need not in NEEDS:
                raise invalid_choice(f"need of metric {self.name}", need, NEEDS)


METRICS: list[Metric] = []


def declare(name: str, on: type | tuple[type, ...], better: str, needs: tuple[str, ...] = (),
            compute: Callable[[Any, Any], list[Row]] | None = None) -> Metric:
    """Register a metric (the same name may be declared for other result types, with the same `better`)."""
    m = Metric(name, on if isinstance(on, tuple) else (on,), better, compute, needs)
    same = [other for other in METRICS if other.name == name]
    if any(other.better != m.better for other in same):
        raise ValueError(f"metric {name!r} is declared with two directions")
    METRICS.append(m)
    return m


def metric(name: str, on: type | tuple[type, ...], better: str, needs: tuple[str, ...] = ()) -> Callable:
    """Decorator form of `declare` for a compute function."""
    def register(fn: Callable[[Any, Any], list[Row]]) -> Callable[[Any, Any], list[Row]]:
        declare(name, on, better, needs, fn)
        return fn
    return register


def metric_names() -> list[str]:
    """Every declared metric name, in declaration order."""
    return list(dict.fromkeys(m.name for m in METRICS))


def better(name: str) -> str | None:
    """Which direction of metric `name` is better (None for a name no metric declares, e.g. speed rows)."""
    return next((m.better for m in METRICS if m.name == name), None)
