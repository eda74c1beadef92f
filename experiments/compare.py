"""Aggregate run folders' metrics.csv into one table and print pivots: mean ± 95% CI over seeds and units."""
from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats  # a dependency of scikit-image, so always present

from experiments.tables import mark_unearned
from methods.base import invalid_choice

FORMATS = ("markdown", "csv", "latex", "html")
ARROWS = {"markdown": {"higher": "↑", "lower": "↓"}, "html": {"higher": "↑", "lower": "↓"},
          "latex": {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}}
BOLD = {"markdown": "**{}**", "html": "<b>{}</b>", "latex": r"\textbf{{{}}}"}
STRING_COLUMNS = ("run_id", "experiment", "method", "preset", "model", "weights", "data", "layer", "device",
                  "metric", "status")
COMMENT = {"markdown": "", "csv": "# ", "latex": "% ", "html": ""}
DASH = {"markdown": "—", "csv": "—", "latex": "---", "html": "—"}


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders below `paths`: folders holding a metrics.csv or a .hydra/config.yaml."""
    runs: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"no such folder: {path}")
        runs.update(p.parent for p in path.glob("**/metrics.csv"))
        runs.update(p.parent.parent for p in path.glob("**/.hydra/config.yaml"))
    return sorted(runs)


def incomplete_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders below `paths` without a DONE marker (still running, killed, or crashed)."""
    return [run for run in find_runs(paths) if not (run / "DONE").exists()]


def _read_metrics(csv: Path) -> pd.DataFrame:
    """One run's metrics.csv with stable dtypes; 'null' stays a string (a weights tag), '' is missing."""
    dtypes = {c: str for c in STRING_COLUMNS}
    df = pd.read_csv(csv, dtype=dtypes, keep_default_na=False, na_values=["", "nan", "NaN"])
    for col in ("unit", "seed"):
        if col in df:
            try:
                df[col] = pd.to_numeric(df[col]).astype("Int64")
            except (ValueError, TypeError):
                pass  # non-integer units (none in the schema today): keep them as read
    df["run_dir"] = str(csv.parent)
    df["done"] = (csv.parent / "DONE").exists()
    return df


