"""Speed of gradient ascent: vizbench (all units in one batch) vs lucent (one unit per call) vs the bare limit.

Same model, layer, resolution, steps and transforms (Lucid's standard set) for all three; the bare limit is the
truncated model's forward + backward to the input on the same batch, `steps` times, with no transforms, on the
graph vizbench runs (methods/graph.py: fx graph up to the layer, BatchNorm folded, channels_last).
Compare per-unit times (extra_info["per_unit_s"]). Default runs are tiny; the full size is
    VIZBENCH_BENCH_FULL=1 pytest tests/benchmarks/test_gradient_ascent_bench.py --benchmark-enable
(googlenet, random init, inception4a, 8 units, 128 px, 64 steps; 3 rounds each). On a busy machine, paired
rounds give steadier ratios:  PYTHONPATH=. python tests/benchmarks/test_gradient_ascent_bench.py [rounds]
(each round times vizbench, lucent and bare back to back and prints the per-unit ratios of that round).
"""
import os
import statistics
import sys
import time

import pytest
import torch
import torchvision

from experiments.peers.lucent import bare_step, lucent_render
from experiments.timing import ratio
from methods.base import Normalize, Target
from methods.gradient_ascent import visualize
from methods.graph import fast_forward

FULL = os.environ.get("VIZBENCH_BENCH_FULL") == "1"
SIZE = dict(units=8, input_size=128, steps=64, rounds=3) if FULL else dict(units=2, input_size=64, steps=2, rounds=1)
LAYER = "inception4a"
IMAGENET = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """GoogLeNet with random weights (nothing is downloaded)."""
    torch.manual_seed(0)
    return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()


def _run(benchmark, fn, label: str) -> None:
    """Time fn for SIZE rounds (plus one warm-up round) and record the per-unit time and settings."""
    benchmark.group = f"gradient_ascent {LAYER} {SIZE['units']}u {SIZE['input_size']}px {SIZE['steps']}st"
    benchmark.extra_info.update(method=label, threads=torch.get_num_threads(), **SIZE)
    benchmark.pedantic(fn, rounds=SIZE["rounds"], iterations=1, warmup_rounds=1 if FULL else 0)
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["per_unit_s"] = benchmark.stats.stats.mean / SIZE["units"]


def vizbench_run(model: torch.nn.Module) -> None:
    """All units in one batch, Olah 2017 settings."""
    visualize(model, Target(LAYER, tuple(range(SIZE["units"]))), input_size=SIZE["input_size"], normalize=IMAGENET,
              steps=SIZE["steps"], param="fourier", decorrelate=True, transforms="standard", optimizer="adam", lr=0.05)


def lucent_run(model: torch.nn.Module) -> None:
    """lucent's render_vis, one unit per call."""
    for u in range(SIZE["units"]):
        lucent_render(model, LAYER, u, SIZE["input_size"], SIZE["steps"])


def bare_run(model: torch.nn.Module) -> None:
    """The truncated model's forward + backward on the batch, `steps` times (the graph vizbench runs)."""
    trunc = fast_forward(model, LAYER, IMAGENET, channels_last=True)
    batch = torch.rand(SIZE["units"], 3, SIZE["input_size"], SIZE["input_size"])
    for _ in range(SIZE["steps"]):
        bare_step(trunc, batch)


def test_vizbench(benchmark, model):
    _run(benchmark, lambda: vizbench_run(model), "vizbench")


def test_lucent(benchmark, model):
    pytest.importorskip("lucent")
    _run(benchmark, lambda: lucent_run(model), "lucent")


def test_bare(benchmark, model):
    _run(benchmark, lambda: bare_run(model), "bare")


def paired(rounds: int) -> None:
    """Time the three back to back for `rounds` rounds (after one warm-up) and print per-unit times and ratios."""
    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    runs = {"vizbench": vizbench_run, "lucent": lucent_run, "bare": bare_run}
    print(f"{SIZE} threads={torch.get_num_threads()}")
    for fn in runs.values():
        fn(net)
    ratios: dict[str, list[float]] = {"vs_peer": [], "vs_bare": []}  # vizbench / other: < 1 = vizbench faster
    for r in range(rounds):
        per_unit = {}
        for name, fn in runs.items():
            t = time.perf_counter()
            fn(net)
            per_unit[name] = (time.perf_counter() - t) / SIZE["units"]
        ratios["vs_peer"].append(ratio(per_unit["vizbench"], per_unit["lucent"]))
        ratios["vs_bare"].append(ratio(per_unit["vizbench"], per_unit["bare"]))
        print(f"round {r}: per-unit s " + ", ".join(f"{k} {v:.3f}" for k, v in per_unit.items())
              + " | " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in ratios.items()), flush=True)
    print("median: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    paired(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
