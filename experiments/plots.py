"""Matplotlib plots of a results table: metric by depth, randomization curves, gradient-ascent curves, speed bars.

Each plot function takes a table as `experiments.compare.load_results` returns it and an output folder, writes
every figure it draws as PNG and SVG (same stem) and returns the PNG paths (none when the table has no rows for
it). Each plot is three layers, so that what is drawn can be tested without reading images: `<plot>_series`
(the tidy table of plotted points), `<plot>_figure` (a matplotlib Figure of one such table) and the plot function
(series -> figures -> files). Figures are drawn on the Agg canvas directly (no pyplot, no global backend).

    python -m experiments.plots <sweep or run folder>... [--out FOLDER]   # every plot that applies
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.compare import is_usable, load_results, metric_label, t_quantile
from experiments.gallery.catalog import OUTPUT, depth_order, layer_names, run_key
from experiments.tables import safe_name

CASCADE_METRICS = ("cascade_ssim", "cascade_ssim_abs", "cascade_spearman", "cascade_spearman_abs", "cascade_hog_abs")
WORK_PRIORITY = ("perturbations", "images", "units")  # the finest kind of work a contender reports is its unit
RATIOS = ("vs_bare", "vs_peer")
NOT_CONTEXT = {"run_id", "run_dir", "done", "seed", "experiment", "model", "method", "preset", "layer", "unit",
               "metric", "value", "status", "device"}
DPI = 150


# ---------------------------------------------------------------- shared helpers


def save(fig: Figure, out: str | Path, stem: str) -> Path:
    """Write `fig` as <out>/<stem>.png and .svg; return the PNG path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    png = out / f"{stem}.png"
    fig.savefig(png, dpi=DPI)
    fig.savefig(png.with_suffix(".svg"), metadata={"Date": None})
    return png


def mean_ci(values: pd.Series) -> pd.Series:
    """Mean, 95% Student t half-width (0 for a single value) and count of the finite values."""
    v = pd.to_numeric(values, errors="coerce").dropna()
    v = v[np.isfinite(v)]
    n = len(v)
    half = float(t_quantile(n) * v.std() / math.sqrt(n)) if n >= 2 else 0.0
    return pd.Series({"mean": v.mean() if n else math.nan, "ci": half, "n": n})


def line_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's line: method, `/preset` where the table has several presets of that method, then any other run
    setting that varies between runs (an override swept), as `key=value`."""
    method = df["method"].astype(str)
    preset = df["preset"].astype(str) if "preset" in df else pd.Series("", index=df.index)
    several = preset.groupby(method).transform("nunique") > 1
    label = method.where(~several, method + "/" + preset)
    for col in varying_settings(df):
        label = label + f" {col}=" + df[col].astype(str)
    return label


def varying_settings(df: pd.DataFrame) -> list[str]:
    """Run-level setting columns (constant within each run, not the schema's own) that differ between runs of the
    same model, method and preset (an override swept)."""
    key = run_key(df)
    if key.nunique() < 2:
        return []
    cols = [c for c in df.columns if c not in NOT_CONTEXT and not c.startswith("_")]
    text = df[cols].astype(str)
    constant = [c for c in cols if (text.groupby(key.values)[c].nunique() <= 1).all()]
    if not constant:
        return []
    ids = [c for c in ("model", "method", "preset") if c in df]
    runs = pd.concat([df[ids].astype(str), text[constant]], axis=1).groupby(key.values).first()
    differs = runs.groupby(ids)[constant].nunique().max() if ids else runs[constant].nunique()
    return [c for c in constant if differs[c] > 1]


def _title(metric: str) -> str:
    """A metric name with its better-direction arrow, where the registry declares one."""
    try:
        return metric_label(metric, "markdown")
    except ImportError:
        return metric


def _grid(n: int, ncols: int, panel: tuple[float, float], extra_h: float = 0.6) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure of n panels in rows of ncols; returns it and the n axes (the rest removed)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + extra_h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _band(ax: Axes, x: Sequence[float], s: pd.DataFrame, label: str, color: tuple, ls: str = "-") -> None:
    """A mean line with markers and its 95% CI band."""
    ax.plot(x, s["mean"], marker="o", ms=3, lw=1.4, label=label, color=color, ls=ls)
    ax.fill_between(x, s["mean"] - s["ci"], s["mean"] + s["ci"], alpha=0.2, color=color, lw=0)


def _colors(labels: Iterable[str]) -> dict[str, tuple]:
    """A stable colour per line label (tab10, then tab20)."""
    from matplotlib import colormaps
    labels = list(dict.fromkeys(labels))
    if len(labels) <= 10:
        return {l: colormaps["tab10"](i) for i, l in enumerate(labels)}
    tab20 = [colormaps["tab20"](i) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # the 10 strong ones first
    return {l: tab20[i % 20] for i, l in enumerate(labels)}


def _legend(fig: Figure, axes: list[Axes]) -> None:
    """One legend for the figure, above the panels, of every labelled line."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(l, h)
    if seen:
        per_row = max(1, int(fig.get_figwidth() // 2.6))  # about 2.6 inches a label, so the legend fits the figure
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), per_row),
                   fontsize="small", frameon=False)


