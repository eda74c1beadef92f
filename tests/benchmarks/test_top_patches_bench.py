"""Speed of top patches: one streaming pass (all units at once) vs the bare truncated forward over the same data.

vizbench's time includes everything: the forward passes, the running top-k, the receptive field, the crops and
the context pictures. The bare limit is the truncated model's forward over the same batches. Both are timed
interleaved in the same rounds (best round kept); extra_info["vs_bare"] = vizbench / bare time
(experiments.timing.ratio; 1 = as fast as the bare forward). Default runs are small; the full size is
    VIZBENCH_BENCH_FULL=1 pytest tests/benchmarks/test_top_patches_bench.py --benchmark-enable -s
(resnet18 random init, layer2, 32 units, k=9, 256 images at 112 px, batch 64; 3 rounds).
"""
from __future__ import annotations

import os

import pytest
import torch
import torchvision

from methods import top_patches
from methods.base import Normalize, Target, truncate
from experiments.timing import ratio
from tests.benchmarks.interleaved import best_times

FULL = os.environ.get("VIZBENCH_BENCH_FULL") == "1"
SIZE = dict(images=256, input_size=112, rounds=3) if FULL else dict(images=32, input_size=64, rounds=1)
SIZE.update(batch_size=64, units=32, k=9)
LAYER = "layer2"
IMAGENET = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """ResNet-18 with random weights (nothing is downloaded)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def test_top_patches_speed(benchmark, model) -> None:
    torch.manual_seed(1)
    images = torch.rand(SIZE["images"], 3, SIZE["input_size"], SIZE["input_size"])
    target = Target(LAYER, tuple(range(SIZE["units"])))
    viz = lambda: top_patches.visualize(model, images, target, normalize=IMAGENET, k=SIZE["k"], batch_size=SIZE["batch_size"])
    net = truncate(model, LAYER, IMAGENET)

    def bare() -> None:
        with torch.inference_mode():
            for b in images.split(SIZE["batch_size"]):
                net(b)

    benchmark.group = f"top_patches resnet18 {LAYER} {SIZE['units']}u {SIZE['images']}img {SIZE['input_size']}px"
    benchmark.extra_info.update(threads=torch.get_num_threads(), **SIZE)
    if benchmark.disabled:  # smoke: both run once
        vis = benchmark.pedantic(viz, rounds=1, iterations=1)
        assert vis.images.shape[0] == SIZE["units"] * SIZE["k"]
        bare()
        return
    times = best_times({"vizbench": viz, "bare": bare}, SIZE["rounds"])
    vs_bare = ratio(times["vizbench"], times["bare"])
    benchmark.extra_info.update(times_s=times, vs_bare=vs_bare, images_per_s=SIZE["images"] / times["vizbench"])
    print(f"\n{benchmark.group}: vizbench {times['vizbench']:.3f}s, bare {times['bare']:.3f}s; vs_bare {vs_bare:.3f}")
    benchmark.pedantic(viz, rounds=SIZE["rounds"], iterations=1)
