"""The zoo: torchvision by name, user models with checkpoints, clear errors on bad input."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from experiments.zoo import auto_targets, build_model
from experiments.zoo.torchvision_models import build_torchvision
from tests.conftest import make_tiny_cnn


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown torchvision model 'resnet181'.*did you mean resnet18.*valid: alexnet"):
        build_torchvision("resnet181")


def test_weights_unavailable_offline_name_file_and_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_torchvision("resnet18", "DEFAULT")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "hub" / "checkpoints") in msg


def test_cached_weights_load_from_torch_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ref = build_torchvision("resnet18", None).model
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(ref.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    spec = build_torchvision("resnet18", "IMAGENET1K_V1")
    assert torch.equal(spec.model.conv1.weight, ref.conv1.weight)
    assert spec.input_size == 224 and spec.mean == (0.485, 0.456, 0.406)


def test_unknown_weights_name_lists_valid() -> None:
    with pytest.raises(ValueError, match="valid: DEFAULT, IMAGENET1K_V1"):
        build_torchvision("resnet18", "IMAGENET9K")


def custom_cfg(**kw: object):
    base = {"source": "custom", "name": "tiny", "factory": "tests.conftest.make_tiny_cnn", "checkpoint": None,
            "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "targets": {}}
    return OmegaConf.create({**base, **kw})


def test_custom_model_checkpoint_round_trip(tmp_path) -> None:
    model = make_tiny_cnn()
    with torch.no_grad():
        model.conv1.weight.mul_(3)
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    spec = build_model(custom_cfg(checkpoint=str(path)))
    assert torch.equal(spec.model.conv1.weight, model.conv1.weight)
    assert spec.default_targets == {"conv1": [0, 1, 2, 3], "conv2": [0, 1, 2, 3]}


def test_missing_checkpoint_names_the_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: .*nope.pt"):
        build_model(custom_cfg(checkpoint=str(tmp_path / "nope.pt")))


def test_bad_factory_path() -> None:
    with pytest.raises(ValueError, match="cannot be imported"):
        build_model(custom_cfg(factory="tests.conftest.no_such_thing"))


def test_auto_targets_first_and_middle_conv() -> None:
    spec = build_torchvision("googlenet")
    targets = auto_targets(spec.model)
    assert list(targets)[0] == "conv1.conv" and len(targets) == 2