# ---------------------------------------------------------------- 1. metric by depth


def depth_series(df: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (model, metric, line, layer): mean, 95% CI and n over units and seeds of the ok unit rows, with the
    layer's depth (0 = nearest the input, see `depth_order`); metrics measured at a single layer are left out."""
    cols = ["model", "metric", "line", "depth", "layer", "mean", "ci", "n"]
    if df.empty or "unit" not in df:
        return pd.DataFrame(columns=cols)
    order = depth_order(df)
    rows = df[df["unit"].notna() & is_usable(df["status"]) & ~df["metric"].astype(str).str.startswith("cascade_")]
    if metrics is not None:
        rows = rows[rows["metric"].isin(metrics)]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.assign(line=line_labels(rows), layer=layer_names(rows))
    out = rows.groupby(["model", "metric", "line", "layer"], sort=False)["value"].apply(mean_ci).unstack().reset_index()
    out = out[out["n"] > 0]
    out["depth"] = [order[str(m)].index(l) for m, l in zip(out["model"], out["layer"])]
    layers = out.groupby(["model", "metric"])["layer"].transform("nunique")
    out = out[layers > 1]
    return out[cols].sort_values(["model", "metric", "line", "depth"], ignore_index=True)


def depth_figure(series: pd.DataFrame, model: str, ncols: int = 4) -> Figure:
    """Small multiples for one model: a panel per metric, its mean against layer depth, a line per method."""
    s = series[series["model"] == model]
    metrics = list(dict.fromkeys(s["metric"]))
    colors = _colors(s["line"])
    fig, axes = _grid(len(metrics), ncols, (3.4, 2.6))
    for ax, metric in zip(axes, metrics):
        m = s[s["metric"] == metric]
        for label, line in m.groupby("line", sort=False):
            _band(ax, line["depth"].to_numpy(), line, label, colors[label])
        ticks = m.drop_duplicates("depth").sort_values("depth")
        ax.set_xticks(ticks["depth"], ticks["layer"], rotation=45, ha="right", fontsize="x-small")
        ax.set_title(_title(metric), fontsize="small")
        ax.tick_params(axis="y", labelsize="x-small")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{model}: metrics by layer depth (mean ± 95% CI over units and seeds)", fontsize="medium")
    _legend(fig, axes)
    return fig


def metric_by_depth(df: pd.DataFrame, out: str | Path, metrics: Sequence[str] | None = None) -> list[Path]:
    """One small-multiples figure per model, `metric_by_depth__<model>`: each quality metric against depth."""
    series = depth_series(df, metrics)
    return [save(depth_figure(series, model), out, safe_name("metric_by_depth", model))
            for model in dict.fromkeys(series["model"])]


# ---------------------------------------------------------------- 2. randomization curve


def is_floor(method: str, preset: str) -> bool:
    """Whether a line is a random floor: its preset names another registered method, the one it stands in for."""
    from experiments.adapters import registry
    return preset != method and preset in registry()


def cascade_series(df: pd.DataFrame) -> pd.DataFrame:
    """Per (model, target layer, cascade metric, line, randomized_depth): mean, 95% CI and n over units and seeds,
    with the layer the model was randomized from, sorted by depth (the order the cascade goes down)."""
    cols = ["model", "layer", "metric", "line", "method", "preset", "randomized_depth", "randomized_from", "mean", "ci",
            "n"]
    if df.empty or not {"randomized_depth", "randomized_from"} <= set(df.columns):
        return pd.DataFrame(columns=cols)
    rows = df[df["metric"].astype(str).str.startswith("cascade_") & is_usable(df["status"])
              & df["randomized_depth"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    rows = rows.assign(line=line_labels(rows), layer=layer_names(rows),
                       randomized_depth=pd.to_numeric(rows["randomized_depth"]).astype(int))
    names = rows.groupby(["model", "layer", "randomized_depth"])["randomized_from"].first()  # depth k: per target
    keys = ["model", "layer", "metric", "line", "method", "preset", "randomized_depth"]
    out = rows.groupby(keys, sort=False, dropna=False)["value"].apply(mean_ci)
    out = out.unstack().reset_index()
    out["randomized_from"] = [names[key] for key in zip(out["model"], out["layer"], out["randomized_depth"])]
    out = out[out["n"] > 0]
    known = {m: i for i, m in enumerate(CASCADE_METRICS)}
    out["_m"] = [known.get(m, len(known)) for m in out["metric"]]
    order = depth_order(df)
    out["_d"] = [order[str(m)].index(l) for m, l in zip(out["model"], out["layer"])]  # target layers input first
    out = out.sort_values(["model", "_d", "_m", "metric", "line", "randomized_depth"], ignore_index=True)
    return out[cols]


def cascade_figure(series: pd.DataFrame, model: str) -> Figure:
    """Adebayo et al. 2018 Fig. 2 for one model: a panel per (target layer, cascade metric), similarity to the
    original result against how far down the model was randomized, a line per method, dashed 0."""
    s = series[series["model"] == model]
    layers, metrics = list(dict.fromkeys(s["layer"])), list(dict.fromkeys(s["metric"]))
    colors = _colors(s["line"])
    fig = Figure(figsize=(max(6.4, 3.2 * len(metrics)), 2.9 * len(layers) + 0.7), layout="constrained")
    axes = fig.subplots(len(layers), len(metrics), squeeze=False, sharex="row")
    for i, layer in enumerate(layers):
        ticks = s[s["layer"] == layer].drop_duplicates("randomized_depth").sort_values("randomized_depth")
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            m = s[(s["layer"] == layer) & (s["metric"] == metric)]
            for label, line in m.groupby("line", sort=False):
                line = line.sort_values("randomized_depth")
                _band(ax, line["randomized_depth"].to_numpy(), line, label, colors[label],
                      "--" if is_floor(line.iloc[0]["method"], line.iloc[0]["preset"]) else "-")
            ax.axhline(0.0, ls="--", lw=0.8, color="0.4")
            ax.set_xticks(ticks["randomized_depth"], ticks["randomized_from"], rotation=60, ha="right",
                          fontsize="x-small")
            ax.tick_params(axis="y", labelsize="x-small")
            ax.set_title(metric if len(layers) == 1 else f"{metric} · {layer}", fontsize="small")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("similarity to original", fontsize="small")
            if i == len(layers) - 1:
                ax.set_xlabel("randomized from (top layer first)", fontsize="small")
    fig.suptitle(f"{model}: cascading randomization (Adebayo et al. 2018)\nmean ± 95% CI over units and seeds; "
                 "dashed: random floors, which ignore the weights",
                 fontsize="medium")
    _legend(fig, axes.ravel().tolist())
    return fig


def randomization_curve(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """One figure per model, `randomization_curve__<model>`, of the cascade_* rows."""
    series = cascade_series(df)
    return [save(cascade_figure(series, model), out, safe_name("randomization_curve", model))
            for model in dict.fromkeys(series["model"])]


# ---------------------------------------------------------------- 3. gradient-ascent curve


def optimizing(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs of an optimizing method (a method whose registry entry says `inputs="optimized"`)."""
    from experiments.adapters import registry
    return df[df["method"].isin([m.name for m in registry().values() if m.inputs == "optimized"])]


def ascent_series(df: pd.DataFrame, order: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The objective after each step (`Ascent.trace`) of every unit of every run of an optimizing method in the
    table, read from `<run_dir>/arrays/<method>__<layer>.pt`, layers in `order` (default: the table's
    `depth_order`); runs or layers without a trace are skipped."""
    cols = ["run", "model", "method", "preset", "seed", "layer", "unit", "step", "value"]
    if df.empty or "run_dir" not in df:
        return pd.DataFrame(columns=cols)
    order = depth_order(df) if order is None else order
    parts = []
    rows = optimizing(df).assign(layer=df["layer"].astype(object).where(df["layer"].notna(), ""))
    for run_dir, run in rows.groupby("run_dir", sort=False):
        model = str(run["model"].iloc[0]) if "model" in run else ""
        layers = sorted(set(run["layer"]), key=lambda l: order.get(model, []).index(l or OUTPUT)
                        if (l or OUTPUT) in order.get(model, []) else math.inf)
        for layer in layers:
            method = str(run["method"].iloc[0])
            path = Path(run_dir) / "arrays" / f"{safe_name(method, layer)}.pt"
            if not path.exists():
                continue
            arrays = torch.load(path, map_location="cpu", weights_only=True)
            trace = arrays.get("trace")
            if trace is None or trace.numel() == 0:
                continue
            trace = trace.float().numpy()
            units = list(arrays.get("units", range(trace.shape[1])))
            steps, n = trace.shape
            parts.append(pd.DataFrame({
                "run": str(run["run_id"].iloc[0]) if "run_id" in run else Path(run_dir).name,
                "model": model, "method": method, "preset": str(run["preset"].iloc[0]) if "preset" in run else "",
                "seed": run["seed"].iloc[0] if "seed" in run else pd.NA, "layer": layer or OUTPUT,
                "unit": np.tile(units, steps), "step": np.repeat(np.arange(1, steps + 1), n),
                "value": trace.ravel()}))
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def ascent_figure(series: pd.DataFrame, run: str) -> Figure:
    """One run's gradient ascent: a panel per layer, the objective against step, a line per unit."""
    s = series[series["run"] == run]
    layers = list(dict.fromkeys(s["layer"]))
    fig, axes = _grid(len(layers), 3, (4.2, 3.0))
    for ax, layer in zip(axes, layers):
        m = s[s["layer"] == layer]
        units = list(dict.fromkeys(m["unit"]))
        colors = _colors(map(str, units))
        for unit, line in m.groupby("unit", sort=False):
            ax.plot(line["step"], line["value"], lw=1.0, color=colors[str(unit)], label=str(unit))
            ax.plot(line["step"].iloc[-1:], line["value"].iloc[-1:], "o", ms=3, color=colors[str(unit)])
        ax.set_title(f"{layer} ({len(units)} units)", fontsize="small")
        ax.set_xlabel("step", fontsize="small")
        ax.set_ylabel("objective", fontsize="small")
        ax.tick_params(labelsize="x-small")
        ax.grid(alpha=0.3)
        if len(units) <= 20:
            ax.legend(title="unit", fontsize="xx-small", title_fontsize="x-small", ncols=2 if len(units) > 6 else 1)
    first = s.iloc[0]
    seed = "" if pd.isna(first["seed"]) else f", seed {first['seed']}"
    fig.suptitle(f"{first['model']} · {first['method']}/{first['preset']} ({short_run(run)}{seed}): objective after "
                 "each step\n(as the step's transforms saw it; the dot: the final activation, untransformed)",
                 fontsize="medium")
    return fig


def short_run(run: str) -> str:
    """A run's name for titles and files: the last two parts of its id (sweep folder / job)."""
    return "/".join(Path(run).parts[-2:])


def ascent_curve(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """One figure per (model, method, preset) with a trace, `ascent_curve__<model>__<preset>__<run>`: its first run
    in natural order (other seeds' and sweeps' traces stay in their arrays; a 100-run sweep draws a few figures)."""
    from experiments.gallery.catalog import natural_key
    if df.empty or "run_dir" not in df:
        return []
    order, rows = depth_order(df), optimizing(df)
    runs = sorted(rows.groupby("run_dir", sort=False), key=lambda item: natural_key(
        str(item[1]["run_id"].iloc[0]) if "run_id" in item[1] else Path(item[0]).name))
    firsts: dict[tuple, pd.DataFrame] = {}  # (model, method, preset) -> its first run's series; others not read
    for _, run in runs:
        kind = tuple(str(run[c].iloc[0]) if c in run else "" for c in ("model", "method", "preset"))
        if kind not in firsts and not (series := ascent_series(run, order)).empty:
            firsts[kind] = series
    paths: list[Path] = []
    for series in firsts.values():
        run, first = series["run"].iloc[0], series.iloc[0]
        stem = safe_name("ascent_curve", first["model"], first["preset"], short_run(run))
        while Path(out) / f"{stem}.png" in paths:  # two sweeps with the same job name
            stem += "_"
        paths.append(save(ascent_figure(series, run), out, stem))
    return paths


# ---------------------------------------------------------------- 4. speed bars


def speed_series(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The speed experiment's ok rows as (times, ratios): seconds per unit of work of each contender (and variant)
    per case = 1 / its `<work>_per_s` (perturbations, else images, else units), and vizbench's vs_bare / vs_peer
    per case; means where the table holds several runs of a case."""
    tcols, rcols = ["case", "contender", "work", "s_per_work"], ["case", "metric", "value"]
    empty = pd.DataFrame(columns=tcols), pd.DataFrame(columns=rcols)
    if df.empty or not {"case", "contender"} <= set(df.columns):
        return empty
    rows = df[df["case"].notna() & df["contender"].notna() & (df["status"] == "ok")]
    if rows.empty:
        return empty
    variant = rows["variant"].astype(object) if "variant" in rows else pd.Series(pd.NA, index=rows.index)
    rows = rows.assign(contender=np.where(variant.notna() & (variant.astype(str) != ""),
                                          rows["contender"].astype(str) + " [" + variant.astype(str) + "]",
                                          rows["contender"].astype(str)))
    cases = list(dict.fromkeys(rows["case"]))
    times = []
    for (case, contender), g in rows.groupby(["case", "contender"], sort=False):
        for kind in WORK_PRIORITY:
            v = g.loc[g["metric"] == f"{kind}_per_s", "value"]
            if len(v) and v.mean() > 0:
                times.append({"case": case, "contender": contender, "work": kind.rstrip("s"), "s_per_work": 1 / v.mean()})
                break
    ratios = rows[rows["metric"].isin(RATIOS)].groupby(["case", "metric"], sort=False)["value"].mean().reset_index()
    order = {c: i for i, c in enumerate(cases)}
    times = pd.DataFrame(times, columns=tcols).sort_values("case", key=lambda c: c.map(order), kind="stable")
    ratios = ratios.sort_values("case", key=lambda c: c.map(order), kind="stable")
    return times.reset_index(drop=True), ratios.reset_index(drop=True)[rcols]


def _grouped(ax: Axes, frame: pd.DataFrame, group: str, member: str, value: str, colors: dict[str, tuple]) -> list[str]:
    """Grouped bars: one group per `group` value, its members' bars side by side and centred on it (a member a group
    lacks leaves no gap), a colour and legend entry per member; returns the groups in order."""
    groups = list(dict.fromkeys(frame[group]))
    width = 0.8 / max(1, int(frame.groupby(group)[member].nunique().max()))
    labelled: set[str] = set()
    for i, g in enumerate(groups):
        m = frame[frame[group] == g].drop_duplicates(member)
        for k, (name, v) in enumerate(zip(m[member], m[value])):
            x = i + width * (k - (len(m) - 1) / 2)
            bars = ax.bar([x], [v], width, color=colors[name], label=None if name in labelled else name)
            labelled.add(name)
            ax.bar_label(bars, fmt="%.3g", fontsize="xx-small", padding=1)
    return groups


def speed_figure(times: pd.DataFrame, ratios: pd.DataFrame) -> Figure:
    """Two panels: seconds per unit of work per contender and case (log scale), vizbench's ratios per case."""
    panels = [p for p, f in (("times", times), ("ratios", ratios)) if not f.empty]
    n_cases = len(set(times["case"]) | set(ratios["case"]))
    fig = Figure(figsize=(max(6.0, 1.6 * n_cases + 2), 3.4 * len(panels) + 0.4), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        if panel == "times":
            groups = _grouped(ax, times, "case", "contender", "s_per_work", _colors(times["contender"]))
            work = times.drop_duplicates("case").set_index("case")["work"]
            ax.set_xticks(range(len(groups)), [f"{g}\n(s / {work[g]})" for g in groups], fontsize="x-small")
            ax.set_yscale("log")
            ax.set_ylabel("seconds per unit of work", fontsize="small")
            ax.set_title("time per unit of work (median of repeats; lower is faster)", fontsize="small")
        else:
            groups = _grouped(ax, ratios, "case", "metric", "value", _colors(RATIOS + tuple(ratios["metric"])))
            ax.set_xticks(range(len(groups)), groups, fontsize="x-small")
            ax.axhline(1.0, ls="--", lw=0.8, color="0.3")
            ax.set_ylabel("vizbench time / other's", fontsize="small")
            ax.set_title("vs_bare and vs_peer (1.0 = as fast; lower is better)", fontsize="small")
        ax.tick_params(axis="y", labelsize="x-small")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="x-small")
    return fig


def speed_bars(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """`speed_bars`: the speed experiment's times per unit of work and ratios, when the table has speed rows."""
    times, ratios = speed_series(df)
    if times.empty and ratios.empty:
        return []
    return [save(speed_figure(times, ratios), out, "speed_bars")]


# ---------------------------------------------------------------- all of them


def sweep_plots(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """Every plot the table has rows for; returns the PNG paths written."""
    return metric_by_depth(df, out) + randomization_curve(df, out) + ascent_curve(df, out) + speed_bars(df, out)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: the plots of the run and sweep folders given, into --out (default: the first folder's plots/)."""
    p = argparse.ArgumentParser(prog="python -m experiments.plots", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="sweep or run folders")
    p.add_argument("--out", help="output folder (default: <first folder>/plots)")
    args = p.parse_args(argv)
    try:
        df = load_results(args.folders)
    except ValueError as err:
        p.error(str(err))
    for path in sweep_plots(df, args.out or Path(args.folders[0]) / "plots"):
        print(path)


if __name__ == "__main__":
    main()
