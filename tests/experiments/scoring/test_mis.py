"""mis_proxy as a run scores it: on the planted model the units' top patches explain them; wrong explanations do not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.metrics import mis
from experiments.scoring import Scoring, score
from experiments.scoring.mis import mis_field, mis_rows, unit_peaks
from experiments.zoo.planted import build_planted
from methods.base import Target

K = 9
TARGET = Target("conv2", (0, 1, 2))  # cross, corner, red_green detectors


@pytest.fixture(scope="module")
def run():
    planted, shapes = build_planted(), make_shapes(n=256, size=64, seed=7)
    vis = call_method("top_patches", planted, shapes, TARGET, {"k": K}, RunOptions())
    return Scoring.for_method("top_patches", planted, shapes, TARGET, {}, RunOptions(), enabled=["mis_proxy"], mis_tasks=20), vis


def values(rows: list[dict]) -> np.ndarray:
    return np.array([r["value"] for r in rows if r["metric"] == "mis_proxy"])


def test_top_patches_of_planted_units_explain_them(run) -> None:
    s, vis = run
    assert (values(score(s, vis)) >= 0.75).all()  # measured 0.85-1.0 (chance 0.5)


def test_queries_are_cropped_at_each_images_peak(run) -> None:
    s, vis = run
    scores, positions = unit_peaks(s, s.data.images)
    assert scores.shape == (256, 3) and positions.shape == (256, 3, 2)
    i = int(vis.indices[0, 0])  # the cross unit's best image: top_patches found the same peak
    assert torch.equal(positions[i, 0], vis.positions[0, 0].cpu())
    crop = mis.rf_crops(s.data.images[i:i + 1], positions[i, :1], mis_field(s, (64, 64)))
    assert torch.allclose(crop[0], vis.images[0], atol=1e-6)


def test_wrong_explanations_score_at_or_below_chance(run) -> None:
    s, vis = run
    own = [vis.images[i * K:(i + 1) * K] for i in range(3)]
    sources = vis.indices.tolist()
    # the red_green unit's patches explaining the cross unit and vice versa (cross vs corner share lines)
    swapped = values(mis_rows(s, vis.units, [own[2], own[1], own[0]], [sources[2], sources[1], sources[0]], crop=False))
    assert swapped[[0, 2]].mean() < 0.5  # measured 0.25
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(256, generator=g)[:K]
    random = mis.rf_crops(s.data.images[idx], torch.randint(0, 16, (K, 2), generator=g), mis_field(s, (64, 64)))
    assert values(mis_rows(s, vis.units, [random] * 3, [idx.tolist()] * 3, crop=False)).mean() < 0.6  # measured 0.45


def test_synthetic_explanations_are_cropped_at_their_own_peak(run) -> None:
    """Gradient-ascent path (crop=True), with each unit's ground-truth stimulus on a grey 64 px canvas."""
    from experiments.zoo.planted import place_at_centre
    s, vis = run
    truth = torch.stack([place_at_centre("conv2", s.spec.ground_truth("conv2", u)) for u in range(3)])
    assert unit_peaks(s, truth)[1].diagonal(dim1=0, dim2=1).T.tolist() == [[16, 16]] * 3  # the centre unit
    own = values(mis_rows(s, vis.units, [truth[i:i + 1] for i in range(3)], [[]] * 3, crop=True))
    other = values(mis_rows(s, vis.units, [truth[[2, 0, 1][i]:][:1] for i in range(3)], [[]] * 3, crop=True))
    assert (own > other).all() and own.mean() > 0.6  # measured 0.55, 0.75, 0.7 vs 0.15, 0.5, 0.05
