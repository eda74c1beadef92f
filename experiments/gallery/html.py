"""HTML pieces every gallery page shares: the page shell, relative links and pictures, metric lists."""
from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from experiments.compare import metric_label

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
nav { margin: 0.3em 0 1em; } nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
img { image-rendering: pixelated; border: 1px solid #ccc; max-width: 100%; }
img.plot { image-rendering: auto; width: 560px; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.card { border: 1px solid #ddd; padding: 0.5em; margin-bottom: 0.6em; max-width: 100%; }
.cards > section { flex: 1 1 300px; max-width: 420px; }
.cards > section:last-child { max-width: none; }
section h2 { margin: 0 0 0.3em; }
.card h4 { margin: 0 0 0.4em; font-size: 0.95em; }
.units { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; font-size: 0.8em; width: 200px; }
figure img { width: 192px; }
ul { padding-left: 1.1em; margin: 0.2em 0; font-size: 0.9em; }
.failed { color: #b00020; } .flagged { color: #b35c00; } .degenerate { color: #777; } .missing { color: #777; font-style: italic; }
.hover { position: relative; display: inline-block; }
.hover .full { display: none; position: absolute; left: 0; top: 0; z-index: 2; width: 384px; background: #fff; }
.hover:hover .full { display: block; }
"""


def link(target: Path, page: Path) -> str:
    """The address of `target` from `page` (both relative to one root): relative, URL-quoted."""
    return quote(Path(os.path.relpath(target, page.parent)).as_posix())


def picture(path: Path, page: Path, root: Path, alt: str, css: str = "") -> str:
    """An <img> of `path` (relative to `root`) on `page`, or a note that it is missing."""
    if not (root / path).exists():
        return f'<p class="missing">no picture: {escape(path.as_posix())}</p>'
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} src="{link(path, page)}" alt="{escape(alt)}" title="{escape(alt)}">'


def anchor(target: Path, page: Path, label: str, fragment: str = "") -> str:
    """An <a> to `target` from `page`."""
    return f'<a href="{link(target, page)}{"#" + fragment if fragment else ""}">{escape(label)}</a>'


def value_list(rows: pd.DataFrame) -> str:
    """Metrics as a list, 'name ↑: value' (the arrow: which way is better; a cascade step's metric says its step, a
    per-image metric its image); flagged in orange with its value, failed in red, degenerate in grey, with their status."""
    items = []
    for r in rows.sort_values("metric", kind="stable").itertuples(index=False):
        step, image = getattr(r, "step", ""), getattr(r, "image", "")
        label = escape(metric_label(r.metric, "html") + (f" (randomized from {step})" if step else "")
                       + (f" (image {image})" if image else ""))
        if r.status == "ok":
            items.append(f"<li>{label}: {r.value:.4g}</li>")
        elif str(r.status).startswith("flagged"):
            items.append(f'<li class="flagged">{label}: {r.value:.4g} ({escape(str(r.status))})</li>')
        else:
            css = "degenerate" if str(r.status).startswith("degenerate") else "failed"
            items.append(f'<li class="{css}">{label}: {escape(str(r.status))}</li>')
    return f"<ul>{''.join(items)}</ul>" if items else ""


def page(title: str, body: str, script: str = "") -> str:
    """A whole self-contained page (nothing fetched from elsewhere)."""
    js = f"<script>\n{script}\n</script>\n" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n{js}</body>\n</html>\n")
