"""Tests for experiments.timing: repeats and warm-up, the CUDA call sequence, peak memory, OOM back-off."""

import time

import pytest
import torch

from experiments import timing
from experiments.timing import MB, Timing, measure, ratio, speed_rows, with_oom_retry


def test_timing_properties():
    t = Timing([3.0, 1.0, 2.0], warmup_s=None, peak_mem_mb=None, base_mem_mb=None, device="cpu")
    assert (t.median, t.min, t.max, t.extra_mem_mb) == (2.0, 1.0, 3.0, None)


def test_measure_counts_repeats_and_excludes_warmup():
    calls = []

    def fn():
        if not calls:
            time.sleep(0.3)  # stands in for compile on the first call
        calls.append(1)

    t = measure(fn, torch.device("cpu"), repeats=4, warmup=1)
    assert len(calls) == 1 + 4 + 1  # warm-up, timed repeats, the untimed call that measures memory
    assert len(t.times) == 4
    assert t.warmup_s >= 0.3
    assert all(s < 0.3 for s in t.times)
    assert t.device == "cpu"


def test_measure_without_warmup_or_memory():
    calls = []
    t = measure(lambda: calls.append(1), "cpu", repeats=2, warmup=0, memory=False)
    assert len(calls) == 2 and len(t.times) == 2
    assert t.warmup_s is None and t.peak_mem_mb is None and t.base_mem_mb is None


@pytest.mark.parametrize("repeats,warmup", [(0, 1), (3, -1)])
def test_measure_rejects_bad_counts(repeats, warmup):
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, "cpu", repeats=repeats, warmup=warmup)


def test_measure_cuda_path_synchronizes_and_reads_peak(monkeypatch):
    log = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append(("sync", str(device))))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: log.append("allocated") or 100 * MB)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: log.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: log.append("max") or 350 * MB)

    t = measure(lambda: log.append("fn"), torch.device("cuda:0"), repeats=2, warmup=1)

    call = [("sync", "cuda:0"), "fn", ("sync", "cuda:0")]
    assert log == ["allocated", *call, "reset", *call, *call, "max"]
    assert (t.peak_mem_mb, t.base_mem_mb, t.extra_mem_mb) == (350.0, 100.0, 250.0)
    assert t.device == "cuda:0" and len(t.times) == 2


def test_measure_cuda_without_memory_reads_no_counters(monkeypatch):
    log = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    for name in ("memory_allocated", "reset_peak_memory_stats", "max_memory_allocated"):
        monkeypatch.setattr(torch.cuda, name, lambda device=None: pytest.fail("memory was not asked for"))
    t = measure(lambda: log.append("fn"), "cuda:0", repeats=1, warmup=0, memory=False)
    assert log == ["sync", "fn", "sync"] and t.peak_mem_mb is None


def _allocate_200mb():
    x = torch.ones(50 * 2**20)  # 200 MiB of float32, every page written
    time.sleep(0.02)  # hold it for many sampling intervals
    return x.numel()


PEAK_CHECK = """
import json, time, torch
from experiments.timing import measure
from tests.experiments.test_timing import _allocate_200mb
idle = measure(lambda: time.sleep(0.02), "cpu", repeats=2)
busy = measure(_allocate_200mb, "cpu", repeats=2)
print(json.dumps([idle.extra_mem_mb, busy.extra_mem_mb, busy.peak_mem_mb, busy.base_mem_mb]))
"""


def test_peak_memory_sees_a_200mb_allocation():
    """In a fresh process: a long test session's heap can hold 200 MB of freed, still resident memory that the
    allocation reuses, and then RSS rightly does not grow (seen after 600 tests at 2.9 GB RSS)."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", PEAK_CHECK], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    idle, busy, peak, base = json.loads(out.stdout.splitlines()[-1])
    assert busy == pytest.approx(200, abs=30)
    assert idle < 30
    assert peak > base > 0


def test_memory_not_measured_when_rss_unreadable(monkeypatch):
    monkeypatch.setattr(timing, "_rss_reader", lambda: None)
    t = measure(lambda: None, "cpu", repeats=1)
    assert t.peak_mem_mb is None and t.base_mem_mb is None
    assert "peak_mem_mb" not in {row["metric"] for row in speed_rows(t, {})}


def test_speed_rows_values():
    t = Timing([1.0, 2.0, 4.0], warmup_s=10.0, peak_mem_mb=300.0, base_mem_mb=100.0, device="cpu")
    rows = {row["metric"]: row["value"] for row in speed_rows(t, {"images": 8, "units": 4, "perturbations": 100})}
    assert rows == {
        "time_s": 2.0, "time_min_s": 1.0, "time_max_s": 4.0, "warmup_s": 10.0,
        "peak_mem_mb": 300.0, "extra_mem_mb": 200.0,
        "images_per_s": 4.0, "units_per_s": 2.0, "perturbations_per_s": 50.0,
    }


def test_speed_rows_rejects_unknown_work():
    t = Timing([1.0], None, None, None, "cpu")
    with pytest.raises(ValueError, match="unknown work kind 'pixels'; valid: units, images, perturbations"):
        speed_rows(t, {"pixels": 3})


def test_oom_retry_halves_until_it_fits():
    tried = []

    def fn(batch):
        tried.append(batch)
        if batch > 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return f"ran {batch}"

    assert with_oom_retry(fn, 64) == ("ran 8", 8)
    assert tried == [64, 32, 16, 8]


def test_oom_retry_gives_up_below_min_batch(monkeypatch):
    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    tried = []

    def fn(batch):
        tried.append(batch)
        raise torch.OutOfMemoryError("CUDA out of memory.\nmore details")

    with pytest.raises(torch.OutOfMemoryError, match=r"batch_size=2 \(min_batch=2\): CUDA out of memory\.$") as info:
        with_oom_retry(fn, 8, min_batch=2)
    assert tried == [8, 4, 2]
    assert len(emptied) == 3
    assert "\n" not in str(info.value)


def test_oom_retry_other_errors_pass_through():
    def fn(batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        with_oom_retry(fn, 8)


@pytest.mark.parametrize("batch,min_batch", [(4, 0), (2, 4)])
def test_oom_retry_rejects_bad_sizes(batch, min_batch):
    with pytest.raises(ValueError, match="min_batch"):
        with_oom_retry(lambda b: b, batch, min_batch=min_batch)


def test_ratio_is_median_over_median():
    a = Timing([1.0, 3.0, 9.0], None, None, None, "cpu")
    b = Timing([6.0], None, None, None, "cpu")
    assert ratio(a, b) == 0.5
