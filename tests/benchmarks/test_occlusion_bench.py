"""Speed of occlusion: vizbench vs captum's Occlusion vs a bare batched forward over the same occluded images.

Both targets use resnet18 with random weights. `class`: a logit, every window evaluated. `neuron`: the centre unit
of layer1 (receptive field 43 px, smaller than the image), so vizbench evaluates only the windows that overlap it;
captum evaluates every window with the same truncated forward. captum's time is the best of
perturbations_per_eval 1 and the batch size. All contenders are timed interleaved in the same rounds (best round
kept) and the ratios go to extra_info: vs_peer = vizbench / captum and vs_bare = vizbench / bare (experiments.timing.ratio: < 1 = vizbench faster).
Default runs are small; the full size is
    VIZBENCH_BENCH_FULL=1 pytest tests/benchmarks/test_occlusion_bench.py --benchmark-enable -s
(112 px; class: window 16 stride 8, 169 windows; neuron: window 8 stride 4, 729 windows; 3 rounds).
"""
from __future__ import annotations

import os
from typing import Callable

import pytest
import torch
import torchvision

from experiments.peers.captum_occlusion import captum_occlusion
from methods import occlusion
from methods.base import Normalize, Target, truncate
from experiments.timing import ratio
from tests.benchmarks.interleaved import best_times

FULL = os.environ.get("VIZBENCH_BENCH_FULL") == "1"
SIZE = dict(input_size=112, images=1, rounds=3, batch_size=64) if FULL else dict(input_size=64, images=1, rounds=1, batch_size=64)
CASES = {
    "class": (Target("", (1,), "class"), 16, 8),
    "neuron": (Target("layer1", (3,), "neuron"), 8, 4),
}
IMAGENET = Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """ResNet-18 with random weights (nothing is downloaded)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


def _bare(model: torch.nn.Module, images: torch.Tensor, target: Target, window: int, vis) -> Callable[[], None]:
    """The same forward passes as vizbench (originals + evaluated windows), on prepared occluded batches."""
    net = truncate(model, target.layer, IMAGENET)
    rows, cols = vis.windows
    kept = vis.evaluated.nonzero()
    which = torch.arange(len(images)).repeat_interleave(len(kept))
    i, j = kept.repeat(len(images), 1).T
    occluded = occlusion.occlude(images, 0.5, which, rows[i], cols[j], window)
    batches = [images, *occluded.split(SIZE["batch_size"])]

    def run() -> None:
        with torch.inference_mode():
            for b in batches:
                net(b)
    return run


@pytest.mark.parametrize("case", list(CASES))
def test_occlusion_speed(benchmark, model, case: str) -> None:
    target, window, stride = CASES[case]
    torch.manual_seed(1)
    images = torch.rand(SIZE["images"], 3, SIZE["input_size"], SIZE["input_size"])
    viz = lambda: occlusion.visualize(model, images, target, normalize=IMAGENET, window=window, stride=stride,
                                      batch_size=SIZE["batch_size"])
    vis = benchmark.pedantic(viz, rounds=1, iterations=1) if benchmark.disabled else viz()
    peer = lambda ppe: lambda: captum_occlusion(model, images, target, window, stride, "grey", ppe, normalize=IMAGENET)
    benchmark.group = f"occlusion {case} resnet18 {SIZE['input_size']}px w{window} s{stride}"
    benchmark.extra_info.update(case=case, threads=torch.get_num_threads(), perturbations=vis.perturbations,
                                windows=vis.evaluated.numel() * SIZE["images"], **SIZE)
    if benchmark.disabled:  # smoke: every contender runs once and the peer agrees
        torch.testing.assert_close(vis.maps, peer(SIZE["batch_size"])(), atol=1e-5, rtol=0)
        _bare(model, images, target, window, vis)()
        return
    times = best_times({"vizbench": viz, "captum_ppe1": peer(1), "captum_ppe_batch": peer(SIZE["batch_size"]),
                   "bare": _bare(model, images, target, window, vis)}, SIZE["rounds"])
    captum = min(times["captum_ppe1"], times["captum_ppe_batch"])
    vs_peer, vs_bare = ratio(times["vizbench"], captum), ratio(times["vizbench"], times["bare"])
    benchmark.extra_info.update(times_s=times, vs_peer=vs_peer, vs_bare=vs_bare)
    print(f"\n{benchmark.group}: " + ", ".join(f"{k} {v:.3f}s" for k, v in times.items())
          + f"; vs_peer {vs_peer:.2f}, vs_bare {vs_bare:.2f} (vizbench / other: < 1 = faster)")
    benchmark.pedantic(viz, rounds=SIZE["rounds"], iterations=1)
