"""The zoo: torchvision by name, user models with checkpoints, clear errors on bad input."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet18_Weights
from omegaconf import OmegaConf

from experiments.config import ModelConf
from experiments.builders import CONF, options
from experiments.zoo import auto_targets, build_model
from experiments.zoo.spec import ModelSpec
from experiments.zoo.shapes_cnn import CHECKPOINT, build_shapes_cnn
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


def test_unknown_weights_name_lists_each_valid_name_once() -> None:
    with pytest.raises(ValueError) as err:
        build_torchvision("resnet18", "IMAGENET9K")
    assert str(err.value) == "unknown model.weights 'IMAGENET9K'; did you mean IMAGENET1K_V1? valid: DEFAULT, IMAGENET1K_V1, null (weights for resnet18)"


def hub_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes) -> Path:
    """`content` where torch hub looks for resnet18's DEFAULT weights, with TORCH_HOME at `tmp_path`."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(ResNet18_Weights.DEFAULT.url)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path


def test_missing_hub_file_says_where_to_put_it_and_where_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_torchvision("resnet18", "DEFAULT")
    msg = str(err.value)
    assert "\n" not in msg and "model.weights=DEFAULT" in msg and ResNet18_Weights.DEFAULT.url in msg
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


DAMAGE = {"random bytes": "is corrupt or not a torch.save file (the weights-only unpickler stops at: Unsupported operand",
          "truncated": "is truncated or corrupt: a zip archive as torch.save writes, but its end is missing",
          "empty": "is empty (0 bytes)"}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_hub_file_names_it_and_the_fix(tmp_path, monkeypatch, damage: str) -> None:
    content = {"random bytes": noise(4096), "truncated": state_bytes()[: len(state_bytes()) // 2], "empty": b""}
    path = hub_file(tmp_path, monkeypatch, content[damage])
    with pytest.raises(ValueError) as err:
        build_torchvision("resnet18", "DEFAULT")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"model.weights=DEFAULT: the weights file {path} {DAMAGE[damage]}")
    assert f"delete it, download {ResNet18_Weights.DEFAULT.url} on a machine with internet and put it at {path}" in msg


def test_hub_file_of_another_model_names_its_keys(tmp_path, monkeypatch) -> None:
    path = hub_file(tmp_path, monkeypatch, state_bytes())
    with pytest.raises(ValueError) as err:
        build_torchvision("resnet18", "DEFAULT")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"model.weights=DEFAULT: the weights file {path} does not fit resnet18: ")
    assert "conv1.weight is [8, 3, 5, 5] in the file but [64, 3, 7, 7] in the model" in msg and "delete it" in msg


def test_hub_file_holding_pickled_objects_is_refused(tmp_path, monkeypatch) -> None:
    buffer = io.BytesIO()
    torch.save(make_tiny_cnn(), buffer)
    path = hub_file(tmp_path, monkeypatch, buffer.getvalue())
    with pytest.raises(ValueError, match=rf"^model.weights=DEFAULT: the weights file {path} holds pickled Python objects"):
        build_torchvision("resnet18", "DEFAULT")


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
    msg = one_line_error(FileNotFoundError, custom_cfg(checkpoint=str(tmp_path / "nope.pt")))
    assert msg == f"model.checkpoint {str(tmp_path / 'nope.pt')!r} not found (no such file)"


def test_bad_factory_path() -> None:
    msg = one_line_error(ValueError, custom_cfg(factory="tests.conftest.no_such_thing"))
    assert msg.startswith("model.factory 'tests.conftest.no_such_thing' cannot be imported: AttributeError: ")


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


def noise(n: int) -> bytes:
    """`n` seeded random bytes (the same every run, so the unpickler always stops at the same place)."""
    return random.Random(0).randbytes(n)


def state_bytes() -> bytes:
    """A real checkpoint file's bytes: TinyCNN's state dict."""
    buffer = io.BytesIO()
    torch.save(make_tiny_cnn().state_dict(), buffer)
    return buffer.getvalue()


def one_line_error(kind: type[Exception], cfg) -> str:
    """The message of the `kind` error building `cfg` raises, checked to be one line."""
    with pytest.raises(kind) as err:
        build_model(cfg)
    msg = str(err.value)
    assert "\n" not in msg and type(err.value) is kind
    return msg


