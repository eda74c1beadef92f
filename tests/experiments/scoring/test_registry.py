"""The metric registry: each metric declared once per result type, with a direction; scoring picks by type and needs."""
from __future__ import annotations

import dataclasses
import math

import pytest

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.metrics import sanity
from experiments.scoring import METRICS, Scoring, applicable, better, metric_names, score
from experiments.scoring.common import similarity_rows
from experiments.scoring.registry import declare
from experiments.zoo.planted import build_planted
from methods.base import Target

SANITY = {"sanity_ssim", "sanity_ssim_abs", "sanity_spearman", "sanity_spearman_abs", "sanity_hog_abs"}
GT = {"gt_corr", "gt_ssim"}
# what the run used to score per method (the table before the registry), on planted with one image per unit
EXPECTED = {
    "raw_weights": SANITY | GT | {"filter_smoothness", "color_fraction", "gabor_fit"},
    "gradient_ascent": SANITY | GT | {"seed_ssim", "activation_vs_exemplar", "robustness", "hf_energy", "spectral_slope",
                                      "tv", "exemplar_similarity", "mis_proxy"},
    "occlusion": SANITY | GT | {"deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random",
                                "pointing_game", "mask_energy", "sparseness", "complexity"},
    "top_patches": SANITY | GT | {"mis_proxy", "topk_precision", "label_entropy", "rf_coverage"},
}
PARAMS = {"raw_weights": {}, "gradient_ascent": {"steps": 2}, "occlusion": {"window": 16, "stride": 16}, "top_patches": {"k": 2}}
FAST = {"auc_steps": 5, "mis_tasks": 5}
LAYER_ROWS = {"color_fraction"}  # metrics with one row for the layer, not one per unit


@pytest.fixture(scope="module")
def planted():
    return build_planted(), make_shapes(n=32, size=64, seed=3)


def test_declarations_are_unique_and_directed() -> None:
    keys = [(m.name, t) for m in METRICS for t in m.on]
    assert len(keys) == len(set(keys))
    directions = {name: {m.better for m in METRICS if m.name == name} for name in metric_names()}
    assert all(len(d) == 1 for d in directions.values()), directions
    assert {better(n) for n in SANITY} == {"lower"} and set(sanity.SIMILARITIES) == SANITY
    assert better("sanity_hog") is None  # HOG cannot see a sign: only sanity_hog_abs is declared
    assert {better(n) for n in GT | {"seed_ssim", "topk_precision", "mis_proxy"}} == {"higher"}
    assert better("deletion_auc") == "lower" and better("time_s") is None


def test_a_name_has_one_direction() -> None:
    with pytest.raises(ValueError, match="two directions"):
        declare("gt_corr", object, "lower")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_result_gets_the_metrics_it_meets(name: str, planted) -> None:
    spec, data = planted
    target = Target("conv1" if name == "raw_weights" else "conv2", (0, 1))
    result = call_method(name, spec, data, target, PARAMS[name], RunOptions(n_images=2))
    s = Scoring.for_method(name, spec, data, target, PARAMS[name])
    assert {m.name for m in applicable(s, result)} == EXPECTED[name]
    assert not {m.name for m in applicable(Scoring.for_method(name, spec, data, target, PARAMS[name], randomization=False), result)} & SANITY


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_metric_scores_every_unit_or_says_why(name: str, planted) -> None:
    spec, data = planted
    target = Target("conv1" if name == "raw_weights" else "conv2", (0, 1))
    result = call_method(name, spec, data, target, PARAMS[name], RunOptions(n_images=2))
    s = Scoring.for_method(name, spec, data, target, PARAMS[name], RunOptions(n_images=2), **FAST)
    rows, metrics = score(s, result), {m.name for m in applicable(s, result)}
    assert {r["metric"] for r in rows} == metrics
    for metric in metrics:
        units = [r["unit"] for r in rows if r["metric"] == metric]  # per-image metrics: one row per unit and image
        assert (units == [None]) if metric in LAYER_ROWS else (sorted(set(units)) == sorted(result.units)), metric
    for r in rows:
        ok = r.get("status", "ok") == "ok"
        assert (ok and math.isfinite(r["value"])) or (not ok and r["status"].split(":")[0] in ("degenerate", "failed")), r


def test_needs_leave_out_what_the_run_cannot_offer(planted) -> None:
    spec, data = planted
    target = Target("conv2", (0, 1))
    result = call_method("top_patches", spec, data, target, {"k": 2}, RunOptions())
    s = Scoring.for_method("top_patches", spec, data, target)
    s.spec = type(spec)(**{**spec.__dict__, "ground_truth": None})  # a model with no planted truth
    assert not {m.name for m in applicable(s, result)} & GT


def test_enabled_picks_metrics_and_a_failing_one_is_one_failed_row(planted, monkeypatch) -> None:
    spec, data = planted
    target = Target("conv1", (0, 1))
    result = call_method("raw_weights", spec, data, target, {}, RunOptions())
    s = Scoring.for_method("raw_weights", spec, data, target, enabled=["gabor_fit", "filter_smoothness"])
    assert {r["metric"] for r in score(s, result)} == {"gabor_fit", "filter_smoothness"}
    from experiments.scoring import filters

    def broken(weights):
        raise RuntimeError("boom\nmore")

    monkeypatch.setattr(filters.raw_weights, "gabor_fit", broken)
    rows = score(s, result)
    failed = [r for r in rows if r["metric"] == "gabor_fit"]
    assert failed == [{"unit": None, "metric": "gabor_fit", "value": failed[0]["value"], "status": "failed: RuntimeError: boom"}]
    assert len([r for r in rows if r["metric"] == "filter_smoothness"]) == 2


def test_a_constant_result_on_the_randomized_model_is_a_reason_not_a_pass(planted) -> None:
    spec, data = planted
    target = Target("conv1", (0, 1))
    result = call_method("raw_weights", spec, data, target, {}, RunOptions())
    s = Scoring.for_method("raw_weights", spec, data, target, enabled=sorted(SANITY))
    weights = result.weights.clone()
    weights[1] = 0.0
    s._memo["randomized"] = dataclasses.replace(result, weights=weights)  # the randomized model's result
    rows = score(s, result)
    assert {r["metric"] for r in rows} == SANITY
    bad = [r for r in rows if r["unit"] == 1]
    assert len(bad) == len(SANITY) and all(math.isnan(r["value"]) for r in bad)
    assert {r["status"] for r in bad} == {"degenerate: constant result on the randomized model",
                                          "degenerate: constant |result| on the randomized model"}
    assert all(r.get("status", "ok") == "ok" and math.isfinite(r["value"]) for r in rows if r["unit"] == 0)
    other = dataclasses.replace(result, weights=-result.weights)  # the same filters negated
    rows = similarity_rows(result, other, "sanity_spearman", sanity.sanity_spearman, False, ("seed 0", "seed 1"))
    assert [r["value"] for r in rows] == pytest.approx([-1.0, -1.0])
    swapped = similarity_rows(other, s._memo["randomized"], "seed_ssim", sanity.seed_ssim, False, ("seed 0", "seed 1"))
    assert swapped[1]["status"] == "degenerate: constant result on seed 1"
