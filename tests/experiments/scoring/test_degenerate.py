"""Degenerate units are labelled, not scored: constructed NaN, dead and constant units on the planted model, each
scored through Scoring.for_method + score next to a healthy unit of the same layer that still gets ok numbers."""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable

import pytest
import torch
from torch import nn

from experiments.adapters import RunOptions, call_method
from experiments.adapters.occlusion import top_images
from experiments.data.shapes import make_shapes
from experiments.scoring import Scoring, label, score, unit_reasons
from methods.base import Target

OPTS = RunOptions(n_images=2)
FAST = {"auc_steps": 5, "mis_tasks": 5}
PARAMS = {"gradient_ascent": {"steps": 2}, "occlusion": {"window": 16, "stride": 16}, "top_patches": {"k": 3},
          "raw_weights": {}}


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n=48, size=64, seed=3)


def broken(spec, change: Callable[[nn.Module], None]):
    """The planted spec with a copy of its model changed by `change` (under no_grad)."""
    model = copy.deepcopy(spec.model)
    with torch.no_grad():
        change(model)
    return dataclasses.replace(spec, model=model)


def scored(name: str, spec, data, target: Target, result=None, **settings) -> list[dict]:
    """Every metric row of method `name` on `target` (its result as a run computes it unless given)."""
    result = result if result is not None else call_method(name, spec, data, target, PARAMS[name], OPTS)
    return score(Scoring.for_method(name, spec, data, target, PARAMS[name], OPTS, **FAST, **settings), result)


def check_labelled(rows: list[dict], bad: int, good: int, reason: str) -> None:
    """Every row of unit `bad` is NaN with a degenerate status starting with `reason`; unit `good` has ok numbers;
    no row is ok without a finite value."""
    of_bad = [r for r in rows if r["unit"] == bad]
    assert of_bad and all(math.isnan(r["value"]) and r["status"].startswith(reason) for r in of_bad)
    of_good = [r for r in rows if r["unit"] == good and r.get("status", "ok") == "ok"]
    assert len({r["metric"] for r in of_good}) >= 5 and all(math.isfinite(r["value"]) for r in of_good)
    assert all(math.isfinite(r["value"]) for r in rows if r.get("status", "ok") == "ok")


def test_unit_with_nan_activations(planted, shapes) -> None:
    spec = broken(planted, lambda m: m.conv2.weight[2].fill_(float("nan")))
    rows = scored("top_patches", spec, shapes, Target("conv2", (0, 2)))
    check_labelled(rows, bad=2, good=0, reason="degenerate: NaN in activations (48 of 48 images)")
    # before: topk_precision 0, label_entropy 1.1, rf_coverage 0.29, mis_proxy 0.6, all ok
    assert {r["metric"] for r in rows if r["unit"] == 2} >= {"topk_precision", "label_entropy", "rf_coverage", "mis_proxy"}


def test_dead_unit(planted, shapes) -> None:
    def kill(model: nn.Module) -> None:
        model.conv2.weight[2].zero_()
        model.conv2.bias[2] = 0.0

    rows = scored("occlusion", broken(planted, kill), shapes, Target("relu2", (0, 2)))
    check_labelled(rows, bad=2, good=0, reason="degenerate: dead unit (activation range 0 over 48 images)")
    # before: pointing_game and sanity_ssim were numbers marked ok while its Spearman and HOG rows were NaN
    assert {r["metric"] for r in rows if r["unit"] == 2} >= {"pointing_game", "sanity_ssim", "sanity_spearman"}


def test_all_zero_occlusion_maps(planted, shapes) -> None:
    target = Target("conv2", (0, 1))
    result = call_method("occlusion", planted, shapes, target, PARAMS["occlusion"], OPTS)
    maps = result.maps.clone()
    maps[:, 1] = 0.0
    images = result.images.clone()
    images[result.images_per_unit:] = 0.5
    rows = scored("occlusion", planted, shapes, target, dataclasses.replace(result, maps=maps, images=images))
    check_labelled(rows, bad=1, good=0, reason="degenerate: constant occlusion map")