def boom() -> torch.nn.Module:
    """A factory that fails."""
    raise RuntimeError("no GPU here")


def not_a_model() -> str:
    """A factory that returns something else."""
    return "a model"


def test_factory_that_raises_is_named() -> None:
    msg = one_line_error(ValueError, custom_cfg(factory=f"{__name__}:boom"))
    assert msg == f"model.factory '{__name__}:boom' raised RuntimeError: no GPU here"


def test_factory_module_that_does_not_import() -> None:
    msg = one_line_error(ValueError, custom_cfg(factory="no_such_pkg.models:make"))
    assert msg == "model.factory 'no_such_pkg.models:make' cannot be imported: ModuleNotFoundError: No module named 'no_such_pkg'"


def test_factory_returning_no_module() -> None:
    msg = one_line_error(ValueError, custom_cfg(factory=f"{__name__}.not_a_model"))
    assert msg == f"model.factory '{__name__}.not_a_model' returned a str, not an nn.Module"


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_corrupt_checkpoint_names_the_file(tmp_path, damage: str) -> None:
    good = state_bytes()
    path = tmp_path / "tiny.pt"
    path.write_bytes({"random bytes": noise(len(good)), "truncated": good[: len(good) // 2], "empty": b""}[damage])
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(path)))
    assert msg.startswith(f"model.checkpoint {str(path)!r} {DAMAGE[damage]}")


def test_checkpoint_with_pickled_objects_says_only_state_dicts_load(tmp_path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(make_tiny_cnn(), path)
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(path)))
    assert msg == (f"model.checkpoint {str(path)!r} holds pickled Python objects (tests.conftest.TinyCNN), and only "
                   "state dicts are loaded (torch.load weights_only=True): save one with "
                   "torch.save(model.state_dict(), path)")


def test_checkpoint_with_renamed_keys_names_them(tmp_path) -> None:
    state = make_tiny_cnn().state_dict()
    state["head.weight"] = state.pop("fc.weight")
    torch.save(state, tmp_path / "renamed.pt")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(tmp_path / "renamed.pt")))
    assert msg == (f"model.checkpoint {str(tmp_path / 'renamed.pt')!r} does not fit TinyCNN: missing keys fc.weight; "
                   "unexpected keys head.weight")


def test_checkpoint_with_wrong_shape_names_the_key_and_both_shapes(tmp_path) -> None:
    state = make_tiny_cnn().state_dict()
    state["conv1.weight"] = torch.zeros(8, 1, 5, 5)
    torch.save(state, tmp_path / "gray.pt")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(tmp_path / "gray.pt")))
    assert msg.endswith("does not fit TinyCNN: conv1.weight is [8, 1, 5, 5] in the file but [8, 3, 5, 5] in the model")


def test_checkpoint_that_is_not_a_dict(tmp_path) -> None:
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(tmp_path / "list.pt")))
    assert msg.endswith("holds a list, not a state dict: save one with torch.save(model.state_dict(), path)")


def test_training_checkpoint_loads_its_state_dict(tmp_path) -> None:
    model = make_tiny_cnn()
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, tmp_path / "train.pt")
    spec = build_model(custom_cfg(checkpoint=str(tmp_path / "train.pt")))
    assert torch.equal(spec.model.fc.weight, model.fc.weight)


def test_truncated_shapes_cnn_checkpoint_uses_the_same_loader(tmp_path) -> None:
    path = tmp_path / "shapes_cnn.pt"
    path.write_bytes(CHECKPOINT.read_bytes()[: CHECKPOINT.stat().st_size // 2])
    with pytest.raises(ValueError) as err:
        build_shapes_cnn(str(path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"model.checkpoint {str(path)!r} {DAMAGE['truncated']}")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("input_size", 0, "model.input_size=0 must be a positive number of pixels"),
    ("mean", [0.5, 0.5], "model.mean=[0.5, 0.5] needs 3 values (R, G, B), got 2"),
    ("std", [0.5, 0.0, 0.5], "model.std=[0.5, 0.0, 0.5] must be positive"),
])
def test_custom_input_format_is_checked(key: str, value: object, message: str) -> None:
    assert one_line_error(ValueError, custom_cfg(**{key: value})) == message
