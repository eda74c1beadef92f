"""Any model, any input: transformer blocks, 1- and 4-channel inputs, a dense tuple-output model on the user's images,
each run through all four methods by the run's own path (experiments.coverage.check_model)."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor, nn

from experiments import run as run_module
from experiments.coverage import check_model, table
from tests.conftest import make_cfg

METHODS = ("raw_weights", "gradient_ascent", "occlusion", "top_patches")


def assert_all_ok(rows: list[dict]) -> None:
    """Every (model, method) row ok, else the table of failures."""
    failed = [r for r in rows if r["status"] != "ok"]
    assert not failed, table(rows).to_markdown()
    assert {r["method"] for r in rows} == set(METHODS)


@pytest.mark.parametrize("name, layer", [("vit_b_16", "encoder.layers.encoder_layer_5"), ("swin_t", "features.3")])
@pytest.mark.parametrize("kind", ["channel", "neuron"])
def test_transformer_blocks_run_every_method(name: str, layer: str, kind: str) -> None:
    base = ["model=torchvision", f"model.name={name}", "data.n=4"]
    rows = check_model([*base, f"target.layer={layer}", f"target.kind={kind}", "target.units=[0, 5]"], METHODS[1:])
    rows += check_model(base, METHODS[:1])  # raw weights: the patch embedding, the only layer that sees colours
    assert_all_ok(rows)
    assert {r["layers"] for r in rows if r["method"] != "raw_weights"} == {layer}


def make_gray_cnn() -> nn.Module:
    """A 1-channel CNN for 28 px inputs (MNIST-like), seeded."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 8, 3, padding=1), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
        fc=nn.Linear(16, 10))).eval()


def make_four_channel_cnn() -> nn.Module:
    """A 4-channel (RGB + near infrared) CNN for 64 px inputs, seeded."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(4, 8, 5, padding=2), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, 16, 3, padding=1), relu2=nn.ReLU(), pool2=nn.MaxPool2d(2),
        conv3=nn.Conv2d(16, 16, 3, padding=1), relu3=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
        fc=nn.Linear(16, 3))).eval()


class DenseNet(nn.Module):
    """A dense predictor returning (per-pixel class scores [N, 3, H/2, W/2], image logits [N, 3])."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        dense = self.head(self.body(self.stem(x)))
        return dense, dense.mean((2, 3))


def make_dense_net() -> nn.Module:
    """A seeded DenseNet."""
    torch.manual_seed(0)
    return DenseNet().eval()


def arrays_file(path: Path, n: int, channels: int, side: int) -> Path:
    """A .npz of `n` seeded uint8 images [n, channels, side, side] with labels."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, channels, side, side), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(n) % 3)
    return path


def custom(factory: str, size: str, channels: int) -> list[str]:
    """Overrides for one of this module's models."""
    stats = "[" + ",".join(["0.5"] * channels) + "]"
    return ["model=custom", f"model.factory=tests.experiments.test_any_model.{factory}", f"model.input_size={size}",
            f"model.mean={stats}", f"model.std={stats}", "data.n=12"]


@pytest.mark.parametrize("data", ["skimage", "arrays"])
def test_one_channel_model_runs_every_method(tmp_path: Path, data: str) -> None:
    source = [f"data.path={arrays_file(tmp_path / 'gray.npz', 12, 1, 28)}"] if data == "arrays" else []
    assert_all_ok(check_model([*custom("make_gray_cnn", "28", 1), f"data={data}", *source], name="gray28"))


def test_four_channel_model_runs_every_method(tmp_path: Path) -> None:
    path = arrays_file(tmp_path / "rgbn.npz", 12, 4, 64)
    assert_all_ok(check_model([*custom("make_four_channel_cnn", "64", 4), "data=arrays", f"data.path={path}"],
                              name="rgbn64"))


def test_mean_of_the_wrong_length_is_one_line() -> None:
    rows = check_model([*custom("make_four_channel_cnn", "64", 3)], METHODS[:1], name="rgbn64")
    assert rows[0]["status"].startswith("failed: ValueError: model.mean") and "4" in rows[0]["status"]


def user_images(root: Path, size: tuple[int, int] = (60, 90)) -> Path:
    """An image folder of 6 photos-like RGB images, each with a mask PNG of a bright rectangle beside it."""
    rng = np.random.default_rng(1)
    (root / "things").mkdir(parents=True)
    for i in range(6):
        pixels = (rng.random((*size, 3)) * 80).astype(np.uint8)
        mask = np.zeros(size, dtype=np.uint8)
        top, left = 10 + 5 * i, 20 + 6 * i
        pixels[top:top + 20, left:left + 25] = 230
        mask[top:top + 20, left:left + 25] = 255
        Image.fromarray(pixels).save(root / "things" / f"{i}.png")
        Image.fromarray(mask).save(root / "things" / f"{i}.mask.png")
    return root


def test_dense_tuple_output_model_on_user_images_with_masks(tmp_path: Path) -> None:
    base = [*custom("make_dense_net", "[48,80]", 3), "model.output=0", "data=image_folder",
            f"data.root={user_images(tmp_path / 'images')}"]
    assert_all_ok(check_model(base, name="dense"))
    neuron = check_model([*base, "target.layer=output", "target.kind=neuron", "target.units=[1]"], METHODS[1:],
                         name="dense")
    assert_all_ok(neuron + check_model(base, METHODS[:1], name="dense"))
    cfg = make_cfg("progress=false", *base, "method=occlusion", "method.params.window=8", "method.params.stride=8",
                   "target.kind=class", "target.units=[1]", "metrics.enabled=[pointing_game]")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path / "run")
    df = run_module.run(cfg)
    pointing = df[df.metric == "pointing_game"]
    assert len(pointing) == 2 and pointing.status.eq("ok").all(), pointing[["value", "status"]]


@pytest.mark.parametrize("factory, size, channels", [("make_gray_cnn", 28, 1), ("make_four_channel_cnn", 64, 4)])
@pytest.mark.parametrize("method", ["top_patches", "occlusion"])
def test_every_metric_runs_on_one_and_four_channel_models(tmp_path: Path, factory: str, size: int, channels: int,
                                                          method: str) -> None:
    # the metrics' own receptive fields and model passes take the model's channels (mis_proxy once fed 3)
    path = arrays_file(tmp_path / "images.npz", 40, channels, size)
    cfg = make_cfg("progress=false", *custom(factory, str(size), channels), "data=arrays", f"data.path={path}",
                   "data.n=40", f"method={method}", "metrics=full")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path / "run")
    df = run_module.run(cfg)
    assert not df.status.str.startswith("failed").any(), df[df.status.ne("ok")][["metric", "status"]].to_string()
    assert df.metric.eq("mis_proxy").any() == (method == "top_patches")


def test_mis_proxy_with_too_few_images_is_degenerate_not_failed(tmp_path: Path) -> None:
    # as many images as max references (metrics.mis_references=9): top patches takes them all, no queries are left
    cfg = make_cfg("progress=false", *custom("make_gray_cnn", "28", 1), "data=skimage", "data.n=9",
                   "method=top_patches", "metrics=full", "metrics.enabled=[mis_proxy]")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path / "run")
    rows = run_module.run(cfg).query("metric == 'mis_proxy'")
    assert len(rows) and rows.status.str.startswith("degenerate: only 0 images left after excluding 9").all()
    assert rows.value.isna().all()
