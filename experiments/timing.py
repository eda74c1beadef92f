"""Honest timing: synchronized wall time, warm-up (and compile) kept apart, peak memory, OOM back-off.

Memory, the same meaning on both devices:
- `peak_mem_mb`: the highest memory in use during a steady-state (post-warm-up) call.
  CUDA: `max_memory_allocated` after `reset_peak_memory_stats`, over the timed repeats (live tensors,
  including the model and inputs already on the device; not the caching allocator's reserve nor the
  CUDA context). CPU: the peak resident set size (RSS) of the whole process (Python, the torch libraries
  and the model count), sampled about every millisecond by a thread during one extra, untimed call after
  the timed ones, because a sampler running during timed calls slows them (GIL hand-offs and the reads
  themselves; +4% to +19% measured on a busy 2-core machine).
- `base_mem_mb`: the same quantity just before the warm-up; `extra_mem_mb = peak - base` is what the
  measured function needed on top of what was already there.
Why a sampler thread on CPU: `resource.getrusage(...).ru_maxrss` is a process-lifetime high-water mark
that cannot be reset, and `tracemalloc` does not see torch's allocations. RSS is honest about pages in
use, but two caveats remain: a spike shorter than the sampling interval can be missed (a last sample
after the call catches memory still held), and memory that earlier work freed but the C allocator kept
resident is reused without raising RSS, so `extra_mem_mb` can under-count after other work in the same
process (RSS itself never under-counts). Reading RSS costs ~20 us per sample.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch

from methods.base import invalid_choice

T = TypeVar("T")
MB = 2**20
WORK_KINDS = ("units", "images", "perturbations")


@dataclass
class Timing:
    """Seconds per timed repeat, the first warm-up call's seconds and memory use, for one device."""

    times: list[float]
    warmup_s: float | None
    peak_mem_mb: float | None
    base_mem_mb: float | None
    device: str

    @property
    def median(self) -> float:
        """Median seconds per repeat."""
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        """Fastest repeat in seconds."""
        return min(self.times)

    @property
    def max(self) -> float:
        """Slowest repeat in seconds."""
        return max(self.times)

    @property
    def extra_mem_mb(self) -> float | None:
        """Peak memory above the level before the warm-up (None when memory was not measured)."""
        if self.peak_mem_mb is None or self.base_mem_mb is None:
            return None
        return self.peak_mem_mb - self.base_mem_mb


def measure(
    fn: Callable[[], Any], device: torch.device, repeats: int = 3, warmup: int = 1, memory: bool = True
) -> Timing:
    """Time `fn()`: `warmup` untimed calls (the first one's wall time kept as warmup_s), then `repeats` timed ones.

    On CUDA each call is bracketed by `torch.cuda.synchronize`, and the peak-memory counters watch the
    timed repeats (they cost nothing). On CPU the RSS sampler thread would slow the timed calls, so it
    watches one extra, untimed call after them instead. memory=False skips memory (and that extra call).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    device = torch.device(device)
    probe = (_CudaMemory(device) if device.type == "cuda" else _RssPeak()) if memory else None
    base = probe.current() if probe else None
    warmup_times = [_timed_call(fn, device) for _ in range(warmup)]
    if isinstance(probe, _CudaMemory):
        probe.start()
    times = [_timed_call(fn, device) for _ in range(repeats)]
    if isinstance(probe, _RssPeak):
        probe.start()
        fn()
    peak = probe.stop() if probe else None
    return Timing(times, warmup_times[0] if warmup_times else None, peak, base, str(device))


def _timed_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call of fn, synchronized on CUDA before the start and after the end."""
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _CudaMemory:
    """Allocated CUDA tensor memory: the current level and the peak since `start`, in MB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def current(self) -> float:
        """Memory allocated now, in MB."""
        return torch.cuda.memory_allocated(self.device) / MB

    def start(self) -> None:
        """Forget earlier peaks."""
        torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> float:
        """Peak allocated memory since `start`, in MB."""
        return torch.cuda.max_memory_allocated(self.device) / MB


def _read_rss_statm() -> int:
    """Resident set size of this process in bytes, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_reader() -> Callable[[], int] | None:
    """The cheapest RSS reader available here: /proc, else psutil, else None (memory not measured)."""
    if os.path.exists("/proc/self/statm"):
        return _read_rss_statm
    try:
        import psutil
    except ImportError:
        return None
    process = psutil.Process()
    return lambda: process.memory_info().rss


