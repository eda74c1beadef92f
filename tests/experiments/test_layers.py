"""The layer browser: every module with its type, shapes, channels, receptive field and default targets."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.layers import layer_table, main
from experiments.zoo.spec import ModelSpec
from tests.conftest import small_net

ROOT = Path(__file__).resolve().parents[2]


def rows(out: str) -> dict[str, str]:
    """The table lines printed by main, by their first word (the layer name)."""
    return {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}


def test_constructed_net_has_its_known_shapes_and_fields() -> None:
    spec = ModelSpec(name="small", model=small_net(), weights=None, input_size=16, mean=(0.5,) * 3, std=(0.5,) * 3,
                     default_targets={"conv2": [0, 1]})
    table = layer_table(spec).set_index("layer")
    assert list(table.index) == ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flat", "fc"]
    assert table.loc["conv1", ["type", "output", "map", "channels", "rf"]].tolist() == ["Conv2d", "[6, 16, 16]",
                                                                                         "6x16x16", "6", "3"]
    assert table.loc["pool", "rf"] == "4" and table.loc["conv2", "rf"] == "8" and table.loc["conv2", "target"] == "0,1"
    assert table.loc["fc", ["output", "map", "channels", "rf", "target"]].tolist() == ["[5]", "5", "5", "-", ""]
    assert table.loc["gap", ["map", "rf"]].tolist() == ["8x1x1", "-"]  # fields of maps larger than 1x1 only


def test_resnet18(capsys: pytest.CaptureFixture) -> None:
    assert main(["model=resnet18"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("resnet18: input [3, 224, 224]; default targets (target.layer=...): conv1, "
                                   "layer2.1.conv2, layer3")
    table = rows(out)
    assert table["conv1"].split() == ["conv1", "Conv2d", "[64,", "112,", "112]", "64x112x112", "64", "7", "graph",
                                      "0,1,2,3,4,5,6,7"]
    assert table["layer2.1"].split()[1:7] == ["BasicBlock", "[128,", "28,", "28]", "128x28x28", "128"]
    assert table["fc"].split()[1:] == ["Linear", "[1000]", "1000", "1000", "-", "-"]
    assert table["layer3"].split()[-1] == "0,1,2,3"


def test_vit_b_16_token_layers_read_as_maps(capsys: pytest.CaptureFixture) -> None:
    assert main(["model=torchvision", "model.name=vit_b_16"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("vit_b_16: input [3, 224, 224]; default targets (target.layer=...): conv_proj, "
                                   "encoder.layers.encoder_layer_3, encoder.layers.encoder_layer_7")
    table = rows(out)
    block = table["encoder.layers.encoder_layer_3"]
    assert "EncoderBlock [197, 768] 768x14x14 tokens 14x14 (1 leading token dropped) 768" in " ".join(block.split())
    assert block.split()[-1] == "0,1,2,3"
    assert table["conv_proj"].split()[-3:] == ["16", "graph", "0,1,2,3"]
    assert table["encoder.layers.encoder_layer_0.self_attention"].split()[1:3] == ["MultiheadAttention", "tuple"]
    assert table["encoder.layers.encoder_layer_0.self_attention.out_proj"].split()[-2:] == ["not", "called"]
    assert "--measure" in out.splitlines()[-1]


def test_bad_override_is_one_error_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["model=torchvision", "model.name=resnet181"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown torchvision model 'resnet181'")


def test_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "experiments.layers", "model=custom",
                           "model.factory=tests.conftest.make_tiny_cnn", "model.input_size=[32,24]"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith("input [3, 32, 24]; default targets (target.layer=...): conv1, conv2")
    assert rows(done.stdout)["conv2"].split()[1:] == ["Conv2d", "[16,", "16,", "12]", "16x16x12", "16", "7", "graph",
                                                      "0,1,2,3"]
