"""Hydra callback that aggregates a finished sweep: results.parquet, summary.md and report.html in its folder."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.compare import (format_notes, format_table, incomplete_runs, load_results, save_results,
                                 summarize)
from experiments.report import write_report

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
        written.append(write_report(sweep_dir, rows, cols))
    return written


class AggregateSweep(Callback):
    """on_multirun_end: aggregate every run folder below hydra.sweep.dir (jobs' returns are not used)."""

    def __init__(self, rows: Sequence[str] = ("method", "preset"), cols: Sequence[str] = ("model",),
                 metrics: Sequence[str] | None = None, report: bool = True, show: Sequence[str] = ()) -> None:
        self.rows, self.cols = list(rows), list(cols)
        self.metrics = list(metrics) if metrics else None
        self.report = report
        self.show = list(show)  # metrics printed to the terminal at the end (all of them go to summary.md)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the sweep's tables; a failure is logged, not raised, since the runs themselves are done."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            for path in aggregate(sweep_dir, self.rows, self.cols, self.metrics, self.report):
                log.info("wrote %s", path)
            df = load_results([sweep_dir])
            shown = [m for m in self.show if m in set(df["metric"])] or None
            print(format_table(summarize(df, self.rows, self.cols, shown), "markdown"))
            print(f"sweep folder: {sweep_dir}  (all metrics: summary.md, pictures: report.html)")
        except ValueError as e:
            log.error("sweep aggregation failed for %s: %s", sweep_dir, e)