class _RssPeak:
    """Peak resident set size of the process, sampled by a background thread, in MB."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.read = _rss_reader()
        self.peak = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> float | None:
        """RSS now, in MB (None if it cannot be read on this platform)."""
        return None if self.read is None else self.read() / MB

    def start(self) -> None:
        """Start sampling."""
        if self.read is None:
            return
        self.peak = self.read()
        self._done.clear()
        self._thread = threading.Thread(target=self._sample, name="rss-peak", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        """Keep the highest RSS until told to stop."""
        while not self._done.wait(self.interval_s):
            self.peak = max(self.peak, self.read())

    def stop(self) -> float | None:
        """Stop sampling and return the peak RSS in MB."""
        if self.read is None or self._thread is None:
            return None
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())
        return self.peak / MB


def speed_rows(timing: Timing, work: dict[str, float]) -> list[dict[str, Any]]:
    """Long-format rows {metric, value} for one timing; throughputs divide `work` by the median time.

    `work` maps units|images|perturbations to the amount done by one call of the timed function.
    Rows: time_s (median), time_min_s, time_max_s, warmup_s (when warmed up), peak_mem_mb and
    extra_mem_mb (when measured), then <kind>_per_s for each kind of work.
    """
    unknown = sorted(set(work) - set(WORK_KINDS))
    if unknown:
        raise invalid_choice("work kind", unknown[0], WORK_KINDS)
    values: dict[str, float | None] = {
        "time_s": timing.median,
        "time_min_s": timing.min,
        "time_max_s": timing.max,
        "warmup_s": timing.warmup_s,
        "peak_mem_mb": timing.peak_mem_mb,
        "extra_mem_mb": timing.extra_mem_mb,
    }
    values.update({f"{kind}_per_s": amount / timing.median for kind, amount in work.items()})
    return [{"metric": name, "value": float(value)} for name, value in values.items() if value is not None]


def with_oom_retry(fn: Callable[[int], T], batch_size: int, min_batch: int = 1) -> tuple[T, int]:
    """Call fn(batch_size), halving the batch after each out-of-memory error; return (result, batch used)."""
    if not 1 <= min_batch <= batch_size:
        raise ValueError(f"need 1 <= min_batch <= batch_size, got min_batch={min_batch}, batch_size={batch_size}")
    while True:
        try:
            return fn(batch_size), batch_size
        except torch.OutOfMemoryError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "out of memory"
        # Outside the except block, so the traceback (and the tensors its frames hold) can be freed.
        _free_cached_memory()
        if batch_size // 2 < min_batch:
            raise torch.OutOfMemoryError(
                f"out of memory even at batch_size={batch_size} (min_batch={min_batch}): {reason}"
            )
        batch_size //= 2


def _free_cached_memory() -> None:
    """Collect garbage and hand cached CUDA blocks back, so a smaller retry can fit."""
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def ratio(mine: Timing | float, other: Timing | float, stat: str = "median") -> float:
    """vs_bare / vs_peer, the one meaning everywhere: vizbench's time over the other's (< 1: vizbench is faster).

    Timings are compared by `stat` (median, or min: each one's fastest repeat); plain numbers are seconds.
    """
    def seconds(t: Timing | float) -> float:
        return getattr(t, stat) if isinstance(t, Timing) else float(t)
    return seconds(mine) / seconds(other)
