"""Data sources: procedurally generated shapes with masks, scikit-image's photos, image folders and arrays."""
from __future__ import annotations

import inspect
from typing import Any

from experiments.builders import call_builder, locate, target_path
from experiments.data.shard import take_shard
from experiments.data.spec import DataSpec


def build_data(cfg: Any, size: int | tuple[int, int], channels: int = 3) -> DataSpec:
    """Build the data source a `data` config names: its `_target_` (or conf/data/<name>.yaml's) at input `size`
    (px, or (h, w)) with `channels` channels; one line if the source gives another channel count."""
    path = target_path("data", cfg, "name")
    takes_channels = "channels" in inspect.signature(locate("data", path)).parameters
    data = call_builder("data", cfg, "name", size=size, **({"channels": channels} if takes_channels else {}))
    if data.images.shape[1] != channels:
        raise ValueError(f"data={data.name} gave {data.images.shape[1]}-channel images but the model takes {channels} "
                         f"({path} {'takes channels' if takes_channels else 'has no channels parameter'})")
    return take_shard(data, cfg.get("shard"), cfg.get("num_shards", 1))
