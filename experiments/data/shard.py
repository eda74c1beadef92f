"""One shard of a data source: a contiguous block of its images, keeping their indices in the whole source."""
from __future__ import annotations

import dataclasses


from experiments.data.spec import DataSpec


def check_shard(shard: int | None, num_shards: int) -> None:
    """One line unless num_shards >= 1 and shard is None (the whole source) or in 0..num_shards-1."""
    if num_shards < 1:
        raise ValueError(f"data.num_shards={num_shards} must be >= 1")
    if shard is None:
        if num_shards > 1:
            raise ValueError(f"data.num_shards={num_shards} needs data.shard=0..{num_shards - 1} "
                             f"(a sweep: -m data.shard=range(0,{num_shards}))")
        return
    if not 0 <= shard < num_shards:
        raise ValueError(f"data.shard={shard} must be in 0..{num_shards - 1} (data.num_shards={num_shards})")


def shard_bounds(n: int, shard: int, num_shards: int) -> tuple[int, int]:
    """[start, stop) of shard `shard` of n images in `num_shards` contiguous blocks (sizes differ by at most 1)."""
    return shard * n // num_shards, (shard + 1) * n // num_shards


def take_shard(data: DataSpec, shard: int | None, num_shards: int) -> DataSpec:
    """The shard's images, labels and masks, with `index` their positions in the whole source (the whole: as is)."""
    check_shard(shard, num_shards)
    if shard is None or num_shards == 1:
        return data
    start, stop = shard_bounds(len(data.images), shard, num_shards)
    if start == stop:
        raise ValueError(f"data.shard={shard} of data.num_shards={num_shards} is empty: data {data.name!r} has only "
                         f"{len(data.images)} images")
    keep = data.global_index()[start:stop]
    return dataclasses.replace(data, images=data.images[start:stop], labels=data.labels[start:stop],
                               masks=None if data.masks is None else data.masks[start:stop], index=keep)
