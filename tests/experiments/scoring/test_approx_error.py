"""approx_max_abs_error: the approximate incremental occlusion map against the exact one, 0 where they agree."""
from __future__ import annotations

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.scoring import Scoring, applicable, score
from methods.base import Target

TARGET = Target("conv2", (0, 1))


def approx_rows(planted, approx: float | None) -> list[dict]:
    """The metric's rows for occlusion on planted conv2 at this threshold."""
    data = make_shapes(n=16, size=64, seed=3)
    params = {"window": 8, "stride": 4, "approx": approx}
    result = call_method("occlusion", planted, data, TARGET, params, RunOptions(n_images=1))
    s = Scoring.for_method("occlusion", planted, data, TARGET, params, RunOptions(n_images=1), enabled=["approx_max_abs_error"])
    assert ("approx_max_abs_error" in {m.name for m in applicable(s, result)}) == (approx is not None)
    return [r for r in score(s, result) if r["metric"] == "approx_max_abs_error"]


def test_a_threshold_that_caps_nothing_has_no_error_and_a_tight_one_has_some(planted) -> None:
    assert not approx_rows(planted, None)
    whole = approx_rows(planted, 1.0)
    tight = approx_rows(planted, 0.2)
    assert len(whole) == len(tight) == 2 and all(r.get("status", "ok") == "ok" for r in whole + tight)
    assert max(r["value"] for r in whole) <= 1e-5
    assert min(r["value"] for r in tight) > 1e-3
