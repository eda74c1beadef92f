"""Data sources: procedurally generated shapes with masks, scikit-image's photos, and image folders."""
from __future__ import annotations

from typing import Any

from experiments.builders import call_builder
from experiments.data.spec import DataSpec


def build_data(cfg: Any, size: int) -> DataSpec:
    """Build the data source a `data` config names: its `_target_` (or conf/data/<name>.yaml's) at input `size`."""
    return call_builder("data", cfg, "name", size=size)
