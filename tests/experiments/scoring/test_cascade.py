"""The cascading randomization curve: one re-run per step from the target's layer down, rows tagged with the step."""
from __future__ import annotations

import dataclasses
import math

import pytest

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.scoring import Scoring, applicable, score
from experiments.scoring.cascade import cascade_layers
from experiments.zoo.planted import build_planted
from methods.base import Target

CASCADE = {"cascade_ssim", "cascade_ssim_abs", "cascade_spearman", "cascade_spearman_abs", "cascade_hog_abs"}


@pytest.fixture(scope="module")
def planted():
    return build_planted(), make_shapes(n=16, size=64, seed=3)


def test_the_curve_is_opt_in(planted) -> None:
    spec, data = planted
    target = Target("conv2", (0, 1))
    result = call_method("raw_weights", spec, data, Target("conv1", (0,)), {}, RunOptions())
    assert not CASCADE & {m.name for m in applicable(Scoring.for_method("raw_weights", spec, data, target), result)}
    on = Scoring.for_method("raw_weights", spec, data, target, randomization_curve=True)
    assert CASCADE <= {m.name for m in applicable(on, result)}


def test_steps_run_from_the_target_layer_down(planted) -> None:
    spec, data = planted
    result = call_method("raw_weights", spec, data, Target("conv1", (0,)), {}, RunOptions())
    s = Scoring.for_method("raw_weights", spec, data, Target("conv2", (0,)), randomization_curve=True)
    assert cascade_layers(s, result) == ["conv2", "conv1"]  # planted's default targets below conv2, top first
    s = Scoring.for_method("raw_weights", spec, data, Target("", (0,), kind="class"), randomization_curve=True)
    assert cascade_layers(s, dataclasses.replace(result, layer="")) == ["conv2", "conv1"]  # output: all, top first
    s = Scoring.for_method("raw_weights", spec, data, Target("conv2", (0,)), randomization_curve=True,
                           cascade_layers=["conv1", "nope"])
    s.settings.cascade_layers = ["fc", "conv1"]
    assert cascade_layers(s, result) == ["conv2", "conv1"]  # fc, above conv2, cannot change it: not a step
    s.settings.cascade_layers = ["conv1", "nope"]
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        cascade_layers(s, result)


def test_a_conv2_unit_keeps_its_result_until_the_cascade_reaches_it(planted) -> None:
    """Top patches of a conv2 unit: randomizing from conv2 on changes them, and so does going further down."""
    spec, data = planted
    target = Target("conv2", (0, 1))
    result = call_method("top_patches", spec, data, target, {"k": 2}, RunOptions())
    s = Scoring.for_method("top_patches", spec, data, target, {"k": 2}, enabled=sorted(CASCADE),
                           randomization_curve=True)
    rows = score(s, result)
    assert {r["metric"] for r in rows} == CASCADE
    assert {(r["randomized_depth"], r["randomized_from"]) for r in rows} == {(1, "conv2"), (2, "conv1")}
    assert len(rows) == len(CASCADE) * 2 * 2  # 5 similarities x 2 units x 2 steps
    assert s._memo["cascade"][0][1] is s._memo["randomized"]  # step 1 is the randomization test's own re-run
    for r in rows:
        assert (r.get("status", "ok") == "ok" and math.isfinite(r["value"]) and r["value"] < 0.99) \
            or r["status"].startswith("degenerate"), r


def test_an_untouched_result_scores_one(planted) -> None:
    """The seam the curve reads: a step whose model gives the same result scores similarity 1."""
    spec, data = planted
    target = Target("conv1", (0, 1))
    result = call_method("raw_weights", spec, data, target, {}, RunOptions())
    s = Scoring.for_method("raw_weights", spec, data, target, enabled=["cascade_spearman"], randomization_curve=True)
    s._memo["cascade"] = [("conv1", result)]
    rows = score(s, result)
    assert [r["value"] for r in rows] == pytest.approx([1.0, 1.0])
    assert {r["randomized_from"] for r in rows} == {"conv1"}
