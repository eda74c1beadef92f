"""The gallery of a run or sweep folder: report.html (summary, plots, models -> layers -> units), a page per layer
(every unit as a grid per run, sortable by a metric) and a page per unit (every method's pictures of it, with each
run's metrics beside them), all static, with relative links that work from file://."""
from __future__ import annotations

import argparse
import shutil
import sys
from html import escape
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm import tqdm

from experiments.compare import (degenerates, failures, flagged_rows, format_table, incomplete_runs, is_degenerate,
                                 is_usable, load_results, summarize)
from experiments.gallery.catalog import natural_key
from experiments.gallery.html import page
from experiments.gallery.pages import (FOLDER, INDEX, Gallery, index_links, layer_html, layer_path, plots_section,
                                       unit_html, unit_path)

__all__ = ["main", "natural_key", "render", "write_report"]

ROWS, COLS = ("method", "preset", "layer"), ("model",)
PLOTS = FOLDER / "plots"


def with_layer(rows: Sequence[str], cols: Sequence[str]) -> list[str]:
    """The summary rows with `layer` added unless rows or columns name it (the sweep callback's report: it never
    averages layers together unless a user asks, with `--rows` that leave layer out)."""
    rows = list(rows)
    return rows if "layer" in rows or "layer" in cols else rows + ["layer"]


def _table(df: pd.DataFrame, rows: Sequence[str], cols: Sequence[str], title: str) -> str:
    """One summary table of `df`'s ok, flagged and degenerate rows, or nothing when it has none."""
    if not (is_usable(df["status"]) | is_degenerate(df["status"])).any():
        return ""
    return f"<h3>{escape(title)}</h3>\n" + format_table(summarize(df, rows, cols), "html")


def summary_html(df: pd.DataFrame, root: Path, rows: Sequence[str], cols: Sequence[str]) -> str:
    """Per-unit quality rows, cascade steps (metrics.randomization_curve) and run-level rows (time, memory, batch
    size) in three tables, per layer; then the failed rows, degenerate rows and incomplete runs."""
    per_unit, step = df["unit"].notna(), df.get("randomized_depth", pd.Series(index=df.index)).notna()
    parts = ["<h2>Summary</h2>", "<p>mean ± 95% CI over seeds and units; ↑/↓: which way is better; bold: the best "
             "column of a row; n counts distinct ok and flagged results (identical seeds count once), degenerate rows "
             "are counted apart, never averaged.</p>",
             _table(df[per_unit & ~step], rows, cols, "Quality, per unit"),
             _table(df[step], [*rows, "randomized_depth", "randomized_from"], cols,
                    "Cascading randomization, per step (metrics.randomization_curve; plotted below)"),
             _table(df[~per_unit], rows, cols, "Run level: time, memory, throughput, batch size (per layer)")]
    for title, css, listed in (("Failed rows ({})", "failed", failures(df)),
                               ("Flagged rows ({}): counted in the table and its means", "flagged", flagged_rows(df)),
                               ("Degenerate rows ({}): counted in the table, not in its means", "degenerate",
                                degenerates(df))):
        if len(listed):
            table = listed.to_html(index=False, border=0, classes=None if css == "failed" else css)
            parts += [f"<h3 class='{css}'>{title.format(len(listed))}</h3>", table]
    incomplete = incomplete_runs([root])
    if incomplete:
        items = "".join(f"<li>{escape(r.relative_to(root).as_posix() or '.')}</li>" for r in incomplete)
        parts.append(f"<h3 class='failed'>Incomplete runs ({len(incomplete)}, no DONE marker)</h3><ul>{items}</ul>")
    return "\n".join(p for p in parts if p)


def render(g: Gallery, rows: Sequence[str] = ROWS, cols: Sequence[str] = COLS) -> str:
    """The front page: summary, plots, and the models' layers and units as links."""
    name = g.root.resolve().name
    body = [f"<h1>vizbench report: {escape(name)}</h1>", summary_html(g.df, g.root, rows, cols), plots_section(g),
            "<h2>Models, layers and units</h2>", index_links(g)]
    return page(f"vizbench report: {name}", "\n".join(b for b in body if b))


def write_plots(df: pd.DataFrame, root: Path) -> list[Path]:
    """The folder's plots (experiments.plots), relative to `root`; none when a plot cannot be drawn, said on stderr."""
    from experiments import plots  # matplotlib: imported only when a report is written
    try:
        return [p.relative_to(root) for p in plots.sweep_plots(df, root / PLOTS)]
    except Exception as err:  # noqa: BLE001 - the pages are still worth writing; the failure is said
        print(f"warning: plots not drawn: {type(err).__name__}: {err}", file=sys.stderr)
        return []


def write_report(folder: str | Path, rows: Sequence[str] = ROWS, cols: Sequence[str] = COLS,
                 progress: bool | None = None) -> Path:
    """Write <folder>/report.html and the gallery pages below <folder>/gallery; return report.html's path.

    progress: a progress bar over the pages (None: only on a terminal)."""
    root = Path(folder)
    df = load_results([root])
    shutil.rmtree(root / FOLDER, ignore_errors=True)  # pages of units no longer in the folder go too
    g = Gallery.of(root, df, [])
    g.plots = write_plots(df, root)
    pages = [(layer_path(m, layer), lambda m=m, layer=layer: layer_html(g, m, layer)) for m, ls in g.layers.items()
             for layer in ls]
    pages += [(unit_path(m, layer, u), lambda m=m, layer=layer, u=u: unit_html(g, m, layer, u))
              for (m, layer), us in g.units.items() for u in us]
    for path, make in tqdm(pages, desc=f"report {root.name}", unit="page", disable=None if progress is None
                           else not progress, file=sys.stderr):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(make(), encoding="utf-8")
    out = root / INDEX
    out.write_text(render(g, rows, cols), encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write the report and print its path."""
    p = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__)
    p.add_argument("folder", help="a run or sweep folder")
    p.add_argument("--rows", default=",".join(ROWS), 
                   help="summary table rows (comma list; leave out layer to average layers together)")
    p.add_argument("--cols", default=",".join(COLS), help="summary table columns (comma list, '' for none)")
    args = p.parse_args(argv)
    split = lambda s: [c for c in s.split(",") if c]  # noqa: E731
    try:
        print(write_report(args.folder, split(args.rows), split(args.cols)))
    except ValueError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
