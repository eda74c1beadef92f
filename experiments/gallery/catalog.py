"""What a results folder holds, as the gallery pages name it: each run's config, the models' layers in depth order,
each unit's pictures, and the stable file name of every page."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from experiments.tables import COLUMNS, safe_name

RUN_KEYS = ("run_dir", "run_id")  # what tells one run's rows from another's, first present wins
OUTPUT = "output"  # the label of layer '' (the model's output; load_results reads '' as missing)
NOT_CONFIG = set(COLUMNS) | {"run_dir", "done", "randomized_from", "randomized_depth", "case", "contender", "variant"}
EXTRA_PICTURES = {"context": "the full image, with the patch's box", "snapshots": "the image during optimization"}


def natural_key(text: str) -> list:
    """Sort key that orders '2' before '10' (sweep job folders)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


@dataclass(frozen=True)
class Config:
    """One run as the gallery shows it: its method, preset, seed and the other settings that vary in the folder."""

    run: Path
    method: str
    preset: str
    seed: str
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def family(self) -> str:
        """The method family it belongs to on a unit page: a random floor, whose preset names a registered method
        (the one it imitates), belongs to that method."""
        return self.preset if self.preset in methods() and self.preset != self.method else self.method

    @property
    def floor(self) -> bool:
        """Whether it stands in for another method (a random floor)."""
        return self.family != self.method

    @property
    def label(self) -> str:
        """'method/preset · seed 0 · lr=0.1'."""
        parts = [f"{self.method}/{self.preset}" if self.preset else self.method, f"seed {self.seed}"]
        return " · ".join(parts + [f"{k}={v}" for k, v in self.settings])

    @property
    def anchor(self) -> str:
        """An HTML id for this config's card on a unit page."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.method}-{self.preset}-seed{self.seed}-" +
                      "-".join(f"{k}{v}" for k, v in self.settings)).strip("-")


def methods() -> dict[str, int]:
    """The registered method names and where the gallery lists each (`Method.order`)."""
    from experiments.adapters import registry
    return {name: m.order for name, m in registry().items()}


def family_rank(family: str) -> tuple[int, str]:
    """Method families in their registered order, unknown ones last."""
    return (methods().get(family, 1000), family)


def text(value: object) -> str:
    """A table value as text ('' for missing; 1.0 -> '1')."""
    if pd.isna(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def configs(df: pd.DataFrame) -> dict[str, Config]:
    """run_dir -> Config; the settings are the override columns whose value differs between the folder's runs."""
    runs = df.drop_duplicates("run_dir").set_index("run_dir")
    extra = [c for c in runs.columns if c not in NOT_CONFIG and runs[c].map(text).nunique() > 1]
    out = {}
    for run_dir, r in runs.iterrows():
        settings = tuple((c, text(r[c])) for c in extra if text(r[c]))
        out[run_dir] = Config(Path(run_dir), text(r["method"]), text(r["preset"]), text(r["seed"]), settings)
    return out


def run_key(df: pd.DataFrame) -> pd.Series:
    """Which run each row belongs to: run_dir, else run_id, else one run for the whole table."""
    for col in RUN_KEYS:
        if col in df and df[col].notna().any():
            return df[col].astype(str)
    return pd.Series("run", index=df.index)


def layer_names(df: pd.DataFrame) -> pd.Series:
    """The layer column with the model's output ('' read as missing) named `output`."""
    return df["layer"].astype(object).where(df["layer"].notna(), OUTPUT).astype(str)


def depth_order(df: pd.DataFrame) -> dict[str, list[str]]:
    """Per model, its layers from input to output: the order they first appear in each run's rows.

    A run writes its targets in model order, so each run's rows give a partial order; runs are merged in the
    table's order, a layer new to the merge going right after the nearest layer before it in its own run (or
    right before the nearest one after it). Layers no run orders against each other keep first-seen order.
    """
    orders: dict[str, list[str]] = {}
    frame = df.assign(_run=run_key(df), _layer=layer_names(df), _model=df.get("model", pd.Series("", index=df.index)))
    for (model, _), rows in frame.groupby(["_model", "_run"], sort=False, dropna=False):
        merged = orders.setdefault(str(model), [])
        seq = list(dict.fromkeys(rows["_layer"]))
        for i, layer in enumerate(seq):
            if layer in merged:
                continue
            before = [l for l in seq[:i] if l in merged]
            after = [l for l in seq[i + 1:] if l in merged]
            pos = merged.index(before[-1]) + 1 if before else merged.index(after[0]) if after else len(merged)
            merged.insert(pos, layer)
    return orders


def layers(df: pd.DataFrame) -> dict[str, list[str]]:
    """model -> the layers of its units in depth order (`depth_order` of the unit rows)."""
    return depth_order(df[df["layer"].notna() & df["unit"].notna()])


def units(df: pd.DataFrame) -> dict[tuple[str, str], list[int]]:
    """(model, layer) -> its units, ascending."""
    rows = df[df["layer"].notna() & df["unit"].notna()]
    keys = rows[["model", "layer", "unit"]].drop_duplicates()
    out: dict[tuple[str, str], list[int]] = {}
    for model, layer, unit in sorted(zip(keys["model"].map(text), keys["layer"].map(text), keys["unit"].astype(int))):
        out.setdefault((model, layer), []).append(unit)
    return out


def picture(config: Config, layer: str, unit: int, extra: str | None = None) -> Path:
    """A unit's picture in its run folder (extra: one of EXTRA_PICTURES' names)."""
    name = safe_name(config.method, layer, unit) + (f"__{extra}" if extra else "")
    return config.run / "units" / f"{name}.png"


def layer_page(model: str, layer: str) -> Path:
    """The layer page's path inside the gallery folder."""
    return Path(safe_name(model)) / safe_name(layer) / "index.html"


def unit_page(model: str, layer: str, unit: int) -> Path:
    """The unit page's path inside the gallery folder: stable across reruns of the same sweep."""
    return Path(safe_name(model)) / safe_name(layer) / f"unit_{unit}.html"
