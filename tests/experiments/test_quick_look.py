"""The README's quick look, exactly as a new user types it: one run of a method on resnet18 at default settings."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["occlusion", "gradient_ascent"])
def test_quick_look_on_resnet18_is_one_run_that_finishes(tmp_path: Path, method: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments.run", "model=resnet18", f"method={method}",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert (tmp_path / "DONE").exists() and not (tmp_path / "0").exists()  # one run, not a sweep
    assert set(df["layer"].dropna()) == {"conv1", "layer2.1.conv2", "layer3"}
    assert not df["metric"].str.startswith(("sanity", "seed_ssim", "mis_proxy")).any()  # metrics=fast
    timing = df[df["metric"].isin(["time_s", "metrics_time_s"])].pivot(index="layer", columns="metric", values="value")
    assert (timing > 0).all().all() and len(timing) == 3  # the method's time and the metrics' time, per layer
    assert "\x1b" not in proc.stdout + proc.stderr
