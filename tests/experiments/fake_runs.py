"""Synthetic run folders in the layout experiments.run writes, with values known in closed form."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from skimage import io

MODELS = ("resnet18", "alexnet")
METHODS = ("raw_weights", "gradient_ascent")
SEEDS = (0, 1)
UNITS = (0, 1, 2)
LAYER = "layer1.0.conv1"
BASE = {("resnet18", "raw_weights"): 0.5, ("resnet18", "gradient_ascent"): 0.7,
        ("alexnet", "raw_weights"): 0.2, ("alexnet", "gradient_ascent"): 0.9}
FAILED_STATUS = "failed: RuntimeError: CUDA out of memory"


def gt_corr(model: str, method: str, seed: int, unit: int, shift: float = 0.0) -> float:
    """The constructed gt_corr value of one unit."""
    return BASE[(model, method)] + 0.1 * seed + 0.01 * unit ** 2 + shift


def time_s(seed: int) -> float:
    """The constructed run-level time of a run."""
    return 1.0 + seed


def gt_values(model: str, method: str, shift: float = 0.0) -> np.ndarray:
    """Every gt_corr value of a (model, method) cell over seeds and units."""
    return np.array([gt_corr(model, method, s, u, shift) for s in SEEDS for u in UNITS])


def _row(run_id: str, model: str, method: str, seed: int, metric: str, value: float,
         layer: str = "", unit: int | str = "", status: str = "ok") -> dict:
    """One long-format row of the results schema."""
    return dict(run_id=run_id, experiment="default", method=method, preset="default", model=model,
                weights="null", data="shapes", layer=layer, unit=unit, seed=seed, device="cpu",
                metric=metric, value=value, status=status)


def _picture(path: Path, size: int, seed: int) -> None:
    """A small random RGB picture."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    io.imsave(path, rgb, check_contrast=False)


def _write_run(run: Path, rows: list[dict], done: bool, pictures: bool) -> None:
    """metrics.csv, .hydra files, optional DONE and pictures of one run folder."""
    (run / ".hydra").mkdir(parents=True)
    for name in ("config", "overrides", "hydra"):
        (run / ".hydra" / f"{name}.yaml").write_text("{}\n")
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    if done:
        (run / "DONE").touch()
    for i, (method, layer) in enumerate({(r["method"], r["layer"]) for r in rows if r["layer"]}):
        if pictures:
            _picture(run / "grids" / f"{method}__{layer}.png", 24, i)
            for unit in sorted({r["unit"] for r in rows if r["method"] == method and r["layer"] == layer}):
                _picture(run / "units" / f"{method}__{layer}__{unit}.png", 12, 100 * i + int(unit))


def make_sweep(root: Path, shift: dict[tuple[str, str], float] | None = None, pictures: bool = True) -> Path:
    """A sweep folder: 2 models x 2 methods x 2 seeds of ok runs, one failed run and one run without DONE.

    Each ok run has gt_corr per unit (3 units) and a run-level time_s; gradient_ascent runs also have an
    override column `lr` that the others lack. `shift` adds a constant to a (model, method) cell's gt_corr.
    """
    shift = shift or {}
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("{}\n")
    job = 0
    for model in MODELS:
        for method in METHODS:
            for seed in SEEDS:
                run_id = f"{root.name}/{job}"
                rows = [_row(run_id, model, method, seed, "gt_corr", gt_corr(model, method, seed, u,
                             shift.get((model, method), 0.0)), LAYER, u) for u in UNITS]
                rows.append(_row(run_id, model, method, seed, "time_s", time_s(seed)))
                if method == "gradient_ascent":
                    rows = [dict(r, lr=0.05) for r in rows]
                _write_run(root / str(job), rows, done=True, pictures=pictures)
                job += 1
    failed = [_row(f"{root.name}/{job}", "alexnet", "top_patches", 0, "time_s", float("nan"), LAYER, 0,
                   FAILED_STATUS)]
    _write_run(root / str(job), failed, done=True, pictures=False)
    incomplete = [_row(f"{root.name}/{job + 1}", "resnet18", "occlusion", 0, "gt_corr", 0.3 + 0.1 * u, LAYER, u)
                  for u in (0, 1)]
    _write_run(root / str(job + 1), incomplete, done=False, pictures=pictures)
    return root
