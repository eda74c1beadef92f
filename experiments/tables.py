"""The long-format results table and the arrays a run writes beside it (its pictures: experiments.pictures)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

COLUMNS = ["run_id", "experiment", "method", "preset", "model", "weights", "data", "layer", "unit", "seed",
           "device", "metric", "value", "status"]


def to_frame(rows: Iterable[dict[str, Any]], context: dict[str, Any]) -> pd.DataFrame:
    """Rows (each at least metric/value) merged with the run's context columns, required columns first."""
    df = pd.DataFrame([{**context, **row} for row in rows])
    for col in COLUMNS:
        if col not in df:
            df[col] = None
    df["status"] = df["status"].fillna("ok")
    mark_unearned(df)
    df["unit"] = df["unit"].astype("Int64")
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[COLUMNS + extra]


def not_a_number(metric: str) -> str:
    """The status of an ok row whose value is not a finite number, with no more specific reason known."""
    return f"degenerate: {metric} is not a number"


def mark_unearned(df: pd.DataFrame) -> pd.DataFrame:
    """Give every ok or flagged row whose value is not a finite number the not_a_number status, a flag's reason
    kept after it (in place; returns df)."""
    values = pd.to_numeric(df["value"], errors="coerce").astype(float)
    status = df["status"].astype(str)
    unearned = ((status == "ok") | status.str.startswith("flagged")) & ~np.isfinite(values)
    df.loc[unearned, "status"] = [not_a_number(m) if s == "ok" else f"{not_a_number(m)} ({s})"
                                  for m, s in zip(df.loc[unearned, "metric"], status[unearned])]
    return df


def failed(df: pd.DataFrame) -> pd.DataFrame:
    """The rows whose status says something failed (a target, a metric, a contender, the whole run); flagged and
    degenerate rows are not failures."""
    return df[df["status"].astype(str).str.startswith("failed")]


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write `df` to `path` through a temp file and a rename, so a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            df.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def safe_name(*parts: Any) -> str:
    """A file name from parts joined by '__' ('' becomes 'output')."""
    return "__".join(str(p) if str(p) else "output" for p in parts).replace("/", "-")


def save_arrays(obj: dict[str, Any], path: str | Path) -> None:
    """Save tensors (and plain values) with torch.save, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def summary_markdown(df: pd.DataFrame) -> str:
    """The table a run prints at its end: a row per metric, a column per layer (`layer=conv1`; `method=... /
    layer=...` when the table holds several methods; `layer=(run)` for values of the whole run).

    A per-unit metric's cell is its mean ± 95% CI over the layer's units, n and counts as in experiments.compare;
    a run-level row (time, memory, throughput, batch size: unit None) is the layer's own value (n=1), never an
    interval across layers. No bold: columns are layers, not contenders.
    """
    from experiments.compare import format_table, is_degenerate, is_usable, summarize  # compare imports this module
    shown = df[is_usable(df["status"]) | is_degenerate(df["status"])]
    if shown.empty:
        return "(no ok rows)"
    shown = shown.assign(layer=shown["layer"].map(lambda v: v if isinstance(v, str) and v else "(run)"))
    cols = ["method", "layer"] if shown["method"].nunique() > 1 else ["layer"]
    return format_table(summarize(shown, [], cols), "markdown", best=False)
