"""One paper figure from a sweep or run folder: a row per unit, a column per method, each panel the unit's picture.

    python -m experiments.figure <folder> --units conv1:0,conv2:1 [--methods occlusion,gradient_ascent]
        [--model planted] [--out fig.pdf] [--dpi 300] [--width-in 7]

Panels are the run's own `units/<method>__<layer>__<unit>.png` (the first run, in natural folder order, that has
it); a method without that picture gets an empty box saying "not run". Columns are methods, or method/preset
where the folder holds several presets of a method (`--methods` takes either form). Column widths follow the
pictures' aspect ratios, so strips of several images are not shrunk. Writes the PDF and a PNG beside it (same
stem, `--width-in` x `--dpi` pixels wide) and prints both paths. Bad input exits 2 with one line.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from experiments.compare import load_results
from experiments.report import natural_key
from experiments.tables import safe_name
from methods.base import invalid_choice

OUTPUT = "output"  # how layer '' (the model's output) is written in --units and labels
LEFT_IN, TOP_IN, GAP_IN, BOTTOM_IN = 0.22, 0.22, 0.04, 0.04  # row-label margin, title margin, gaps (inches)


@dataclass(frozen=True)
class Column:
    """One column of the figure: a method and preset, and its title."""

    method: str
    preset: str
    title: str


def parse_units(text: str) -> list[tuple[str, int]]:
    """`layer:unit,...` as [(layer, unit)] (the last colon splits, `output` = layer ''); raises ValueError on bad
    syntax, naming the entry."""
    units = []
    for item in (t.strip() for t in text.split(",")):
        layer, sep, unit = item.rpartition(":")
        if not sep or not layer.strip() or not unit.strip().isdigit():
            raise ValueError(f"bad --units entry {item!r}: expected <layer>:<unit>, e.g. conv2:0")
        layer = layer.strip()
        units.append(("" if layer == OUTPUT else layer, int(unit)))
    return units


def unit_label(layer: str, unit: int) -> str:
    """`layer:unit` as --units writes it."""
    return f"{layer or OUTPUT}:{unit}"


def columns_of(df: pd.DataFrame) -> list[Column]:
    """The folder's (method, preset) columns in order of first appearance; titled method/preset where the method
    has several presets."""
    pairs = list(dict.fromkeys(zip(df["method"].astype(str), df["preset"].astype(str))))
    presets = pd.Series([m for m, _ in pairs]).value_counts()
    return [Column(m, p, f"{m}/{p}" if presets[m] > 1 else m) for m, p in pairs]


def pick_columns(columns: list[Column], wanted: Sequence[str] | None) -> list[Column]:
    """The columns `--methods` names (a method takes all its presets), in its order; ValueError naming a bad one."""
    if not wanted:
        return columns
    valid = list(dict.fromkeys([c.method for c in columns] + [c.title for c in columns]))
    picked: list[Column] = []
    for name in wanted:
        match = [c for c in columns if name in (c.method, f"{c.method}/{c.preset}")]
        if not match:
            raise invalid_choice("--methods entry", name, valid, " (or method/preset)")
        picked += [c for c in match if c not in picked]
    return picked


def picture(df: pd.DataFrame, column: Column, layer: str, unit: int) -> Path | None:
    """The unit's picture in the first run (natural folder order) of the column's method and preset that has it."""
    runs = df.loc[(df["method"] == column.method) & (df["preset"] == column.preset), "run_dir"].unique()
    for run in sorted(map(str, runs), key=natural_key):
        path = Path(run) / "units" / f"{safe_name(column.method, layer, unit)}.png"
        if path.exists():
            return path
    return None


def draw(grid: list[list[Path | None]], rows: Sequence[str], titles: Sequence[str], width_in: float) -> Figure:
    """The figure: grid[r][c] a picture path or None ("not run"), row labels on the left, column titles on top."""
    pics = [[imread(p) if p is not None else None for p in row] for row in grid]
    aspect = [max([im.shape[1] / im.shape[0] for im in col if im is not None] or [1.0]) for col in zip(*pics)]
    aspect = [float(np.clip(a, 0.5, 8.0)) for a in aspect]
    ncols, nrows = len(titles), len(rows)
    panel_h = max(0.1, (width_in - LEFT_IN - GAP_IN * ncols) / sum(aspect))  # every column as tall as a row
    height = TOP_IN + nrows * (panel_h + GAP_IN) + BOTTOM_IN
    fig = Figure(figsize=(width_in, height))
    FigureCanvasAgg(fig)
    size = float(np.clip(panel_h * 72 / 9, 4.5, 9.0))  # font points: small panels, small type
    x = LEFT_IN
    for c, title in enumerate(titles):
        w = aspect[c] * panel_h
        fit = float(np.clip(w * 72 / (0.6 * max(1, len(title))), 4.0, size))  # shrink a title wider than its column
        fig.text((x + w / 2) / width_in, 1 - TOP_IN / 2 / height, title, ha="center", va="center", fontsize=fit)
        for r in range(nrows):
            y = height - TOP_IN - (r + 1) * panel_h - r * GAP_IN
            ax = fig.add_axes((x / width_in, y / height, w / width_in, panel_h / height))
            ax.set_xticks([])
            ax.set_yticks([])
            if pics[r][c] is not None:
                ax.imshow(pics[r][c])
                ax.set_axis_off()
            else:
                for spine in ax.spines.values():
                    spine.set_color("0.7")
                ax.text(0.5, 0.5, "not run", ha="center", va="center", color="0.45", fontsize=size,
                        transform=ax.transAxes)
            if c == 0:
                fig.text(LEFT_IN / 2 / width_in, (y + panel_h / 2) / height, rows[r], rotation=90, ha="center",
                         va="center", fontsize=size)
        x += w + GAP_IN
    return fig


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and the parsed command line."""
    p = argparse.ArgumentParser(prog="python -m experiments.figure", description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a sweep or run folder")
    p.add_argument("--units", required=True, help="rows: layer:unit,... (e.g. conv1:0,conv2:1)")
    p.add_argument("--methods", help="columns: method or method/preset,... (default: every one in the folder)")
    p.add_argument("--model", help="the model, where the folder holds several")
    p.add_argument("--out", help="the PDF to write (default: <folder>/figure.pdf); the PNG goes beside it")
    p.add_argument("--dpi", type=int, default=300, help="PNG resolution, and the PDF's for its pictures")
    p.add_argument("--width-in", type=float, default=7.0, help="figure width in inches (height follows)")
    return p, p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the figure, print the PDF and PNG paths."""
    p, args = parse_args(argv)
    if args.dpi < 1:
        p.error(f"--dpi {args.dpi} must be >= 1")
    if not args.width_in > 0:
        p.error(f"--width-in {args.width_in} must be > 0")
    out = Path(args.out) if args.out else Path(args.folder) / "figure.pdf"
    if out.suffix.lower() != ".pdf":
        p.error(f"--out {str(out)!r} must end in .pdf (the PNG is written beside it)")
    try:
        df = load_results([args.folder])
    except ValueError as err:
        p.error(f"{err} (expected a run or sweep folder of experiments.run)")
    df = df[df["unit"].notna() & df["method"].notna()].copy()
    if df.empty:
        p.error(f"no per-unit results under {args.folder}, so no unit pictures to show")
    df["layer"] = df["layer"].astype(object).where(df["layer"].notna(), "").astype(str)
    df["preset"] = df["preset"].astype(object).where(df["preset"].notna(), "").astype(str)
    df["model"] = df["model"].astype(str)
    models = list(dict.fromkeys(df["model"]))
    if args.model is not None and args.model not in models:
        p.error(str(invalid_choice("--model", args.model, models)))
    if args.model is None and len(models) > 1:
        p.error(f"{args.folder} holds several models; pick one with --model: {', '.join(models)}")
    df = df[df["model"] == (args.model or models[0])]
    df = df.iloc[sorted(range(len(df)), key=lambda i: natural_key(str(df["run_dir"].iloc[i])))]
    known = sorted({(l, int(u)) for l, u in zip(df["layer"], df["unit"])}, key=lambda lu: (natural_key(lu[0]), lu[1]))
    valid = ", ".join(unit_label(*lu) for lu in known)
    try:
        units = parse_units(args.units)
        columns = pick_columns(columns_of(df), [m.strip() for m in args.methods.split(",")] if args.methods else None)
    except ValueError as err:
        p.error(f"{err}" + (f"; valid units: {valid}" if "--units" in str(err) else ""))
    for layer, unit in units:
        if (layer, unit) not in known:
            p.error(f"unit {unit_label(layer, unit)} is not in {args.folder}; valid: {valid}")
    grid = [[picture(df, c, layer, unit) for c in columns] for layer, unit in units]
    rows = [f"{layer or OUTPUT} · {unit}" for layer, unit in units]
    fig = draw(grid, rows, [c.title for c in columns], args.width_in)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    fig.savefig(out, dpi=args.dpi, metadata={"CreationDate": None})
    fig.savefig(png, dpi=args.dpi)
    print(out)
    print(png)


if __name__ == "__main__":
    main()
