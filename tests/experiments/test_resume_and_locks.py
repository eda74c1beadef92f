"""Safe resume and sweep folders: failures are retried, a folder made by another config is refused, a sweep folder
in use by another sweep is refused, and a dead sweep's lock is taken over."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from experiments import run as run_module
from tests.conftest import make_tiny_cnn
from tests.experiments.test_bad_inputs import cli

SMALL = ["progress=false", "metrics=none", "data.n=16", "method=raw_weights"]


def test_a_failed_target_fails_the_run_and_resume_retries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capfd: pytest.CaptureFixture) -> None:
    real = run_module.visualize_target

    def broken(*args, **kwargs):
        raise RuntimeError("out of disk")

    monkeypatch.setattr(run_module, "visualize_target", broken)
    argv = ["hydra.mode=RUN", f"hydra.run.dir={tmp_path}", *SMALL]
    assert cli(argv, monkeypatch) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of disk" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "DONE").exists()
    assert pd.read_csv(tmp_path / "metrics.csv")["status"].str.startswith("failed: RuntimeError: out of disk").all()
    assert "Traceback" in (tmp_path / "run.log").read_text()

    monkeypatch.setattr(run_module, "visualize_target", real)
    assert cli([*argv, "resume=true"], monkeypatch) == 0
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert (tmp_path / "DONE").exists() and (table["status"] == "ok").all() and "weight_norm" in set(table["metric"])


def test_resume_refuses_a_folder_made_with_other_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capfd: pytest.CaptureFixture) -> None:
    argv = ["hydra.mode=RUN", f"hydra.run.dir={tmp_path}", *SMALL]
    assert cli([*argv, "seed=0"], monkeypatch) == 0
    before = (tmp_path / "metrics.csv").read_bytes()
    capfd.readouterr()
    assert cli([*argv, "seed=1", "resume=true"], monkeypatch) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another config" in err[0] and "seed=0" in err[0] and "seed=1" in err[0]
    assert (tmp_path / "metrics.csv").read_bytes() == before  # the other run's table is untouched
    hydra_record = (tmp_path / ".hydra" / "overrides.yaml").read_text()
    assert cli([*argv, "seed=1"], monkeypatch) == 1  # nor does a plain rerun with other overrides replace it
    assert (tmp_path / ".hydra" / "overrides.yaml").read_text() == hydra_record  # refused before Hydra wrote there
    assert "seed=0" in hydra_record
    assert cli([*argv, "seed=0", "resume=true"], monkeypatch) == 0  # the same overrides resume (nothing to do)


def test_a_job_refuses_a_folder_of_another_config_even_when_preflight_cannot_know_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    argv = ["hydra.mode=RUN", f"hydra.run.dir={tmp_path}", *SMALL]
    assert cli([*argv, "seed=0"], monkeypatch) == 0
    monkeypatch.setattr("experiments.preflight.folder_of", lambda cfg, job: None)
    capfd.readouterr()
    assert cli([*argv, "seed=1", "resume=true"], monkeypatch) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another config" in err[0]
    assert set(pd.read_csv(tmp_path / "metrics.csv")["seed"]) == {0}


def test_a_second_sweep_into_a_locked_folder_stops_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capfd: pytest.CaptureFixture) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".sweep.lock").write_text(f"{holder.pid} {socket.gethostname()}\n")
        code = cli(["-m", f"hydra.sweep.dir={tmp_path}", "model=planted", "seed=0,1", *SMALL], monkeypatch)
    finally:
        holder.kill()
        holder.wait()
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "in use" in err[0] and str(holder.pid) in err[0]
    assert not list(tmp_path.glob("*/metrics.csv")) and (tmp_path / ".sweep.lock").exists()


def test_a_dead_sweeps_lock_is_taken_over_and_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".sweep.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    assert cli(["-m", f"hydra.sweep.dir={tmp_path}", "model=planted", "seed=0,1", *SMALL], monkeypatch) == 0
    assert len(list(tmp_path.glob("*/DONE"))) == 2 and not (tmp_path / ".sweep.lock").exists()


def test_a_rerun_that_cannot_start_leaves_no_done_so_resume_retries_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capfd: pytest.CaptureFixture) -> None:
    checkpoint = tmp_path / "weights.pt"
    torch.save(make_tiny_cnn().state_dict(), checkpoint)
    out = tmp_path / "run"
    argv = ["hydra.mode=RUN", f"hydra.run.dir={out}", *SMALL, "model=custom", "model.input_size=32",
            "model.factory=tests.conftest.make_tiny_cnn", f"model.checkpoint={checkpoint}"]
    assert cli(argv, monkeypatch) == 0 and (out / "DONE").exists()
    checkpoint.write_bytes(b"damaged")
    assert cli(argv, monkeypatch) == 1
    assert not (out / "DONE").exists()  # the table now says the run failed; DONE must not say otherwise
    assert pd.read_csv(out / "metrics.csv")["metric"].tolist() == ["error"]
