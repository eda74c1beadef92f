"""Sweeps: one run folder per job with every launcher, failures recorded, resume skips finished jobs."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["method=raw_weights", "data.n=32", "metrics.enabled=[]", "progress=false"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m experiments.run ARGS` from the repo root."""
    return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HYDRA_FULL_ERROR": "0"})


def job_tables(sweep: Path) -> list[pd.DataFrame]:
    """Every job's metrics.csv in a sweep folder, in job order."""
    return [pd.read_csv(p) for p in sorted(sweep.glob("*/metrics.csv"), key=lambda p: int(p.parent.name))]


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_sweep_writes_one_run_folder_per_job(tmp_path: Path, launcher: str) -> None:
    extra = {"basic": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
             "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]}[launcher]
    proc = run_cli("-m", "model=planted,shapes_cnn", "seed=0,1", *SMALL, *extra, f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = job_tables(tmp_path)
    assert len(tables) == 4 and all((tmp_path / str(i) / "DONE").exists() for i in range(4))
    pairs = {(t.model[0], int(t.seed[0])) for t in tables}
    assert pairs == {("planted", 0), ("planted", 1), ("shapes_cnn", 0), ("shapes_cnn", 1)}
    assert all((t.status == "ok").all() for t in tables)
    assert (tmp_path / "results.parquet").exists()


def test_progress_piped_is_plain_lines_one_per_target_and_per_job(tmp_path: Path) -> None:
    quiet = [a for a in SMALL if a != "progress=false"]
    run = run_cli("model=planted", *quiet, f"hydra.run.dir={tmp_path / 'run'}")
    sweep = run_cli("-m", "model=planted", "seed=0,1", *quiet, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    for proc in (run, sweep):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "\x1b" not in proc.stdout + proc.stderr and "\r" not in proc.stderr  # no bars, no escape codes
    assert "raw_weights/default on planted [1/1] conv1: method" in run.stderr and "done in" in run.stderr
    jobs = [line for line in sweep.stderr.splitlines() if line.startswith("job ")]
    assert jobs[0] == "job 1/2: raw_weights/default on planted", sweep.stderr
    assert jobs[1].startswith("job 2/2: raw_weights/default on planted, ~") and jobs[1].endswith("left in the sweep")
    assert not (tmp_path / "run" / "1").exists()  # no hidden sweep: one run folder


def test_a_failed_job_fails_the_sweep_after_every_job_ran_and_the_tables_are_written(tmp_path: Path) -> None:
    proc = run_cli("-m", "model=planted", "target.layer=conv1,nope,conv1", "target.units=[0]", *SMALL,
                   f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    first, failed, last = job_tables(tmp_path)
    assert (first.status == "ok").all() and (last.status == "ok").all()
    assert "unknown layer 'nope'" in failed.status[0] and failed.status[0].startswith("failed: ")
    assert [p.parent.name for p in tmp_path.glob("*/DONE")] != [] and not (tmp_path / "1" / "DONE").exists()
    for name in ("summary.md", "results.parquet", "report.html"):
        assert (tmp_path / name).exists(), name
    assert "unknown layer 'nope'" in (tmp_path / "summary.md").read_text()
    assert "1 of 3 sweep jobs failed" in proc.stderr.splitlines()[-1]
    assert "Traceback" in (tmp_path / "1" / "run.log").read_text()  # the full story is in the job's log


def test_resume_runs_only_missing_jobs(tmp_path: Path) -> None:
    args = ["-m", "model=planted", "seed=0,1,2,3", *SMALL, f"hydra.sweep.dir={tmp_path}"]
    proc = subprocess.Popen([sys.executable, "-m", "experiments.run", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / "1" / "DONE").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob("*/DONE")}
    assert 2 <= len(done_before) < 4, "the sweep was not killed halfway"
    proc = run_cli(*args, "resume=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    done_after = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob("*/DONE")}
    assert set(done_after) == {"0", "1", "2", "3"}
    assert all(done_after[job] == mtime for job, mtime in done_before.items())


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = run_cli("model=torchvision", "model.name=resnet181", *SMALL, f"hydra.run.dir={tmp_path}", "hydra.mode=RUN")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error: unknown torchvision model 'resnet181'; did you mean resnet18" in proc.stderr


def test_misspelled_key_on_command_line(tmp_path: Path) -> None:
    proc = run_cli("model.wieghts=x", f"hydra.run.dir={tmp_path}", "hydra.mode=RUN")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "wieghts" in proc.stderr
