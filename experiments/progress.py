"""What a run shows while it works: one progress bar with an ETA on a terminal, plain lines (no escape codes)
elsewhere, and one line per sweep job."""
from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from tqdm import tqdm

SWEEP_JOBS = "VIZBENCH_SWEEP_JOBS"  # set by the preflight: how many jobs the sweep makes
SWEEP_START = "VIZBENCH_SWEEP_START"  # set by the preflight: when the sweep started (time.time())


def seconds(s: float) -> str:
    """A duration as people read it: '40 s', '3.5 min', '1.2 h'."""
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"


class RunProgress:
    """A run's progress over its targets: a tqdm bar on a terminal (the methods' own step bars nest under it, then
    vanish), one plain line per finished target otherwise; each with the time left at the pace so far."""

    def __init__(self, label: str, total: int, enabled: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bars = enabled and self.stream.isatty()
        self.lines = enabled and not self.bars
        self.label, self.total, self.done = label, total, 0
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=label, unit="target", file=self.stream, disable=not self.bars, leave=True)

    def stage(self, layer: str, what: str) -> None:
        """Say which layer the run is on and what it does there (method, metrics)."""
        self.bar.set_postfix_str(f"{layer}: {what}")

    def finished(self, layer: str, method_s: float, metrics_s: float) -> None:
        """One target done in `method_s` + `metrics_s` seconds."""
        self.done += 1
        self.bar.update(1)
        if self.lines:
            elapsed = time.perf_counter() - self.start
            left = elapsed / self.done * (self.total - self.done)
            eta = f"; ~{seconds(left)} left" if self.done < self.total else f"; done in {seconds(elapsed)}"
            print(f"{self.label} [{self.done}/{self.total}] {layer}: method {method_s:.1f} s, metrics {metrics_s:.1f} s"
                  f"{eta}", file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar."""
        self.bar.close()


def job_line(num: int, what: str) -> str:
    """The line a sweep job prints as it starts: 'job 3/16: occlusion on planted, ~40 s left in the sweep'
    (the total and the pace from the preflight's environment variables, where it set them)."""
    total = os.environ.get(SWEEP_JOBS)
    line = f"job {num + 1}{f'/{total}' if total else ''}: {what}"
    start = os.environ.get(SWEEP_START)
    if total and start and num > 0:
        elapsed = time.time() - float(start)
        line += f", ~{seconds(elapsed / num * (int(total) - num))} left in the sweep"
    return line
