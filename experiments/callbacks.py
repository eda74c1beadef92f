"""Hydra callback that aggregates a finished sweep: results.parquet, summary.md and report.html in its folder."""
from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments import tables
from experiments.compare import (find_runs, format_notes, format_table, incomplete_runs, load_results, save_results,
                                 summarize)
from experiments.progress import job_line
from experiments.report import natural_key, with_layer, write_report
from experiments.runfolder import FolderRefused
from methods.base import one_line

log = logging.getLogger(__name__)


def aggregate(sweep_dir: Path, rows: Sequence[str], cols: Sequence[str], metrics: Sequence[str] | None = None,
              report: bool = True) -> list[Path]:
    """Glob `sweep_dir` for run folders, write results.parquet, summary.md (and report.html); return the paths."""
    df = load_results([sweep_dir])
    table = format_table(summarize(df, rows, cols, metrics), "markdown")
    notes = format_notes(df, incomplete_runs([sweep_dir]), "markdown")
    summary = sweep_dir / "summary.md"
    summary.write_text(f"# Sweep {sweep_dir}\n\n{table}\n\n{notes}\n".rstrip() + "\n", encoding="utf-8")
    written = [save_results(df, sweep_dir), summary]
    if report:
        written.append(write_report(sweep_dir, with_layer(rows, cols), cols))
    return written


class SweepLock:
    """A sweep folder's lock file: one sweep writes into a folder at a time (a dead sweep's lock is taken over)."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / ".sweep.lock"
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise FolderRefused naming the sweep that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.path.read_text(encoding="utf-8").split()
                if len(holder) >= 2 and holder[1] == socket.gethostname() and not alive(int(holder[0])):
                    self.path.unlink(missing_ok=True)  # that sweep died without releasing it
                    continue
                who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another sweep"
                raise FolderRefused(f"sweep folder {self.path.parent} is in use by a sweep still writing into it "
                                    f"({who}); wait for it, choose another hydra.sweep.dir, or delete {self.path} "
                                    "if that sweep is gone") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            return

    def release(self) -> None:
        """Drop the lock if this process holds it."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def failed_runs(df: pd.DataFrame, sweep_dir: Path) -> list[str]:
    """The sweep's job folders with a failed row or without DONE (crashed, killed), relative to the sweep folder."""
    failed = {Path(p) for p in tables.failed(df)["run_dir"]} | set(incomplete_runs([sweep_dir]))
    return sorted((p.relative_to(sweep_dir).as_posix() for p in failed), key=natural_key)


class AggregateSweep(Callback):
    """Locks the sweep folder while the sweep runs; at its end aggregates every run folder below hydra.sweep.dir
    (results.parquet, summary.md, report.html, failed jobs listed) and exits non-zero if any job failed."""

    def __init__(self, rows: Sequence[str] = ("method", "preset"), cols: Sequence[str] = ("model",),
                 metrics: Sequence[str] | None = None, report: bool = True, show: Sequence[str] = ()) -> None:
        self.rows, self.cols = list(rows), list(cols)
        self.metrics = list(metrics) if metrics else None
        self.report = report
        self.show = list(show)  # metrics printed to the terminal at the end (all of them go to summary.md)
        self.lock: SweepLock | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Lock the sweep folder; a second sweep into it stops here in one line."""
        self.lock = SweepLock(Path(config.hydra.sweep.dir))
        try:
            self.lock.acquire()
        except FolderRefused as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep job's one line as it starts: which job of how many, what it runs, the sweep's time left."""
        hydra = HydraConfig.get()
        if hydra.mode == RunMode.MULTIRUN and config.get("method") is not None and config.get("progress", True):
            what = f"{config.method.name}/{config.method.preset} on {config.model.name or config.model.source}"
            print(job_line(hydra.job.num, what), file=sys.stderr, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the sweep's tables, unlock, and exit 1 when a job failed (its reason is in summary.md)."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            for path in aggregate(sweep_dir, self.rows, self.cols, self.metrics, self.report):
                log.info("wrote %s", path)
            df = load_results([sweep_dir])
            shown = [m for m in self.show if m in set(df["metric"])] or None
            print(format_table(summarize(df, self.rows, self.cols, shown), "markdown"))
            print(f"sweep folder: {sweep_dir}  (all metrics: summary.md, pictures: report.html)")
            failed = failed_runs(df, sweep_dir)
        except Exception as err:  # noqa: BLE001 - the jobs are done; say why their tables are not
            log.debug("aggregation failed", exc_info=True)
            failed = [f"aggregation ({one_line(err)})"]
        finally:
            if self.lock is not None:
                self.lock.release()
        if failed:
            jobs = len(find_runs([sweep_dir])) if sweep_dir.exists() else 0
            print(f"error: {len(failed)} of {jobs} sweep jobs failed or did not finish ({', '.join(failed[:3])}"
                  f"{', ...' if len(failed) > 3 else ''}); reasons in {sweep_dir / 'summary.md'}", file=sys.stderr)
            sys.exit(1)
