"""Aggregate run folders' metrics.csv into one table and print pivots: mean ± 95% CI over seeds and units, each
distinct result counted once (seeds that give the same value are one sample)."""
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
from experiments.timing import WORK_KINDS
from methods.base import invalid_choice

FORMATS = ("markdown", "csv", "latex", "html")
ARROWS = {"markdown": {"higher": "↑", "lower": "↓"}, "html": {"higher": "↑", "lower": "↓"},
          "latex": {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}}
BOLD = {"markdown": "**{}**", "html": "<b>{}</b>", "latex": r"\textbf{{{}}}"}
STRING_COLUMNS = ("run_id", "experiment", "method", "preset", "model", "weights", "data", "layer", "device",
                  "metric", "status")
COMMENT = {"markdown": "", "csv": "# ", "latex": "% ", "html": ""}
DASH = {"markdown": "—", "csv": "—", "latex": "---", "html": "—"}
DIGITS = 4  # significant digits of the text formats (csv: full precision unless asked)
TOLERANCE = {"rtol": 1e-9, "atol": 1e-12}  # values this close are one result
RUN_COLUMNS = ("seed", "run_id", "run_dir", "done", "resume", "progress")  # how runs of one config differ
COUNTS = ("degenerate", "flagged", "repeats", "runs", "same_seed", "layers", "layers_min")  # a cell's counts (_notes)
# Speed rows (unit None; timing.speed_rows, run.py's metrics_time_s), by name: seconds (*_s) are summed over a run's
# layers, memory (*_mem_mb) is the run's largest, throughput (<work>_per_s) the run's total work over its total time_s.
RATE_SUFFIXES = tuple(f"{kind}_per_s" for kind in WORK_KINDS)


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


def is_flagged(status: pd.Series) -> pd.Series:
    """Which statuses flag a kept value (counted and averaged like ok, listed with the reason; not a failure)."""
    return status.astype(str).str.startswith("flagged")


def is_usable(status: pd.Series) -> pd.Series:
    """Which rows' values enter the means: ok and flagged ones."""
    return (status == "ok") | is_flagged(status)


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
    """The ok, flagged and degenerate rows of the wanted metrics (all metrics when None); `strict`: each must have
    some."""
    degenerate = is_degenerate(df["status"])
    shown = df[is_usable(df["status"]) | degenerate]
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


def speed_kind(metric: pd.Series) -> pd.Series:
    """'seconds', 'memory', 'rate' or None per metric name: how a run's layers combine into one value."""
    name = metric.astype(str)
    rate = name.str.endswith(RATE_SUFFIXES)
    kinds = np.select([rate, name.str.endswith("_s"), name.str.endswith("_mem_mb")], ["rate", "seconds", "memory"],
                      default="")
    return pd.Series(kinds, index=metric.index, dtype=object).mask(kinds == "")


