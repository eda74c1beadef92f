"""The gallery's pages: a layer page (every unit as a grid per run, sortable by a metric) and a unit page (every
method's pictures of one unit, each run's metrics beside them)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from experiments.compare import is_usable, metric_label
from experiments.gallery import catalog
from experiments.gallery.catalog import EXTRA_PICTURES, Config, family_rank, natural_key
from experiments.gallery.html import anchor, link, page, picture, value_list

INDEX = Path("report.html")  # the gallery's front page, in the results folder itself
FOLDER = Path("gallery")  # layer and unit pages, below the results folder
COLUMNS = ["metric", "value", "status", "step", "image"]  # a unit's rows; step: a cascade step's layer, image: the
# data image of a per-image metric ('' for other rows)
EMPTY = pd.DataFrame(columns=COLUMNS)


@dataclass
class Gallery:
    """A results folder as the pages see it (every path relative to `root`)."""

    root: Path
    df: pd.DataFrame  # load_results of root, run_dir relative to root
    configs: dict[str, Config]
    layers: dict[str, list[str]]  # model -> layers in depth order
    units: dict[tuple[str, str], list[int]]
    plots: list[Path]  # PNG files, each with an SVG beside it
    by_unit: dict[tuple[str, str, int], pd.DataFrame]  # (run_dir, layer, unit) -> its COLUMNS rows

    @classmethod
    def of(cls, root: Path, df: pd.DataFrame, plots: list[Path]) -> "Gallery":
        """The gallery of `root` from its table (run_dir made relative to root)."""
        df = df.assign(run_dir=[Path(r).relative_to(root).as_posix() for r in df["run_dir"]],
                       model=df["model"].map(catalog.text), layer=df["layer"].map(catalog.text))
        rows = df.assign(step=df["randomized_from"].map(catalog.text) if "randomized_from" in df else "",
                         image=df["image"].map(catalog.text) if "image" in df else "")
        rows = rows.loc[rows["unit"].notna(), ["run_dir", "layer", "unit", *COLUMNS]]
        rows = rows.astype({"metric": object, "status": object, "step": object, "image": object, "unit": int})
        by_unit = {key: part[COLUMNS] for key, part in rows.groupby(["run_dir", "layer", "unit"])}
        return cls(root, df, catalog.configs(df), catalog.layers(df), catalog.units(df), plots, by_unit)

    def runs_with(self, model: str, layer: str, unit: int | None = None) -> list[Config]:
        """The runs that have rows for this layer (and unit), by method family then natural order."""
        rows = self.df[(self.df["model"] == model) & (self.df["layer"] == layer)]
        if unit is not None:
            rows = rows[rows["unit"] == unit]
        found = [self.configs[r] for r in rows["run_dir"].unique()]
        return sorted(found, key=lambda c: (family_rank(c.family), c.floor,
                                            natural_key(c.run.as_posix())))

    def unit_rows(self, config: Config, layer: str, unit: int) -> pd.DataFrame:
        """One run's rows of one unit (COLUMNS)."""
        return self.by_unit.get((config.run.as_posix(), layer, unit), EMPTY)


def unit_path(model: str, layer: str, unit: int) -> Path:
    """A unit page, relative to the results folder."""
    return FOLDER / catalog.unit_page(model, layer, unit)


def layer_path(model: str, layer: str) -> Path:
    """A layer page, relative to the results folder."""
    return FOLDER / catalog.layer_page(model, layer)


def shown_layer(layer: str) -> str:
    """A layer's name as a heading shows it ('' is the model's output)."""
    return layer or "output"


def _pictures(g: Gallery, config: Config, layer: str, unit: int, here: Path) -> str:
    """A run's pictures of one unit: the main one (top patches: the full image with its box on hover), then the
    optimization snapshots where the run kept them."""
    main = catalog.picture(config, layer, unit)
    alt = f"{shown_layer(layer)} unit {unit}, {config.label}"
    shown = picture(main, here, g.root, alt)
    context = catalog.picture(config, layer, unit, "context")
    if (g.root / context).exists():
        full = picture(context, here, g.root, f"{alt}: {EXTRA_PICTURES['context']}", "full")
        shown = (f'<span class="hover">{shown}{full}</span>'
                 f'<p>{anchor(context, here, "full images with the boxes")} (or hover)</p>')
    snapshots = catalog.picture(config, layer, unit, "snapshots")
    if (g.root / snapshots).exists():
        shown += f"<p>{EXTRA_PICTURES['snapshots']}:</p>" + picture(snapshots, here, g.root, f"{alt}: snapshots")
    return shown


def _neighbours(g: Gallery, model: str, layer: str, unit: int, here: Path) -> str:
    """Links to the front page, the layer page and the previous and next unit of the layer."""
    units = g.units[(model, layer)]
    i = units.index(unit)
    links = [anchor(INDEX, here, "index"), anchor(layer_path(model, layer), here, f"layer {shown_layer(layer)}")]
    if i > 0:
        links.append(anchor(unit_path(model, layer, units[i - 1]), here, f"← unit {units[i - 1]}"))
    if i + 1 < len(units):
        links.append(anchor(unit_path(model, layer, units[i + 1]), here, f"unit {units[i + 1]} →"))
    return f"<nav>{''.join(links)}</nav>"


