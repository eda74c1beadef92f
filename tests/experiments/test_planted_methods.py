"""On the planted model every method's right answer is known: check each method finds it, and the metrics say so."""
from __future__ import annotations

import numpy as np
import pytest
from pathlib import Path

from omegaconf import OmegaConf

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.scoring import Scoring, score
from methods.base import Target

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n=256, size=64, seed=7)


def preset(name: str) -> dict:
    """A gradient-ascent preset's params, as its config file gives them."""
    return dict(OmegaConf.load(CONF / "method" / "gradient_ascent" / f"{name}.yaml").params)


def metric(rows: list[dict], name: str) -> list[float]:
    return [r["value"] for r in rows if r["metric"] == name]


def test_raw_weights_reproduce_the_planted_bank(planted, shapes) -> None:
    target = Target("conv1", tuple(range(12)))
    vis = call_method("raw_weights", planted, shapes, target, {"normalization": "symmetric"}, RunOptions())
    rows = score(Scoring.for_method("raw_weights", planted, shapes, target, {}, RunOptions()), vis)
    assert min(metric(rows, "gt_corr")) > 0.999
    assert max(abs(v) for v in metric(rows, "sanity_spearman")) < 0.2  # randomized first layer: unrelated filters


def test_erhan2009_neuron_recovers_a_planted_filter(planted, shapes) -> None:
    target = Target("conv1", (0, 2, 8), kind="neuron")
    # the optimum of a linear unit on an L2 ball is the filter itself (the preset's ball is small enough that
    # pixels stay off the [0, 1] clamp; at l2_bound 0.1 the colour blob saturates and scores 0.88)
    params = preset("erhan2009")
    vis = call_method("gradient_ascent", planted, shapes, target, params, RunOptions())
    rows = score(Scoring.for_method("gradient_ascent", planted, shapes, target, params, RunOptions(), enabled=["gt_corr"]), vis)
    assert min(metric(rows, "gt_corr")) >= 0.9


def test_top9_patches_of_planted_units_show_their_class(planted, shapes) -> None:
    target = Target("conv2", (0, 1, 2))
    vis = call_method("top_patches", planted, shapes, target, {"k": 9}, RunOptions())
    for i, unit in enumerate(target.units):
        wanted = shapes.class_names.index(planted.unit_classes[("conv2", unit)])
        assert int((shapes.labels[vis.indices[i]] == wanted).sum()) >= 8
    rows = score(Scoring.for_method("top_patches", planted, shapes, target, {}, RunOptions(), enabled=["topk_precision"]), vis)
    assert min(metric(rows, "topk_precision")) >= 8 / 9


def test_occlusion_of_planted_units_peaks_on_the_object(planted, shapes) -> None:
    target = Target("conv2", (0, 1, 2))
    opts = RunOptions(n_images=3)
    params = dict(OmegaConf.load(CONF / "method" / "occlusion.yaml").params)
    vis = call_method("occlusion", planted, shapes, target, params, opts)
    enabled = ["pointing_game", "deletion_auc", "deletion_auc_random", "insertion_auc", "insertion_auc_random"]
    rows = score(Scoring.for_method("occlusion", planted, shapes, target, params, opts, enabled=enabled, auc_steps=10), vis)
    assert all(r.get("status", "ok") == "ok" for r in rows)
    assert np.mean(metric(rows, "pointing_game")) >= 0.9  # within 15 px at 224 px (4 px here) of the object
    # the map ranks the pixels the unit uses first: far from the random order's chance level (~0.5 both)
    assert np.mean(metric(rows, "deletion_auc")) < np.mean(metric(rows, "deletion_auc_random")) - 0.2
    assert np.mean(metric(rows, "insertion_auc")) > np.mean(metric(rows, "insertion_auc_random")) + 0.3