def _run_totals(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`df` with its speed rows (timing.speed_rows: unit None) made one per run and metric when layer is not a key:
    times summed over the run's layers, memory their largest, throughput the run's total work (rate x time_s per
    layer) over its total time_s; column `layers` counts the layers each such row stands for."""
    kind = speed_kind(df["metric"])
    speed = kind.notna() & df["unit"].isna() & is_usable(df["status"])
    if "layer" in keys or "layer" not in df or not speed.any():
        return df
    rows = df[speed]
    ident = [c for c in rows.columns if c not in ("layer", "value", "status", "metric")]
    times = rows.loc[rows["metric"] == "time_s", [*ident, "layer", "value"]].rename(columns={"value": "_time"})
    rows = rows.merge(times.drop_duplicates([*ident, "layer"]), on=[*ident, "layer"], how="left")
    rate = speed_kind(rows["metric"]) == "rate"
    rows["_work"] = (rows["value"] * rows["_time"]).where(rate)
    rows["_time"] = rows["_time"].where(rate)
    rows["_flag"] = rows["status"].where(is_flagged(rows["status"]))
    g = rows.groupby([*ident, "metric"], dropna=False, sort=False).agg(
        total=("value", "sum"), largest=("value", "max"), work=("_work", "sum"), time=("_time", "sum"),
        layers=("value", "size"), status=("_flag", "first")).reset_index()
    kind = speed_kind(g["metric"])
    with np.errstate(divide="ignore", invalid="ignore"):
        g["value"] = np.select([kind == "seconds", kind == "memory"], [g["total"], g["largest"]], g["work"] / g["time"])
    g["status"] = g["status"].fillna("ok")
    g["layer"] = np.nan
    totals = g[df.columns.tolist() + ["layers"]]
    return pd.concat([df[~speed], totals], ignore_index=True)


def _distinct(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`df` with results repeated across seeds kept once: ok or flagged rows of different runs that agree in every
    column but RUN_COLUMNS (unless a key), value and status, with values equal to TOLERANCE, become one row
    (flagged if any was); column `runs` counts the runs each row stands for (degenerate rows: 1, each counted) and
    `same_seed` says whether two of them had the same seed (the same run twice, e.g. two copies of a sweep)."""
    usable = is_usable(df["status"])
    run = next((c for c in ("run_dir", "run_id") if c in df), None)
    if run is None or not usable.any():
        return df.assign(runs=1, same_seed=False)
    rows = df[usable]
    ident = [c for c in rows.columns if c not in ("value", "status", "layers") and (c not in RUN_COLUMNS or c in keys)]
    per_run = ident if run in ident else [*ident, run]
    repeat = rows.groupby(per_run, dropna=False, sort=False).cumcount()  # a run's own duplicates stay apart
    group = rows.assign(_repeat=repeat).groupby([*ident, "_repeat"], dropna=False, sort=False).ngroup().to_numpy()
    values = rows["value"].to_numpy(dtype=float)
    order = np.lexsort((values, group))
    v, g = values[order], group[order]
    new = np.ones(len(v), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | ~np.isclose(v[1:], v[:-1], **TOLERANCE)
    cluster = np.cumsum(new) - 1
    ordered = rows.iloc[order]
    flag = ordered["status"].where(is_flagged(ordered["status"])).groupby(cluster).first().to_numpy()
    kept = ordered[new].assign(runs=np.bincount(cluster))
    seeds = ordered["seed"].groupby(cluster).nunique(dropna=False).to_numpy() if "seed" in ordered else kept["runs"]
    kept["same_seed"] = kept["runs"].to_numpy() > np.asarray(seeds)
    kept["status"] = np.where(pd.isna(flag), kept["status"].to_numpy(), flag)
    return pd.concat([kept, df[~usable].assign(runs=1, same_seed=False)]).sort_index()


def _long_summary(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: mean, std, ci (95% t half-width) and n of the distinct usable results (`_distinct`;
    speed rows per run, `_run_totals`); the counts of degenerate rows, flagged results and results repeated across
    seeds (`repeats`: rows not counted; `runs`: the most runs one result stands for; `same_seed`: results repeated
    by runs of one seed); and for speed rows the fewest and most layers a value combines (`layers_min`, `layers`)."""
    rows = _distinct(_run_totals(df, keys), keys)
    usable = is_usable(rows["status"])
    if "layers" not in rows:
        rows["layers"] = np.nan
    rows = rows.assign(ok_value=rows["value"].where(usable), degenerate=is_degenerate(rows["status"]),
                       flagged=is_flagged(rows["status"]), repeats=(rows["runs"] - 1).where(usable, 0),
                       runs=rows["runs"].where(usable), same_seed=rows["same_seed"].where(usable, False).astype(bool))
    g = rows.groupby(keys, dropna=False, sort=True).agg(
        mean=("ok_value", "mean"), std=("ok_value", "std"), n=("ok_value", "count"), degenerate=("degenerate", "sum"),
        flagged=("flagged", "sum"), repeats=("repeats", "sum"), runs=("runs", "max"), same_seed=("same_seed", "sum"),
        layers=("layers", "max"), layers_min=("layers", "min"))
    with np.errstate(divide="ignore", invalid="ignore"):
        g["ci"] = t_quantile(g["n"]) * g["std"] / np.sqrt(g["n"])
    return g[["mean", "ci", "n", "std", *COUNTS]]


def _wide(long: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Move the `cols` index levels into the columns: columns become (stat, *cols)."""
    return long.unstack(cols) if cols else long


def summarize(df: pd.DataFrame, rows: Sequence[str], cols: Sequence[str],
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Pivot of ok and flagged rows: index = `rows` levels, columns = (stat, *`cols`) with stat as `_long_summary`
    gives them.

    n counts distinct results: rows that differ only in seed (or run) and agree in value to TOLERANCE are one
    sample. Degenerate rows are counted, not averaged. Speed rows (time, memory, throughput: unit None) are one
    value per run and layer, so when layer is neither a row nor a column each run's layers are combined first
    (times summed, memory the largest, throughput total work / total time) and n counts runs: a mean ± CI over
    layers would mix different amounts of work.
    """
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
    """Per cell, mean(df) - mean(base) with a 95% Welch CI over distinct results (as in `summarize`); sig = CI
    excludes zero; df's degenerate rows, flagged and repeated results counted. Columns (stat, *cols)."""
    rows, cols = _levels(df, rows, cols)
    _levels(base, rows, cols)
    keys = rows + cols
    a = _long_summary(_select(df, metrics), keys)
    b = _long_summary(_select(base, metrics, strict=False), keys).reindex(a.index)
    diff, half = welch(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"])
    out = pd.DataFrame({"diff": diff, "ci": half, "n": a["n"], "n_base": b["n"], **a[list(COUNTS)]}, index=a.index)
    out["sig"] = np.abs(out["diff"]) > out["ci"]  # False where ci is NaN
    return _wide(out, cols)


def _num(x: float, digits: int = DIGITS) -> str:
    """A compact number: `digits` significant digits."""
    return "nan" if pd.isna(x) else f"{x:.{digits}g}"


def _shown(x: float, digits: int) -> float:
    """`x` rounded to `digits` significant digits, as the tables print it."""
    return float(_num(x, digits)) if np.isfinite(x) else x


def _below_precision(ci: float, ref: float, digits: int) -> bool:
    """Whether interval half-width `ci` is under half the last printed digit of `ref` (the mean or difference)."""
    ref = _shown(ref, digits)
    if not np.isfinite(ref) or ref == 0:
        return False
    return ci < 0.5 * 10.0 ** (np.floor(np.log10(abs(ref))) - digits + 1)


def _spread(ci: float, ref: float, digits: int) -> str:
    """The printed half-width: '0' when below the precision `ref` is printed to, '' without an interval."""
    if pd.isna(ci):
        return ""
    return "0" if _below_precision(ci, ref, digits) else _num(ci, digits)


def _combined(metric: object) -> str:
    """How a run's layers make one value of speed row `metric` (see `_run_totals`)."""
    kind = speed_kind(pd.Series([metric])).iloc[0]
    return {"seconds": "summed over", "memory": "max over"}.get(kind, "pooled over")


def _count(stat: dict, key: str) -> int:
    """A count stat of a cell (0 when missing)."""
    value = stat.get(key)
    return 0 if value is None or pd.isna(value) else int(value)


def _notes(stat: dict, metric: object) -> str:
    """', 2 seeds identical, 1 flagged, 3 degenerate, summed over 4 layers': what a cell's n does not say."""
    n, repeats, runs = _count(stat, "n"), _count(stat, "repeats"), _count(stat, "runs")
    noun = "runs" if _count(stat, "same_seed") else "seeds"
    notes = []
    if repeats == n * (runs - 1) > 0:  # every result the same in each of `runs` runs
        notes.append(f"{runs} {noun} identical")
    elif repeats:
        notes.append(f"{repeats} repeat{'s' if repeats > 1 else ''} across {noun}")
    notes += [f"{k} {word}" for word in ("flagged", "degenerate") if (k := _count(stat, word))]
    most, fewest = _count(stat, "layers"), _count(stat, "layers_min")
    if most > 1:
        notes.append(f"{_combined(metric)} {most if fewest == most else f'{fewest}-{most}'} layers")
    return "".join(f", {note}" for note in notes)


def _cell(stat: dict, fmt: str, digits: int = DIGITS, metric: object = None) -> str:
    """One table cell: 'mean ± ci (n=..)' or, for a baseline comparison, '+diff ± ci* (n=../..)', with what n does
    not say (`_notes`: '(n=6, 2 seeds identical, 2 degenerate)'; none ok: '— (0 ok, 4 degenerate)'); n counts
    distinct results."""
    n, bad = _count(stat, "n"), _count(stat, "degenerate")
    if n == 0:
        return f"{DASH[fmt]} (0 ok, {bad} degenerate)" if bad else ""
    pm = r"$\pm$" if fmt == "latex" else "±"
    ref = stat["diff"] if "diff" in stat else stat["mean"]
    spread = _spread(stat["ci"], ref, digits)
    spread = f" {pm} {spread}" if spread else ""  # n = 1: no interval
    note = _notes(stat, metric)
    if "diff" not in stat:
        return f"{_num(stat['mean'], digits)}{spread} (n={n}{note})"
    if pd.isna(stat["n_base"]):
        return "no baseline"
    mark = "*" if stat["sig"] else ""
    return f"{stat['diff']:+.{digits}g}{spread}{mark} (n={n}/{stat['n_base']:.0f}{note})"


def _metric_of(key: object, names: Sequence[str | None]) -> object:
    """The metric of an index key whose levels are `names`."""
    key = key if isinstance(key, tuple) else (key,)
    return key[list(names).index("metric")] if "metric" in names else None


def _cells(summary: pd.DataFrame, fmt: str, digits: int = DIGITS) -> pd.DataFrame:
    """Text cells: one per (row, column key), built from the stat level of `summary`'s columns."""
    if isinstance(summary.columns, pd.MultiIndex):
        stacked = summary.stack(list(range(1, summary.columns.nlevels)), future_stack=True)
        names = stacked.index.names
        text = stacked.apply(lambda r: _cell(r.to_dict(), fmt, digits, _metric_of(r.name, names)), axis=1)
        return text.unstack(list(range(len(summary.index.names), len(stacked.index.names))))
    names = summary.index.names
    return summary.apply(lambda r: _cell(r.to_dict(), fmt, digits, _metric_of(r.name, names)), axis=1).to_frame("value")


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


def _bold_best(summary: pd.DataFrame, cells: pd.DataFrame, fmt: str, digits: int = DIGITS) -> pd.DataFrame:
    """Cells with each row's best mean in bold (every tied best; none when all tie), where the row's metric says
    which way is better; means are compared as printed (`digits` significant digits)."""
    if "metric" not in cells.index.names or not isinstance(summary.columns, pd.MultiIndex) or cells.shape[1] < 2 \
            or "mean" not in summary.columns.get_level_values(0):
        return cells
    means = summary["mean"].reindex(index=cells.index, columns=cells.columns).map(lambda v: _shown(v, digits))
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


def _rounded(long: pd.DataFrame, digits: int) -> pd.DataFrame:
    """csv stats to `digits` significant digits, a ci below the precision of its mean or difference as 0."""
    out = long.copy()
    ref = "diff" if "diff" in out else "mean"
    if "ci" in out and ref in out:
        below = [_below_precision(c, r, digits) for c, r in zip(out["ci"], out[ref])]
        out.loc[below, "ci"] = 0.0
    for col in ("mean", "diff", "ci", "std"):
        if col in out:
            out[col] = out[col].map(lambda v: _shown(v, digits))
    return out


def format_table(summary: pd.DataFrame, fmt: str = "markdown", digits: int | None = None, best: bool = True) -> str:
    """Render `summarize` or `compare_to_baseline` output as markdown, csv (numbers, long), latex or html.

    Numbers have `digits` significant digits (None: 4; csv keeps full precision unless `digits` is given); an
    interval below the precision its mean is printed to shows as 0. Metric labels carry an arrow (↑ higher / ↓
    lower is better, from the metric registry) and, in a summary with `best`, each metric row's best mean across
    the columns is bold.
    """
    if fmt not in FORMATS:
        raise invalid_choice("format", fmt, FORMATS)
    if digits is not None and digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if fmt == "csv":
        long = summary
        if isinstance(summary.columns, pd.MultiIndex):
            long = summary.stack(list(range(1, summary.columns.nlevels)), future_stack=True).dropna(how="all")
        long = long if digits is None else _rounded(long, digits)
        return long.reset_index().to_csv(index=False)
    digits = DIGITS if digits is None else digits
    cells = _cells(summary, fmt, digits)
    cells = _bold_best(summary, cells, fmt, digits) if best else cells
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
    """Rows whose status is neither ok, flagged nor degenerate, one per run, method, layer, unit and status."""
    return _listed(df[~is_usable(df["status"]) & ~is_degenerate(df["status"])])


def degenerates(df: pd.DataFrame) -> pd.DataFrame:
    """Degenerate rows (labelled, not scored), one per run, method, layer, unit and status."""
    return _listed(df[is_degenerate(df["status"])])


def flagged_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Flagged rows (value kept, in the means), one per run, method, layer, unit, metric and status."""
    return _listed(df[is_flagged(df["status"])], ("metric",))


def _listed(rows: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """`rows` reduced to one per run, method, model, layer, unit, `extra` columns and status."""
    keys = [c for c in ("run_dir", "method", "model", "layer", "unit", *extra, "status") if c in rows.columns]
    return rows[keys].drop_duplicates().reset_index(drop=True)


def format_notes(df: pd.DataFrame, incomplete: Sequence[str | Path], fmt: str = "markdown") -> str:
    """Failed, flagged and degenerate rows and incomplete runs as lines to print under the table (commented for
    csv/latex)."""
    lines = []
    for title, listed in (("Failed rows ({}), not in the table:", failures(df)),
                          ("Flagged rows ({}), counted in the table's cells and means:", flagged_rows(df)),
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


def _digits(text: str) -> int:
    """--digits: a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    p.add_argument("--digits", type=_digits, help=f"significant digits (default: {DIGITS}; csv: full precision)")
    p.add_argument("--best", action=argparse.BooleanOptionalAction, default=True,
                   help="bold each row's best mean, by the metric's direction (default: on)")
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
    print(format_table(table, args.format, args.digits, args.best).rstrip("\n"))
    notes = format_notes(df, incomplete_runs(args.paths), args.format)
    if notes:
        print("\n" + notes)
    print(f"{COMMENT[args.format]}results: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