def load_results(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate every metrics.csv below `paths`, adding run_dir and done (DONE marker present) columns.

    An ok row whose value is not a finite number (tables written before scoring labelled them) is read as
    degenerate, so that it is counted as such rather than silently left out of a cell's n.
    """
    csvs: dict[Path, Path] = {}  # resolved -> as found, so nested or repeated paths read each file once
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"no such folder: {path}")
        found = sorted(path.glob("**/metrics.csv"))
        if not found:
            raise ValueError(f"no metrics.csv found under {path}")
        csvs.update((csv.resolve(), csv) for csv in found if csv.resolve() not in csvs)
    df = pd.concat([_read_metrics(csv) for csv in csvs.values()], ignore_index=True)
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return mark_unearned(df)


def is_degenerate(status: pd.Series) -> pd.Series:
    """Which statuses say the row's unit or value is degenerate (labelled, not scored)."""
    return status.astype(str).str.startswith("degenerate")


def save_results(df: pd.DataFrame, out: str | Path) -> Path:
    """Write `df` to parquet (`out` is a .parquet file or a folder to hold results.parquet); return the path."""
    out = Path(out)
    if out.suffix != ".parquet":
        out = out / "results.parquet"
    safe = df.copy()
    for col in safe.columns[safe.dtypes == object]:  # mixed types across runs: arrow needs one type
        safe[col] = safe[col].map(lambda v: v if pd.isna(v) else str(v))
    safe.to_parquet(out, index=False)
    return out


def _split(arg: Sequence[str] | str | None) -> list[str]:
    """'a,b' or ['a', 'b,c'] -> ['a', 'b', 'c'] (None -> [])."""
    if arg is None:
        return []
    items = [arg] if isinstance(arg, str) else list(arg)
    return [s.strip() for item in items for s in item.split(",") if s.strip()]


def _levels(df: pd.DataFrame, rows: Sequence[str], cols: Sequence[str]) -> tuple[list[str], list[str]]:
    """Check row/column names against `df`; metric becomes a row level unless placed by the caller."""
    rows, cols = list(rows), list(cols)
    for name, levels in (("rows", rows), ("cols", cols)):
        for col in levels:
            if col not in df.columns:
                raise invalid_choice(f"--{name} column", col, [c for c in df.columns if c not in ("value", "done")])
    if "metric" not in rows + cols:
        rows.append("metric")
    if not rows:
        raise ValueError("--rows needs at least one column (put metric there, or any other column)")
    return rows, cols


def _select(df: pd.DataFrame, metrics: Sequence[str] | None, strict: bool = True) -> pd.DataFrame:
    """The ok and degenerate rows of the wanted metrics (all metrics when None); `strict`: each must have some."""
    degenerate = is_degenerate(df["status"])
    shown = df[(df["status"] == "ok") | degenerate]
    metrics = _split(metrics)
    unknown = sorted(set(metrics) - set(shown["metric"]))
    if unknown and strict:
        which = " (the metrics with ok or degenerate rows)" if degenerate.any() else " (the metrics with ok rows)"
        raise invalid_choice("--metric", unknown[0], sorted(shown["metric"].unique()), which)
    return shown[shown["metric"].isin(metrics)] if metrics else shown


def t_quantile(n: np.ndarray | pd.Series | float) -> np.ndarray:
    """Two-sided 95% Student t quantile for `n` - 1 degrees of freedom (NaN for n < 2)."""
    dof = np.asarray(n, dtype=float) - 1
    return np.where(dof >= 1, stats.t.ppf(0.975, np.maximum(dof, 1)), np.nan)


def _long_summary(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """mean, std, ci (95% t half-width) and n of the ok rows' `value`, and the count of degenerate rows, per group
    of `keys`."""
    rows = df.assign(ok_value=df["value"].where(df["status"] == "ok"), degenerate=is_degenerate(df["status"]))
    g = rows.groupby(keys, dropna=False, sort=True).agg(mean=("ok_value", "mean"), std=("ok_value", "std"),
                                                        n=("ok_value", "count"), degenerate=("degenerate", "sum"))
    with np.errstate(divide="ignore", invalid="ignore"):
        g["ci"] = t_quantile(g["n"]) * g["std"] / np.sqrt(g["n"])
    return g[["mean", "ci", "n", "std", "degenerate"]]


def _wide(long: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Move the `cols` index levels into the columns: columns become (stat, *cols)."""
    return long.unstack(cols) if cols else long


def summarize(df: pd.DataFrame, rows: Sequence[str], cols: Sequence[str],
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Pivot of ok rows: index = `rows` levels, columns = (stat, *`cols`) with stat in mean, ci, n, std, and
    degenerate (the cell's degenerate rows, counted, not averaged)."""
    rows, cols = _levels(df, rows, cols)
    return _wide(_long_summary(_select(df, metrics), rows + cols), cols)


def welch(mean_a, std_a, n_a, mean_b, std_b, n_b) -> tuple[np.ndarray, np.ndarray]:
    """Difference of means a - b and its 95% Welch t half-width (NaN where a side has n < 2)."""
    va, vb = np.asarray(std_a, float) ** 2 / n_a, np.asarray(std_b, float) ** 2 / n_b
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        dof = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        half = np.where(se > 0, stats.t.ppf(0.975, dof) * se, 0.0)  # no spread on either side: exact
    half = np.where(np.isnan(se), np.nan, half)
    return np.asarray(mean_a, float) - np.asarray(mean_b, float), half


def compare_to_baseline(df: pd.DataFrame, base: pd.DataFrame, rows: Sequence[str], cols: Sequence[str],
                        metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per cell, mean(df) - mean(base) with a 95% Welch CI; sig = CI excludes zero; degenerate rows of df counted.
    Columns (stat, *cols)."""
    rows, cols = _levels(df, rows, cols)
    _levels(base, rows, cols)
    keys = rows + cols
    a = _long_summary(_select(df, metrics), keys)
    b = _long_summary(_select(base, metrics, strict=False), keys).reindex(a.index)
    diff, half = welch(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"])
    out = pd.DataFrame({"diff": diff, "ci": half, "n": a["n"], "n_base": b["n"], "degenerate": a["degenerate"]},
                       index=a.index)
    out["sig"] = np.abs(out["diff"]) > out["ci"]  # False where ci is NaN
    return _wide(out, cols)


def _num(x: float) -> str:
    """A compact number: 4 significant digits."""
    return "nan" if pd.isna(x) else f"{x:.4g}"


def _cell(stat: dict, fmt: str) -> str:
    """One table cell: 'mean ± ci (n=..)' or, for a baseline comparison, '+diff ± ci* (n=../..)', with the cell's
    degenerate rows counted ('(n=6, 2 degenerate)'; none ok: '— (0 ok, 4 degenerate)')."""
    n, bad = (0 if pd.isna(stat.get(k)) else int(stat.get(k)) for k in ("n", "degenerate"))
    if n == 0:
        return f"{DASH[fmt]} (0 ok, {bad} degenerate)" if bad else ""
    pm = r"$\pm$" if fmt == "latex" else "±"
    spread = "" if pd.isna(stat["ci"]) else f" {pm} {_num(stat['ci'])}"  # n = 1: no interval
    note = f", {bad} degenerate" if bad else ""
    if "diff" not in stat:
        return f"{_num(stat['mean'])}{spread} (n={n}{note})"
    if pd.isna(stat["n_base"]):
        return "no baseline"
    mark = "*" if stat["sig"] else ""
    return f"{stat['diff']:+.4g}{spread}{mark} (n={n}/{stat['n_base']:.0f}{note})"


def _cells(summary: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """Text cells: one per (row, column key), built from the stat level of `summary`'s columns."""
    if isinstance(summary.columns, pd.MultiIndex):
        stacked = summary.stack(list(range(1, summary.columns.nlevels)), future_stack=True)
        text = stacked.apply(lambda r: _cell(r.to_dict(), fmt), axis=1)
        return text.unstack(list(range(len(summary.index.names), len(stacked.index.names))))
    return summary.apply(lambda r: _cell(r.to_dict(), fmt), axis=1).to_frame("value")


def _label(v: object) -> str:
    """An index label for display ('' for missing, e.g. the layer of run-level values)."""
    return "" if pd.isna(v) else str(v)


def _flat_columns(columns: pd.Index) -> list[str]:
    """Column keys as 'name=value / name=value' ('value' alone when there are no column levels)."""
    if columns.names == [None]:
        return [_label(c) for c in columns]
    keys = columns if isinstance(columns, pd.MultiIndex) else [(c,) for c in columns]
    return [" / ".join(f"{n}={_label(v)}" for n, v in zip(columns.names, key)) for key in keys]


def _direction(metric: object) -> str | None:
    """Which way metric `metric` is better (the metric registry's word), None when not declared or descriptive."""
    from experiments.scoring import better  # the registry imports the metrics and methods: only when formatting
    d = better(str(metric))
    return d if d in ("higher", "lower") else None


def _bold_best(summary: pd.DataFrame, cells: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """Cells with each row's best mean in bold (every tied best; none when all tie), where the row's metric says
    which way is better."""
    if "metric" not in cells.index.names or not isinstance(summary.columns, pd.MultiIndex) or cells.shape[1] < 2 \
            or "mean" not in summary.columns.get_level_values(0):
        return cells
    means = summary["mean"].reindex(index=cells.index, columns=cells.columns)
    out = cells.copy()
    level = cells.index.names.index("metric")
    for row, values in means.iterrows():
        direction = _direction(row[level] if isinstance(row, tuple) else row)
        if direction is None or values.nunique() < 2:  # nothing to compare, or every column ties
            continue
        best = values.max() if direction == "higher" else values.min()
        for col in values.index[values == best]:
            out.loc[row, col] = BOLD[fmt].format(out.loc[row, col])
    return out


def metric_label(metric: str, fmt: str) -> str:
    """A metric label with ↑ (higher is better) or ↓ (lower is better); metric names are identifiers, so in
    latex only their underscores need escaping."""
    label = metric.replace("_", r"\_") if fmt == "latex" else metric
    arrow = ARROWS[fmt].get(_direction(metric) or "", "")
    return f"{label} {arrow}" if arrow else label


def format_table(summary: pd.DataFrame, fmt: str = "markdown") -> str:
    """Render `summarize` or `compare_to_baseline` output as markdown, csv (numbers, long), latex or html.

    Metric labels carry an arrow (↑ higher / ↓ lower is better, from the metric registry) and, in a summary,
    each metric row's best mean across the columns is bold.
    """
    if fmt not in FORMATS:
        raise invalid_choice("format", fmt, FORMATS)
    if fmt == "csv":
        long = summary
        if isinstance(summary.columns, pd.MultiIndex):
            long = summary.stack(list(range(1, summary.columns.nlevels)), future_stack=True).dropna(how="all")
        return long.reset_index().to_csv(index=False)
    cells = _bold_best(summary, _cells(summary, fmt), fmt)
    cells.columns = _flat_columns(cells.columns)
    table = cells.reset_index()
    for name in cells.index.names:
        table[name] = table[name].map(_label)
    if "metric" in table:
        table["metric"] = table["metric"].map(lambda m: metric_label(m, fmt))
    if fmt == "markdown":
        return table.to_markdown(index=False)
    if fmt == "html":
        return table.map(lambda v: v if str(v).startswith("<b>") else escape(str(v))).to_html(
            index=False, na_rep="", border=0, escape=False)
    styler = table.style.hide(axis="index").format_index(escape="latex", axis=1)
    styler = styler.format(escape="latex", subset=[n for n in cells.index.names if n != "metric"], na_rep="")
    return styler.to_latex(hrules=True)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is neither ok nor degenerate, one per run, method, layer, unit and status."""
    return _listed(df[(df["status"] != "ok") & ~is_degenerate(df["status"])])


def degenerates(df: pd.DataFrame) -> pd.DataFrame:
    """Degenerate rows (labelled, not scored), one per run, method, layer, unit and status."""
    return _listed(df[is_degenerate(df["status"])])


def _listed(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` reduced to one per run, method, model, layer, unit and status."""
    keys = [c for c in ("run_dir", "method", "model", "layer", "unit", "status") if c in rows.columns]
    return rows[keys].drop_duplicates().reset_index(drop=True)


def format_notes(df: pd.DataFrame, incomplete: Sequence[str | Path], fmt: str = "markdown") -> str:
    """Failed and degenerate rows and incomplete runs as lines to print under the table (commented for csv/latex)."""
    lines = []
    for title, listed in (("Failed rows ({}), not in the table:", failures(df)),
                          ("Degenerate rows ({}), counted in the table's cells, not in their means:", degenerates(df))):
        if len(listed):
            lines.append(title.format(len(listed)))
            lines += [f"- {_where(row)}: {row['status']}" for row in listed.to_dict("records")]
    if incomplete:
        lines.append(f"Incomplete runs ({len(incomplete)}, no DONE marker: a row failed, or killed, or still running; "
                     "their ok rows are in the table):")
        lines += [f"- {run}" for run in incomplete]
    return "\n".join(COMMENT[fmt] + line for line in lines)


def _where(row: dict) -> str:
    """'key=value, ...' of a listed row, without its status."""
    return ", ".join(f"{k}={_label(v)}" for k, v in row.items() if k != "status")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__)
    p.add_argument("paths", nargs="+", help="run or sweep folders (every metrics.csv below them is read)")
    p.add_argument("--rows", default="method,preset", help="comma list of row columns (default: method,preset)")
    p.add_argument("--cols", default="model", help="comma list of column columns ('' for none; default: model)")
    p.add_argument("--metric", action="append", help="metric(s) to show, repeatable or comma list (default: all)")
    p.add_argument("--format", default="markdown", choices=FORMATS)
    p.add_argument("--baseline", help="folder of another result set: show differences against it")
    p.add_argument("--out", help="where to write results.parquet (a folder or .parquet file; default: first path)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Load, save results.parquet, print the pivot and the failed/incomplete notes."""
    args = parse_args(argv)
    try:
        df = load_results(args.paths)
        rows, cols, metrics = _split(args.rows), _split(args.cols), _split(args.metric) or None
        if args.baseline:
            table = compare_to_baseline(df, load_results([args.baseline]), rows, cols, metrics)
        else:
            table = summarize(df, rows, cols, metrics)
        out = save_results(df, args.out or args.paths[0])
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(format_table(table, args.format).rstrip("\n"))
    notes = format_notes(df, incomplete_runs(args.paths), args.format)
    if notes:
        print("\n" + notes)
    print(f"{COMMENT[args.format]}results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
