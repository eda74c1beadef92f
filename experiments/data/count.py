"""data.n (a count, or all), data.stream and data.workers: how many images a source gives and how it reads them.

data.n=all: every image of a source that reads files (image_folder, arrays); sources that draw their images
(shapes, skimage) refuse it. data.stream: true reads the images as they are needed (experiments.data.stream),
false decodes them all up front, auto streams when data.n=all or the chosen count exceeds STREAM_ABOVE.
data.workers: the DataLoader processes that decode a streamed source, or auto = min(MAX_WORKERS, usable CPUs).
"""
from __future__ import annotations

import os
from typing import Any

from methods.base import invalid_choice

ALL = "all"
STREAM = ("auto", True, False)
STREAM_ABOVE = 4096  # images: 4096 at 224 px are 2.5 GB as float32, more than a laptop should hold for one run
MAX_WORKERS = 4


def check_n(n: Any, source: str | None = None) -> None:
    """One line unless n is an integer >= 1 or, for a source reading files (`source` None), all."""
    if n == ALL and source is None:
        return
    if n == ALL:
        raise ValueError(f"data.n=all is meaningless for data={source}: it generates its images, so give a count "
                         f"(data.n=<integer >= 1>)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"data.n={n} must be >= 1{' or all' if source is None else ''}")


def check_stream(stream: Any) -> None:
    """One line naming data.stream and its valid values unless it is auto, true or false."""
    if not (stream is True or stream is False or stream == "auto"):
        raise invalid_choice("data.stream", stream, ["auto", "true", "false"])


def check_workers(workers: Any) -> None:
    """One line unless data.workers is an integer >= 0 or auto."""
    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"data.workers={workers} must be an integer >= 0 or auto")


def streams(stream: Any, n: Any, available: int) -> bool:
    """Whether a source with `available` images streams the ones data.n asks for (see the module docstring)."""
    check_stream(stream)
    if stream != "auto":
        return stream
    return n == ALL or min(n, available) > STREAM_ABOVE


def worker_count(workers: Any) -> int:
    """data.workers as a number of DataLoader processes (auto: min(MAX_WORKERS, the CPUs this process may use))."""
    check_workers(workers)
    if workers != "auto":
        return workers
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(MAX_WORKERS, cpus)
