"""The cascading randomization curve (Adebayo et al. 2018, Fig. 2): similarity against how far down the model is
randomized.

Step k re-runs the method on a copy of the model randomized from the k-th cascade layer on (that layer and every
module after it in `named_modules()` order, `sanity.randomize(..., "cascading")`). The cascade layers run from the
target's own layer down to the input: modules above the target cannot change it, so the paper's steps above it
(similarity 1 by construction) are not run. Rows: `cascade_<similarity>` per unit and step, with the columns
`randomized_from` (the step's layer) and `randomized_depth` (k, 1 = the target's layer), which
`experiments.plots.randomization_curve` draws.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from torch import Tensor

from experiments.metrics import sanity
from experiments.scoring.common import randomized, similarity_rows
from experiments.scoring.context import Row, Scoring
from experiments.scoring.registry import declare
from methods.base import Visualization, get_module

PREFIX = "cascade_"


def cascade_layers(s: Scoring, result: Visualization) -> list[str]:
    """The curve's layers, the target's own first, then each earlier one (a class target: every one, top first):
    `metrics.cascade_layers` if set, else the model's default target layers, in `named_modules()` order."""
    own = s.target.layer or result.layer
    position = {n: i for i, n in enumerate(n for n, _ in s.spec.model.named_modules())}
    chosen = list(s.settings.cascade_layers) or list(s.spec.default_targets)
    for layer in chosen:
        get_module(s.spec.model, layer)  # an unknown name: one line naming it
    below = sorted({layer for layer in chosen if own == "" or position[layer] < position[own]},
                   key=position.__getitem__, reverse=True)
    return below if own == "" else [own] + below


def cascade(s: Scoring, result: Visualization) -> list[tuple[str, Visualization]]:
    """(layer, the method's result on the model randomized from that layer on) per cascade step, run once."""
    def step(layer: str) -> Visualization:
        if layer and layer == s.target.layer and s.settings.randomization_mode == "cascading":
            return randomized(s, result)  # the randomization test's own re-run
        return s.rerun(model=sanity.randomize(s.spec.model, layer, mode="cascading", seed=s.opts.seed + 1))

    return s.memo("cascade", lambda: [(layer, step(layer)) for layer in cascade_layers(s, result)])


def cascade_rows(name: str, compare: Callable[[Tensor, Tensor], float], absolute: bool, s: Scoring,
                 result: Visualization) -> list[Row]:
    """`compare` of each unit's result with its result at each cascade step, tagged with the step."""
    rows, metric = [], PREFIX + name.removeprefix("sanity_")
    for depth, (layer, other) in enumerate(cascade(s, result), start=1):
        sides = ("the model", f"the model randomized from {layer or 'output'}")
        rows += [{**r, "randomized_from": layer, "randomized_depth": depth}
                 for r in similarity_rows(result, other, metric, compare, absolute, sides)]
    return rows


for _name, (_fn, _absolute) in sanity.SIMILARITIES.items():
    declare(PREFIX + _name.removeprefix("sanity_"), Visualization, "lower", ("randomization_curve",),
            partial(cascade_rows, _name, _fn, _absolute))
