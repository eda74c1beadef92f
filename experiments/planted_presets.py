"""`python -m experiments.planted_presets [preset ...]`: gt_corr of gradient-ascent presets on planted conv2 units.

Each preset optimizes the centre neuron of planted conv2 units 0, 1, 2 (cross, corner, red-green) and is
scored against the unit's ground-truth stimulus inside its receptive field.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from experiments.adapters import RunOptions, call_method
from experiments.data.shapes import make_shapes
from experiments.scoring import Scoring, score
from experiments.zoo.planted import build_planted
from methods.base import Target

PRESETS = Path(__file__).resolve().parents[1] / "conf" / "method" / "gradient_ascent"


def preset_truth(name: str) -> list[float]:
    """gt_corr per planted conv2 unit for one preset."""
    spec, data = build_planted(), make_shapes(n=64, size=64, seed=7)
    target = Target("conv2", (0, 1, 2), kind="neuron")
    params = dict(OmegaConf.load(PRESETS / f"{name}.yaml").params)
    vis = call_method("gradient_ascent", spec, data, target, params, RunOptions())
    rows = score(Scoring.for_method("gradient_ascent", spec, data, target, params, enabled=["gt_corr"]), vis)
    return [float(r["value"]) for r in rows if r["metric"] == "gt_corr"]


def main(names: list[str]) -> None:
    """Print one line per preset (default: every preset file)."""
    for name in names or sorted(p.stem for p in PRESETS.glob("*.yaml")):
        start = time.perf_counter()
        values = preset_truth(name)
        print(f"{name}: gt_corr {' / '.join(f'{v:.2f}' for v in values)} (mean {np.mean(values):.2f}, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
