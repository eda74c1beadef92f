"""Paired timing for the benchmarks' ratio reports (these machines are noisy: interleave the contenders)."""
from __future__ import annotations

import time
from typing import Callable


def best_times(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each function over `rounds` interleaved rounds (after one warm-up call each)."""
    best = {name: float("inf") for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best