def unit_html(g: Gallery, model: str, layer: str, unit: int) -> str:
    """Every run's pictures and metrics of one unit, grouped by method family, with links to each run's card."""
    here = unit_path(model, layer, unit)
    runs = g.runs_with(model, layer, unit)
    title = f"{model} · {shown_layer(layer)} · unit {unit}"
    toc = " · ".join(f'<a href="#{c.anchor}">{escape(c.label)}</a>' for c in runs)
    parts = [f"<h1>{escape(title)}</h1>", _neighbours(g, model, layer, unit, here),
             f"<p>This unit under each config of the folder: {toc}</p>"]
    families = []
    for family in dict.fromkeys(c.family for c in runs):
        cards = [f'<div class="card" id="{c.anchor}"><h4>{escape(c.label)}</h4>'
                 f"{_pictures(g, c, layer, unit, here)}{value_list(g.unit_rows(c, layer, unit))}"
                 f"<p>run: {escape(c.run.as_posix())}</p></div>" for c in runs if c.family == family]
        families.append(f'<section><h2>{escape(family)}</h2>{"".join(cards)}</section>')
    parts.append(f'<div class="cards">{"".join(families)}</div>')
    return page(title, "\n".join(parts))


SORT_SCRIPT = """
function sortUnits(metric) {
  document.querySelectorAll('.units').forEach(function (box) {
    var figures = Array.prototype.slice.call(box.children);
    var sign = box.getAttribute('data-better-' + metric) === 'lower' ? 1 : -1;
    function value(f) { return parseFloat(f.getAttribute('data-m-' + metric)); }
    figures.sort(function (a, b) {
      if (metric === '') { return a.getAttribute('data-unit') - b.getAttribute('data-unit'); }
      var x = value(a), y = value(b);
      if (isNaN(x) || isNaN(y)) { return isNaN(x) - isNaN(y); }
      return sign * (x - y);
    });
    figures.forEach(function (f) {
      var v = f.getAttribute('data-m-' + metric);
      f.querySelector('.value').textContent = metric === '' || v === null ? '' : metric + ': ' + v;
      box.appendChild(f);
    });
  });
}
document.getElementById('sort').addEventListener('change', function (e) { sortUnits(e.target.value); });
"""


def _direction(metric: str) -> str:
    """'higher' or 'lower' is better, for sorting (descriptive metrics sort high first)."""
    from experiments.scoring import better  # the registry imports every metric: only when a page needs it
    return "lower" if better(metric) == "lower" else "higher"


def _unit_figure(g: Gallery, c: Config, model: str, layer: str, unit: int, here: Path) -> str:
    """One unit's picture on the layer page, linking to its unit page, with its ok metric values as data."""
    rows = g.unit_rows(c, layer, unit)
    values = rows[is_usable(rows["status"]) & (rows["step"] == "")].groupby("metric")["value"].mean()  # over images
    data = "".join(f' data-m-{m}="{v:.4g}"' for m, v in values.items() if math.isfinite(v))
    img = picture(catalog.picture(c, layer, unit), here, g.root, f"{shown_layer(layer)} unit {unit}, {c.label}")
    return (f'<figure data-unit="{unit}"{data}><a href="{link(unit_path(model, layer, unit), here)}">{img}</a>'
            f'<figcaption>unit {unit} <span class="value"></span></figcaption></figure>')


def layer_html(g: Gallery, model: str, layer: str) -> str:
    """Every unit of a layer as a grid per run, each picture linking to its unit page; sortable by a metric."""
    here = layer_path(model, layer)
    rows = g.df[(g.df["model"] == model) & (g.df["layer"] == layer) & g.df["unit"].notna()]
    steps = rows["randomized_depth"].notna() if "randomized_depth" in rows else False
    metrics = sorted(rows.loc[is_usable(rows["status"]) & ~steps, "metric"].unique())  # cascade steps: not one value
    options = "".join(f'<option value="{m}">{escape(metric_label(m, "html"))}</option>' for m in metrics)
    title = f"{model} · {shown_layer(layer)}"
    parts = [f"<h1>{escape(title)}</h1>", f"<nav>{anchor(INDEX, here, 'index')}</nav>",
             f'<p><label>Sort units by <select id="sort"><option value="">unit</option>{options}</select></label> '
             "(best first by the metric's direction; NaN and degenerate last)</p>"]
    better = "".join(f' data-better-{m}="{_direction(m)}"' for m in metrics)
    for c in g.runs_with(model, layer):
        figures = [_unit_figure(g, c, model, layer, u, here) for u in g.units[(model, layer)]
                   if not g.unit_rows(c, layer, u).empty]
        parts.append(f'<h3 id="{c.anchor}">{escape(c.label)}</h3><div class="units"{better}>{"".join(figures)}</div>')
    return page(title, "\n".join(parts), SORT_SCRIPT)


def index_links(g: Gallery) -> str:
    """Models, then their layers (depth order), then the units of each, as links."""
    parts = []
    for model, layers in g.layers.items():
        items = []
        for layer in layers:
            units = " ".join(anchor(unit_path(model, layer, u), INDEX, str(u)) for u in g.units[(model, layer)])
            items.append(f"<li>{anchor(layer_path(model, layer), INDEX, shown_layer(layer))}: units {units}</li>")
        parts.append(f"<h3>{escape(model)}</h3><ul>{''.join(items)}</ul>")
    return "\n".join(parts)


def plots_section(g: Gallery) -> str:
    """Every plot (PNG shown, SVG linked)."""
    if not g.plots:
        return ""
    figures = [f"<figure style='width:auto'>{picture(p, INDEX, g.root, p.stem, 'plot')}<figcaption>"
               f"{escape(p.stem)} ({anchor(p.with_suffix('.svg'), INDEX, 'SVG')})</figcaption></figure>"
               for p in g.plots]
    return f'<h2>Plots</h2><div class="cards">{"".join(figures)}</div>'
