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


IGNORED = ("resume", "progress")  # overrides that do not change what a run computes
RECORD = "vizbench_overrides.json"  # the overrides that made a run folder (Hydra rewrites .hydra/ on every run)


class FolderRefused(ValueError):
    """The run folder belongs to another config, or another sweep writes into it: nothing is written into it."""


def computing(overrides: Iterable[str]) -> list[str]:
    """The overrides that change what a run computes (all but resume and progress)."""
    return [o for o in overrides if o.lstrip("+~").partition("=")[0] not in IGNORED]


def job_overrides() -> list[str]:
    """This job's Hydra overrides that change what it computes."""
    return computing(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def refuse_other_config(path: Path, overrides: list[str]) -> None:
    """One line if the folder at `path` was made with other overrides: a folder holds one config's results
    (a rerun or resume with the same overrides replaces or completes them)."""
    record = path / RECORD
    if not record.exists():
        return
    before = json.loads(record.read_text(encoding="utf-8"))
    if sorted(before) != sorted(overrides):
        changed = sorted(set(before) ^ set(overrides))
        raise FolderRefused(
            f"{path} holds the results of another config (overrides [{' '.join(before)}], not "
            f"[{' '.join(overrides)}]; differ: {' '.join(changed)}); rerun or resume=true with the same overrides, "
            "or choose another folder (hydra.run.dir / hydra.sweep.dir) or delete it")


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

    def resumed(self, resume: bool) -> pd.DataFrame | None:
        """With resume: the table of a finished earlier run to reuse (None: run). A folder made with other
        overrides is refused in one line, resume or not, before anything is written into it."""
        refuse_other_config(self.path, self.overrides)
        return self.previous() if resume and self.done else None

    @property
    def done(self) -> bool:
        """Whether an earlier run finished in this folder."""
        return (self.path / "DONE").exists()

    def start(self) -> None:
        """Mark the folder as not finished (a rerun replaces what was there) and record the overrides that made
        it (what a later run into it compares with)."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "DONE").unlink(missing_ok=True)
        (self.path / RECORD).write_text(json.dumps(self.overrides), encoding="utf-8")

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows and rewrite metrics.csv, so a killed run keeps every finished item."""
        self.rows += list(rows)
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
