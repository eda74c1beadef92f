"""The zoo: torchvision by name, user models with checkpoints, clear errors on bad input."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from experiments.config import ModelConf
from experiments.builders import CONF, options
from experiments.zoo import auto_targets, build_model
from experiments.zoo.spec import ModelSpec
from experiments.zoo.torchvision_models import build_torchvision
from tests.conftest import make_cfg, make_tiny_cnn

BUILDERS = {"planted": "planted.build_planted", "shapes_cnn": "shapes_cnn.build_shapes_cnn",
            "custom": "custom.build_custom", "googlenet": "torchvision_models.build_torchvision",
            "resnet18": "torchvision_models.build_torchvision", "torchvision": "torchvision_models.build_torchvision"}


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


def build_tiny(name: str, input_size: int) -> ModelSpec:
    """A model source written as a plain function: only the config fields it names arrive."""
    return ModelSpec(name=name, model=make_tiny_cnn(), weights=None, input_size=input_size, mean=(0.5,) * 3,
                     std=(0.5,) * 3)


def build_deep(depth: int) -> ModelSpec:
    """A builder that needs a field no model config has."""
    raise AssertionError("never called")


def test_options_are_the_known_builders() -> None:
    assert options("model") == sorted(BUILDERS)


@pytest.mark.parametrize("option", sorted(BUILDERS))
def test_every_model_option_builds_through_its_target(option: str) -> None:
    cfg = make_cfg(f"model={option}", "model.factory=tests.conftest.make_tiny_cnn").model
    assert cfg._target_ == f"experiments.zoo.{BUILDERS[option]}"
    spec = build_model(cfg)
    assert isinstance(spec, ModelSpec) and spec.name == cfg.name and spec.default_targets
    if cfg.targets:
        assert spec.default_targets == OmegaConf.to_container(cfg.targets)


@pytest.mark.parametrize("option", sorted(BUILDERS))
def test_speed_style_model_conf_builds(option: str) -> None:
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConf), OmegaConf.load(CONF / "model" / f"{option}.yaml"))
    cfg.factory = "tests.conftest.make_tiny_cnn"
    assert build_model(cfg).name == cfg.name


def test_bare_model_conf_is_planted() -> None:
    spec = build_model(OmegaConf.structured(ModelConf()))
    assert spec.name == "planted" and spec.ground_truth is not None


def test_target_wins_over_source() -> None:
    cfg = OmegaConf.structured(ModelConf(_target_=f"{__name__}.build_tiny", source="planted", name="t", input_size=32))
    spec = build_model(cfg)
    assert spec.name == "t" and spec.input_size == 32 and spec.ground_truth is None


def test_new_source_is_one_function_and_one_config() -> None:
    cfg = OmegaConf.create({"_target_": f"{__name__}.build_tiny", "name": "mine", "input_size": 48,
                            "weights": "not a parameter of build_tiny"})
    spec = build_model(cfg)
    assert spec.name == "mine" and spec.input_size == 48
    assert spec.default_targets == {"conv1": [0, 1, 2, 3], "conv2": [0, 1, 2, 3]}


def test_config_targets_override_the_builders() -> None:
    spec = build_model(OmegaConf.structured(ModelConf(source="planted", targets={"conv2": [1]})))
    assert spec.default_targets == {"conv2": [1]}


def test_bad_target_is_one_line_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(ValueError) as err:
        build_model(OmegaConf.structured(ModelConf(_target_=f"{__name__}.no_such_builder")))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"unknown model._target_ '{__name__}.no_such_builder'; valid: ")
    assert "experiments.zoo.planted.build_planted" in msg and "experiments.zoo.custom.build_custom" in msg


def test_bad_module_in_target_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^unknown model._target_ 'no_such_pkg.build'; valid: .*No module named") as err:
        build_model(OmegaConf.create({"_target_": "no_such_pkg.build"}))
    assert "\n" not in str(err.value)


def test_unknown_source_lists_the_model_options() -> None:
    with pytest.raises(ValueError) as err:
        build_model(OmegaConf.structured(ModelConf(source="nope")))
    assert str(err.value) == "unknown model.source 'nope'; valid: custom, googlenet, planted, resnet18, shapes_cnn, torchvision"


def test_builder_parameter_missing_from_config_is_named() -> None:
    with pytest.raises(ValueError, match=rf"model._target_='{__name__}.build_deep' needs model.depth"):
        build_model(OmegaConf.structured(ModelConf(_target_=f"{__name__}.build_deep")))


def test_custom_without_factory_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="model=custom needs model.factory="):
        build_model(make_cfg("model=custom").model)