def test_ascent_images_all_nan(planted, shapes) -> None:
    target = Target("conv2", (0, 1))
    result = call_method("gradient_ascent", planted, shapes, target, PARAMS["gradient_ascent"], OPTS)
    images = result.images.clone()
    images[1] = float("nan")  # unit 1's image (one per unit)
    rows = scored("gradient_ascent", planted, shapes, target, dataclasses.replace(result, images=images),
                  randomization=False)
    bad = [r for r in rows if r["unit"] == 1]
    assert bad and all(math.isnan(r["value"]) and r["status"] == "degenerate: NaN in its images" for r in bad)
    assert "mis_proxy" in {r["metric"] for r in bad}  # before: 0.35, ok


def test_constant_and_zero_filters(planted, shapes) -> None:
    def flatten(model: nn.Module) -> None:
        model.conv1.weight[1].zero_()  # no bias: a dead unit
        model.conv1.weight[3].fill_(0.1)  # responds to brightness, but draws nothing

    spec = broken(planted, flatten)
    target = Target("conv1", (0, 1, 3))
    result = call_method("raw_weights", spec, shapes, target, {}, OPTS)
    reasons = unit_reasons(Scoring.for_method("raw_weights", spec, shapes, target), result)
    assert reasons == {1: "degenerate: dead unit (activation range 0 over 48 images)",
                       3: "degenerate: constant filter (every weight 0.1)"}
    rows = scored("raw_weights", spec, shapes, target, result)
    assert all(r["status"] == reasons[r["unit"]] for r in rows if r["unit"] in reasons)
    assert all(r.get("status", "ok") == "ok" for r in rows if r["unit"] == 0)


def test_data_activations_that_fail_are_a_failed_row(planted, shapes) -> None:
    spec = broken(planted, lambda m: m.conv1.weight[3].fill_(0.1))
    target = Target("conv1", (0, 3))
    result = call_method("raw_weights", spec, shapes, target, {}, OPTS)
    two = dataclasses.replace(shapes, images=shapes.images[:, :2])  # 2 channels: normalizing them fails
    rows = scored("raw_weights", spec, two, target, result, randomization=False)
    check = [r for r in rows if r["metric"] == "unit_check"]
    assert len(check) == 1 and check[0]["status"].startswith("failed: data activations for the degenerate-unit check")
    assert all(r["status"] == "degenerate: constant filter (every weight 0.1)" for r in rows if r["unit"] == 3)


def test_label_marks_every_number_that_is_not_one() -> None:
    nan = float("nan")
    rows = [{"unit": 0, "metric": "a", "value": 0.5}, {"unit": 0, "metric": "b", "value": nan},
            {"unit": 1, "metric": "a", "value": 0.5, "status": "ok"},
            {"unit": 1, "metric": "b", "value": nan, "status": "failed: ValueError: x"},
            {"unit": None, "metric": "c", "value": nan}, {"unit": None, "metric": "d", "value": nan, "status": "failed: E"},
            {"unit": 0, "metric": "e", "value": nan, "status": "degenerate: e undefined (top <= 0)"},
            {"unit": 0, "metric": "f", "value": float("inf")}]
    out = label(rows, {1: "degenerate: dead unit"})
    assert [r.get("status", "ok") for r in out] == [
        "ok", "degenerate: b is not a number", "degenerate: dead unit", "degenerate: dead unit",
        "degenerate: c is not a number", "failed: E", "degenerate: e undefined (top <= 0)", "degenerate: f is not a number"]
    assert math.isnan(out[2]["value"]) and rows[2]["value"] == 0.5  # the input rows are left as they were


def test_nan_images_rank_last_for_occlusion(planted, shapes) -> None:
    data = dataclasses.replace(shapes, images=shapes.images.clone())
    target = Target("conv2", (0, 1, 2))
    first = top_images(planted, data, target, 1)[:, 0]
    data.images[first] = float("nan")  # torch.topk would now pick these first
    assert not set(top_images(planted, data, target, 3).flatten().tolist()) & set(first.tolist())
