"""A run's folder, shared by every experiment: context columns, atomic metrics.csv after each item, DONE."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments import tables


def output_dir(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside an app, else cfg.output_dir (tests)."""
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def run_id(out: Path) -> str:
    """The run folder relative to the working directory when it lies below it (e.g. results/sweeps/<date>/<time>/3)."""
    try:
        return str(out.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(out)


IGNORED_ON_RESUME = ("resume", "progress")  # overrides that do not change what a run computes


class FolderRefused(ValueError):
    """The run folder belongs to another config (resume) or another sweep: nothing is written into it."""


def job_overrides() -> list[str]:
    """This job's Hydra overrides that change what it computes (all but resume and progress)."""
    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").partition("=")[0] not in IGNORED_ON_RESUME]


def overrides_columns() -> dict[str, str]:
    """One column per Hydra override of this job (e.g. {'model': 'planted', 'seed': '1'})."""
    if not HydraConfig.initialized():
        return {}
    cols = {}
    for item in HydraConfig.get().overrides.task:
        key, _, value = item.lstrip("+~").partition("=")
        if key not in tables.COLUMNS:
            cols[key] = value
    return cols


class RunFolder:
    """One run's results: every row gets the run's context columns; metrics.csv is rewritten atomically as
    items finish, and DONE marks a finished run."""

    def __init__(self, cfg: DictConfig, context: dict[str, Any]) -> None:
        self.path = output_dir(cfg)
        self.context = {"run_id": run_id(self.path), "experiment": cfg.experiment, "seed": cfg.seed, **context,
                        **overrides_columns()}
        self.rows: list[dict[str, Any]] = []
        self.overrides = job_overrides()

    @property
    def record(self) -> Path:
        """Where the folder keeps the overrides that made it (Hydra rewrites .hydra/overrides.yaml each run)."""
        return self.path / "vizbench_overrides.json"

    def resumed(self, resume: bool) -> pd.DataFrame | None:
        """With resume: the table of a finished earlier run to reuse (None: run again); a folder made with other
        overrides is refused in one line, before anything is written into it."""
        if not resume:
            return None
        if self.record.exists():
            before = json.loads(self.record.read_text(encoding="utf-8"))
            if before != self.overrides:
                changed = sorted(set(before) ^ set(self.overrides))
                raise FolderRefused(
                    f"resume=true: {self.path} was made with overrides [{' '.join(before)}], not "
                    f"[{' '.join(self.overrides)}] (differ: {' '.join(changed) or 'order'}); resume with the same "
                    f"overrides, or write to a new folder")
        return self.previous() if self.done else None

    @property
    def done(self) -> bool:
        """Whether an earlier run finished in this folder."""
        return (self.path / "DONE").exists()

    def start(self) -> None:
        """Mark the folder as not finished (a rerun replaces what was there) and record its overrides."""
        (self.path / "DONE").unlink(missing_ok=True)
        self._record()

    def _record(self) -> None:
        """Write the overrides that made this folder (what a later resume compares with)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.record.write_text(json.dumps(self.overrides), encoding="utf-8")

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows and rewrite metrics.csv, so a killed run keeps every finished item."""
        self.rows += list(rows)
        self._record()
        tables.write_csv_atomic(self.frame(), self.path / "metrics.csv")

    def frame(self) -> pd.DataFrame:
        """The table so far."""
        return tables.to_frame(self.rows, self.context)

    def finish(self, summary: Callable[[pd.DataFrame], str]) -> pd.DataFrame:
        """Write the table, and DONE when no row failed (so a resume retries failures); print `summary(table)`
        and the folder; return the table."""
        df = self.frame()
        tables.write_csv_atomic(df, self.path / "metrics.csv")
        if not len(tables.failed(df)):
            (self.path / "DONE").touch()
        print(summary(df))
        print(f"run folder: {self.path}")
        return df

    def previous(self) -> pd.DataFrame:
        """The table a finished earlier run left here."""
        return pd.read_csv(self.path / "metrics.csv")
