"""A run's folder, shared by every experiment: context columns, atomic metrics.csv after each item, DONE."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments import tables


def output_dir(cfg: DictConfig) -> Path:
    """The run folder: Hydra's output dir inside an app, else cfg.output_dir (tests)."""
    if "output_dir" in cfg:
        return Path(cfg.output_dir)
    return Path(HydraConfig.get().runtime.output_dir)


def run_id(out: Path) -> str:
    """The run folder relative to the working directory when it lies below it (e.g. results/sweeps/<date>/<time>/3)."""
    try:
        return str(out.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(out)


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

    @property
    def done(self) -> bool:
        """Whether an earlier run finished in this folder."""
        return (self.path / "DONE").exists()

    def start(self) -> None:
        """Mark the folder as not finished (a rerun replaces what was there)."""
        (self.path / "DONE").unlink(missing_ok=True)

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows and rewrite metrics.csv, so a killed run keeps every finished item."""
        self.rows += list(rows)
        tables.write_csv_atomic(self.frame(), self.path / "metrics.csv")

    def frame(self) -> pd.DataFrame:
        """The table so far."""
        return tables.to_frame(self.rows, self.context)

    def finish(self, summary: Callable[[pd.DataFrame], str]) -> pd.DataFrame:
        """Write the table and DONE, print `summary(table)` and the folder; return the table."""
        df = self.frame()
        tables.write_csv_atomic(df, self.path / "metrics.csv")
        (self.path / "DONE").touch()
        print(summary(df))
        print(f"run folder: {self.path}")
        return df

    def previous(self) -> pd.DataFrame:
        """The table a finished earlier run left here."""
        return pd.read_csv(self.path / "metrics.csv")
