"""ShapesCNN: the committed checkpoint classifies fresh shapes; the Hydra training entry point writes what it promises."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module

from experiments.data.shapes import CLASSES, make_shapes
from experiments.train import accuracy, train
from experiments.zoo.shapes_cnn import CHECKPOINT, build_shapes_cnn
from methods.base import get_module, layer_shape

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**overrides):
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="train", overrides=[f"{k}={v}" for k, v in overrides.items()])


def test_committed_checkpoint_files():
    assert CHECKPOINT.stat().st_size < 1_000_000
    assert json.loads(CHECKPOINT.with_suffix(".json").read_text())["held_out_accuracy"] >= 0.95
    assert "n_train:" in CHECKPOINT.with_suffix(".yaml").read_text()


def test_spec_and_layers():
    spec = build_shapes_cnn()
    assert spec.name == "shapes_cnn" and spec.weights == "built-in" and spec.num_classes == len(CLASSES)
    assert not spec.model.training
    for name in ("conv1", "bn1", "relu1", "pool1", "conv2", "pool2", "conv3", "relu3", "pool3", "fc"):
        get_module(spec.model, name)
    for layer, units in spec.default_targets.items():
        assert max(units) < layer_shape(spec.model, layer, spec.input_size)[0]


def test_committed_checkpoint_accuracy_on_fresh_shapes():
    spec = build_shapes_cnn()
    data = make_shapes(450, seed=999_999)  # a seed training (seed * 1000 + epoch) and validation (500_000) never use
    assert accuracy(spec.model, data.images, data.labels) >= 0.95


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^model.checkpoint '.*nope.pt' not found .*experiments.train"):
        build_shapes_cnn(str(tmp_path / "nope.pt"))


def test_train_writes_checkpoint_config_and_accuracy(tmp_path):
    """A tiny run through the composed config: the three files appear and the checkpoint loads."""
    out = tmp_path / "tiny.pt"
    result = train(_cfg(n_train=64, n_val=32, epochs=1, batch_size=32, width=4, out=str(out)))
    assert out.is_file() and out.with_suffix(".yaml").is_file()
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["held_out_accuracy"] == pytest.approx(result["held_out_accuracy"])
    assert "width: 4" in out.with_suffix(".yaml").read_text()
    spec = build_shapes_cnn(str(out))
    assert spec.weights == str(out) and spec.model.conv1.out_channels == 4
    assert spec.model(torch.zeros(1, 3, 64, 64)).shape == (1, len(CLASSES))


@pytest.mark.slow
def test_training_entry_point_reaches_95_percent(tmp_path):
    """python -m experiments.train end to end with the default config (about 1-2 min on 2 cores)."""
    out = tmp_path / "shapes_cnn.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "experiments.train", f"out={out}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held-out accuracy" in proc.stdout
    assert json.loads(out.with_suffix(".json").read_text())["held_out_accuracy"] >= 0.95
    data = make_shapes(450, seed=999_999)
    assert accuracy(build_shapes_cnn(str(out)).model, data.images, data.labels) >= 0.95
