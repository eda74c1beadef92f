"""One static HTML page for a run or sweep folder: summary tables, then per run, method and layer its pictures."""
from __future__ import annotations

import argparse
import re
import sys
from html import escape
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

import pandas as pd

from experiments.compare import (degenerates, failures, format_table, incomplete_runs, is_degenerate, load_results,
                                 metric_label, summarize)
from experiments.tables import safe_name

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
img.grid { max-width: 100%; width: 480px; }
.units { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; width: 140px; font-size: 0.8em; }
figure img { width: 128px; height: 128px; object-fit: contain; }
ul { padding-left: 1.1em; margin: 0.2em 0; }
.failed { color: #b00020; }
.degenerate { color: #777; }
.missing { color: #777; font-style: italic; }
"""


def natural_key(text: str) -> list:
    """Sort key that orders '2' before '10' (sweep job folders)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _src(path: Path, root: Path) -> str:
    """A relative, URL-quoted image address from the report in `root`."""
    return quote(path.relative_to(root).as_posix())


def _image(path: Path, root: Path, css: str, alt: str) -> str:
    """An <img> for an existing picture, or a note that it is missing."""
    if not path.exists():
        return f'<p class="missing">no picture: {escape(path.relative_to(root).as_posix())}</p>'
    return f'<img class="{css}" src="{_src(path, root)}" alt="{escape(alt)}">'


def _value_list(rows: pd.DataFrame) -> str:
    """Metrics as a list: 'name ↑: value' (the arrow says which way is better), failed ones in red and degenerate
    ones in grey, with their status."""
    items = []
    for r in rows.itertuples(index=False):
        if r.status == "ok":
            items.append(f"<li>{escape(metric_label(r.metric, 'html'))}: {r.value:.4g}</li>")
        else:
            css = "degenerate" if str(r.status).startswith("degenerate") else "failed"
            items.append(f'<li class="{css}">{escape(metric_label(r.metric, "html"))}: {escape(str(r.status))}</li>')
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _unit_figures(run: Path, root: Path, method: str, layer: str, rows: pd.DataFrame) -> str:
    """Per unit: its picture and that unit's metrics."""
    figures = []
    for unit, unit_rows in rows[rows["unit"].notna()].groupby("unit", sort=True):
        picture = run / "units" / f"{safe_name(method, layer, unit)}.png"
        figures.append(f"<figure>{_image(picture, root, 'unit', f'{method} {layer} unit {unit}')}"
                       f"<figcaption>unit {escape(str(unit))}{_value_list(unit_rows)}</figcaption></figure>")
    return f'<div class="units">{"".join(figures)}</div>'


def _method_section(run: Path, root: Path, method: str, rows: pd.DataFrame) -> str:
    """One method of one run: run-level values, then per layer the grid and the unit figures."""
    parts = [f"<h4>{escape(method)}</h4>", _value_list(rows[rows["layer"].isna()])]
    for layer, layer_rows in rows[rows["layer"].notna()].groupby("layer", sort=True):
        parts.append(f"<h5>{escape(method)} &mdash; {escape(layer)}</h5>")
        parts.append(_image(run / "grids" / f"{safe_name(method, layer)}.png", root, "grid", f"{method} {layer} grid"))
        parts.append(_value_list(layer_rows[layer_rows["unit"].isna()]))
        parts.append(_unit_figures(run, root, method, layer, layer_rows))
    return "\n".join(parts)


def _run_title(run: Path, root: Path, rows: pd.DataFrame, done: bool) -> str:
    """Heading of a run: its folder, model and seed, and whether it finished."""
    what = ", ".join(f"{k}={'/'.join(map(str, rows[k].dropna().unique()))}" for k in ("model", "seed") if k in rows)
    state = "" if done else ' <span class="failed">(incomplete: no DONE)</span>'
    name = run.relative_to(root).as_posix() if run != root else run.name
    return f"<h3>{escape(name)} &mdash; {escape(what)}{state}</h3>"


def _run_section(run: Path, root: Path, rows: pd.DataFrame) -> str:
    """Everything about one run folder."""
    parts = [_run_title(run, root, rows, (run / "DONE").exists())]
    parts += [_method_section(run, root, m, r) for m, r in rows.groupby("method", sort=True)]
    return "<section>\n" + "\n".join(parts) + "\n</section>"


def _summary_section(df: pd.DataFrame, root: Path, rows: Sequence[str], cols: Sequence[str]) -> str:
    """The compare tables: mean ± CI pivot, failed rows, degenerate rows, incomplete runs."""
    parts = ["<h2>Summary (mean ± 95% CI over seeds and units)</h2>"]
    if ((df["status"] == "ok") | is_degenerate(df["status"])).any():
        parts.append(format_table(summarize(df, rows, cols), "html"))
    for title, css, listed in (("Failed rows ({})", "failed", failures(df)),
                               ("Degenerate rows ({}): counted in the table, not in its means", "degenerate", degenerates(df))):
        if len(listed):
            listed["run_dir"] = [Path(r).relative_to(root).as_posix() for r in listed["run_dir"]]
            table = listed.to_html(index=False, border=0, classes=None if css == "failed" else css)
            parts += [f"<h3 class='{css}'>{title.format(len(listed))}</h3>", table]
    incomplete = incomplete_runs([root])
    if incomplete:
        items = "".join(f"<li>{escape(r.relative_to(root).as_posix() or '.')}</li>" for r in incomplete)
        parts.append(f"<h3 class='failed'>Incomplete runs ({len(incomplete)}, no DONE marker)</h3><ul>{items}</ul>")
    return "\n".join(parts)


def render(folder: str | Path, rows: Sequence[str] = ("method", "preset"), cols: Sequence[str] = ("model",)) -> str:
    """The report page of `folder` as an HTML string (image addresses relative to `folder`)."""
    root = Path(folder)
    df = load_results([root])
    runs = sorted(df.groupby("run_dir", sort=False), key=lambda item: natural_key(item[0]))
    sections = [_run_section(Path(run), root, rows) for run, rows in runs]
    body = "\n".join([f"<h1>vizbench report: {escape(root.resolve().name)}</h1>",
                      _summary_section(df, root, rows, cols), "<h2>Runs</h2>", *sections])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>vizbench report: {escape(root.resolve().name)}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def write_report(folder: str | Path, rows: Sequence[str] = ("method", "preset"),
                 cols: Sequence[str] = ("model",)) -> Path:
    """Write <folder>/report.html and return its path."""
    out = Path(folder) / "report.html"
    out.write_text(render(folder, rows, cols), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the report and print its path."""
    p = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__)
    p.add_argument("folder", help="a run or sweep folder")
    p.add_argument("--rows", default="method,preset", help="summary table rows (comma list)")
    p.add_argument("--cols", default="model", help="summary table columns (comma list, '' for none)")
    args = p.parse_args(argv)
    split = lambda s: [c for c in s.split(",") if c]  # noqa: E731
    try:
        print(write_report(args.folder, split(args.rows), split(args.cols)))
    except ValueError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
