"""The zoo: torchvision by name, user models with checkpoints, wrapped outputs, clear errors on bad input."""
from __future__ import annotations

import copy
import importlib.util
import io
import logging
import os
import random
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights
from omegaconf import OmegaConf

from experiments.config import ModelConf
from experiments.builders import CONF, options
from experiments.zoo import build_model
from experiments.zoo.spec import ModelSpec
from experiments.zoo.shapes_cnn import CHECKPOINT, build_shapes_cnn
from experiments.zoo.torchvision_models import build_torchvision
from tests.conftest import make_cfg, make_tiny_cnn

BUILDERS = {"planted": "planted.build_planted", "shapes_cnn": "shapes_cnn.build_shapes_cnn",
            "custom": "custom.build_custom", "googlenet": "torchvision_models.build_torchvision",
            "resnet18": "torchvision_models.build_torchvision", "torchvision": "torchvision_models.build_torchvision",
            "vgg16": "torchvision_models.build_torchvision",
            "timm": "timm_models.build_timm"}
HAS_TIMM = importlib.util.find_spec("timm") is not None


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


def build_tiny(name: str, input_size: int) -> ModelSpec:
    """A model source written as a plain function: only the config fields it names arrive."""
    return ModelSpec(name=name, model=make_tiny_cnn(), weights=None, input_size=input_size, mean=(0.5,) * 3,
                     std=(0.5,) * 3)


def build_deep(depth: int) -> ModelSpec:
    """A builder that needs a field no model config has."""
    raise AssertionError("never called")


def test_options_are_the_known_builders() -> None:
    assert options("model") == sorted(BUILDERS)


OPTIONS = [pytest.param(o, marks=pytest.mark.skipif(o == "timm" and not HAS_TIMM, reason="timm not installed"))
           for o in sorted(BUILDERS)]


@pytest.mark.parametrize("option", OPTIONS)
def test_every_model_option_builds_through_its_target(option: str) -> None:
    cfg = make_cfg(f"model={option}", "model.factory=tests.conftest.make_tiny_cnn").model
    assert cfg._target_ == f"experiments.zoo.{BUILDERS[option]}"
    spec = build_model(cfg)
    assert isinstance(spec, ModelSpec) and spec.name == cfg.name and spec.default_targets
    if cfg.default_targets:
        assert spec.default_targets == OmegaConf.to_container(cfg.default_targets)


@pytest.mark.parametrize("option", OPTIONS)
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
    assert str(err.value) == ("unknown model.source 'nope'; valid: custom, googlenet, planted, resnet18, shapes_cnn, "
                              "timm, torchvision, vgg16")


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
    ("input_size", 0, "model.input_size=0 must be a positive number of pixels or [height, width]"),
    ("input_size", [32, 0], "model.input_size=[32, 0] must be a positive number of pixels or [height, width]"),
    ("input_size", [32, 32, 3], "model.input_size=[32, 32, 3] must be a positive number of pixels or [height, width]"),
    ("mean", [0.5, 0.5], "model.mean=[0.5, 0.5] has 2 values but the model takes 3 input channels (one value each)"),
    ("std", [0.5, 0.0, 0.5], "model.std=[0.5, 0.0, 0.5] must be positive"),
    ("in_channels", 0, "model.in_channels=0 must be a positive number of channels"),
])
def test_custom_input_format_is_checked(key: str, value: object, message: str) -> None:
    assert one_line_error(ValueError, custom_cfg(**{key: value})) == message


# channels and sizes

def gray_net() -> nn.Module:
    """A 1-channel CNN for 28 px inputs (MNIST-style), 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 4, 3, padding=1), relu=nn.ReLU(), conv2=nn.Conv2d(4, 6, 3),
                                     gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(6, 10))).eval()


def test_in_channels_come_from_the_first_conv_and_mean_std_must_match() -> None:
    spec = build_model(custom_cfg(factory=f"{__name__}.gray_net", input_size=28, mean=[0.1307], std=[0.3081]))
    assert spec.in_channels == 1 and spec.mean == (0.1307,) and spec.num_classes == 10
    msg = one_line_error(ValueError, custom_cfg(factory=f"{__name__}.gray_net", input_size=28))
    assert msg == "model.mean=[0.5, 0.5, 0.5] has 3 values but the model takes 1 input channel (one value each)"


def test_configured_in_channels_win_over_the_first_conv() -> None:
    cfg = custom_cfg(in_channels=4, mean=[0.5] * 4, std=[0.5] * 4)
    msg = one_line_error(ValueError, cfg)  # TinyCNN's conv1 takes 3 channels: the probe says what failed
    assert msg.startswith("model 'tiny' fails on a [2, 4, 32, 32] input (4 channels, 32x32 px: model.in_channels, "
                          "model.input_size): RuntimeError: ")
    assert one_line_error(ValueError, custom_cfg(in_channels=4)) == \
        "model.mean=[0.5, 0.5, 0.5] has 3 values but the model takes 4 input channels (one value each)"


def test_model_without_convs_takes_three_channels() -> None:
    spec = ModelSpec(name="mlp", model=nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), weights=None, input_size=2,
                     mean=(0.5,) * 3, std=(0.5,) * 3)
    assert spec.in_channels == 3 and spec.hw == (2, 2)


def test_non_square_input_size_reaches_the_spec_and_the_probe() -> None:
    spec = build_model(OmegaConf.merge(custom_cfg(), {"input_size": [48, 32]}))
    assert spec.input_size == (48, 32) and spec.hw == (48, 32)
    assert build_model(custom_cfg(input_size=40)).hw == (40, 40)


def test_non_square_input_size_from_the_command_line() -> None:
    cfg = make_cfg("model=custom", "model.factory=tests.conftest.make_tiny_cnn", "model.input_size=[24,40]").model
    assert build_model(cfg).hw == (24, 40)


# wrapped outputs

class TwoHeads(nn.Module):
    """A dense predictor returning (segmentation map [N, 3, H, W], box logits [N, 5])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.seg = nn.Conv2d(4, 3, 1)
        self.box = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.conv1(x))
        return self.seg(f), self.box(f.mean((2, 3)))


class DictOut(TwoHeads):
    """The same heads as a Hugging Face style dict, reading self.training in its forward."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        seg, box = super().forward(x)
        return {"seg": seg, "logits": box * (2.0 if self.training else 1.0)}


def two_heads() -> nn.Module:
    """A seeded TwoHeads."""
    torch.manual_seed(0)
    return TwoHeads()


def dict_out() -> nn.Module:
    """A seeded DictOut."""
    torch.manual_seed(0)
    return DictOut()


def test_tuple_output_unset_names_the_choices() -> None:
    msg = one_line_error(ValueError, custom_cfg(factory=f"{__name__}.two_heads", input_size=[16, 12]))
    assert msg == ("model 'tiny' returns a tuple, not one tensor: set model.output to one of "
                   "0 (Tensor [1, 3, 16, 12]), 1 (Tensor [1, 5])")


def test_output_index_picks_one_tensor_with_the_names_unchanged() -> None:
    spec = build_model(OmegaConf.merge(custom_cfg(factory=f"{__name__}.two_heads", input_size=[16, 12]), {"output": 0}))
    x = torch.rand(2, 3, 16, 12)
    ref = two_heads()
    assert torch.equal(spec.model(x), ref(x)[0])
    assert spec.num_classes == 3  # a dense map [N, C, H, W]: C classes
    assert [n for n, _ in spec.model.named_modules()] == [n for n, _ in ref.named_modules()]
    assert list(spec.model.state_dict()) == list(ref.state_dict())
    assert list(spec.default_targets) == ["conv1", "seg"]
    box = build_model(OmegaConf.merge(custom_cfg(factory=f"{__name__}.two_heads"), {"output": 1}))
    assert box.num_classes == 5 and box.model(x).shape == (2, 5)


def test_output_key_of_a_dict_and_train_mode_reach_the_wrapped_forward() -> None:
    cfg = make_cfg("model=custom", f"model.factory={__name__}.dict_out", "model.input_size=16",
                   "model.output=logits").model
    spec = build_model(cfg)
    x = torch.rand(1, 3, 16, 16)
    evaluated = spec.model(x)
    assert not spec.model.wrapped.training
    spec.model.train()
    assert torch.allclose(spec.model(x), 2 * evaluated) and spec.model.conv1.training


@pytest.mark.parametrize(("output", "message"), [
    (7, "unknown model.output 7: model 'tiny' returns a tuple; valid: 0 (Tensor [1, 3, 32, 32]), 1 (Tensor [1, 5])"),
    ("logits", "unknown model.output 'logits': model 'tiny' returns a tuple; valid: 0 (Tensor [1, 3, 32, 32]), "
               "1 (Tensor [1, 5])"),
])
def test_bad_output_key_lists_the_valid_ones(output: object, message: str) -> None:
    cfg = OmegaConf.merge(custom_cfg(factory=f"{__name__}.two_heads"), {"output": output})
    assert one_line_error(ValueError, cfg) == message


def test_output_set_on_a_plain_model_is_refused() -> None:
    assert one_line_error(ValueError, OmegaConf.merge(custom_cfg(), {"output": 0})) == \
        "model.output=0 is set but model 'tiny' returns one tensor [1, 5]: unset it (model.output=null)"


# checkpoints from wrapped models

@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_data_parallel_and_compiled_checkpoints_load(tmp_path: Path, prefix: str) -> None:
    model = make_tiny_cnn()
    with torch.no_grad():
        model.fc.weight.mul_(5)
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "wrapped.pt")
    spec = build_model(custom_cfg(checkpoint=str(tmp_path / "wrapped.pt")))
    assert torch.equal(spec.model.fc.weight, model.fc.weight)


def test_real_data_parallel_state_dict_loads(tmp_path: Path) -> None:
    model = make_tiny_cnn()
    with torch.no_grad():
        model.conv2.bias.add_(1)
    torch.save(nn.DataParallel(model).state_dict(), tmp_path / "dp.pt")
    assert torch.equal(build_model(custom_cfg(checkpoint=str(tmp_path / "dp.pt"))).model.conv2.bias, model.conv2.bias)


def test_strict_false_loads_what_fits_and_lists_the_rest_in_one_log_line(tmp_path: Path, caplog) -> None:
    model = make_tiny_cnn()
    with torch.no_grad():
        model.conv1.weight.mul_(3)
    state = {"module." + k: v for k, v in model.state_dict().items()}
    state["module.head.weight"] = state.pop("module.fc.weight")
    state["module.conv2.weight"] = torch.zeros(16, 8, 1, 1)
    torch.save(state, tmp_path / "partial.pt")
    with caplog.at_level(logging.WARNING, logger="vizbench"):
        spec = build_model(custom_cfg(checkpoint=str(tmp_path / "partial.pt"), strict=False))
    assert torch.equal(spec.model.conv1.weight, model.conv1.weight)
    assert not torch.equal(spec.model.conv2.weight, torch.zeros(16, 8, 1, 1))
    lines = [r.getMessage() for r in caplog.records if "strict" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert lines[0] == (f"model.checkpoint {str(tmp_path / 'partial.pt')!r}: loaded 4 of the model's 6 tensors "
                        "(model.strict=false); not loaded: missing keys conv2.weight, fc.weight; unexpected keys "
                        "head.weight; conv2.weight is [16, 8, 1, 1] in the file but [16, 8, 3, 3] in the model")


def test_strict_false_with_nothing_that_fits_is_an_error(tmp_path: Path) -> None:
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "other.pt")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(tmp_path / "other.pt"), strict=False))
    assert msg == (f"model.checkpoint {str(tmp_path / 'other.pt')!r} has no tensor that fits TinyCNN "
                   "(model.strict=false loads what fits, and nothing does)")


def test_strict_stays_the_default(tmp_path: Path) -> None:
    state = {"module." + k: v for k, v in make_tiny_cnn().state_dict().items() if k != "fc.bias"}
    torch.save(state, tmp_path / "short.pt")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(tmp_path / "short.pt")))
    assert msg == f"model.checkpoint {str(tmp_path / 'short.pt')!r} does not fit TinyCNN: missing keys fc.bias"


def test_strict_false_from_the_command_line(tmp_path: Path) -> None:
    state = make_tiny_cnn().state_dict()
    state.pop("fc.bias")
    torch.save(state, tmp_path / "short.pt")
    cfg = make_cfg("model=custom", "model.factory=tests.conftest.make_tiny_cnn", "model.input_size=32",
                   f"model.checkpoint={tmp_path / 'short.pt'}", "model.strict=false").model
    assert build_model(cfg).num_classes == 5


# model.targets from the command line

TINY = ["model=custom", "model.factory=tests.conftest.make_tiny_cnn", "model.input_size=32"]


@pytest.mark.parametrize("override", ["model.targets={conv2:[0,1]}", "model.targets.conv2=[0,1]",
                                      "+model.targets.conv2=[0,1]", "model.targets.conv2=2"])
def test_targets_settable_without_plus(override: str) -> None:
    assert build_model(make_cfg(*TINY, override).model).default_targets == {"conv2": [0, 1]}


@pytest.mark.parametrize("override", ["model.targets={layer3:[0,1]}", "model.targets.layer3=[0,1]"])
def test_targets_replace_the_options_own(override: str) -> None:
    cfg = make_cfg("model=resnet18", override).model
    assert build_model(cfg).default_targets == {"layer3": [0, 1]}


def test_dotted_layer_names_from_the_command_line() -> None:
    cfg = make_cfg("model=resnet18", "model.targets.layer2.1.conv2=[0,1]", "model.targets={layer3.0:[2]}").model
    assert build_model(cfg).default_targets == {"layer2.1.conv2": [0, 1], "layer3.0": [2]}


def test_option_targets_when_none_are_set() -> None:
    spec = build_model(make_cfg("model=resnet18").model)
    assert spec.default_targets == {"conv1": list(range(8)), "layer2.1.conv2": [0, 1, 2, 3], "layer3": [0, 1, 2, 3]}


def test_bad_target_units_are_one_line() -> None:
    with pytest.raises(ValueError) as err:
        build_model(make_cfg(*TINY, "model.targets.conv2=[a]").model)
    assert str(err.value) == "model.targets.conv2=['a'] must be a list of unit indices or a count n (the first n units)"


def test_wrapped_output_traces_copies_and_moves_like_the_model() -> None:
    spec = build_model(OmegaConf.merge(custom_cfg(factory=f"{__name__}.two_heads", input_size=[16, 12]), {"output": 0}))
    x = torch.rand(1, 3, 16, 12)
    assert torch.equal(torch.fx.symbolic_trace(spec.model)(x), spec.model(x))  # receptive fields and fast graphs
    copied = copy.deepcopy(spec.model)
    assert copied.conv1 is not spec.model.conv1 and copied.wrapped.conv1 is copied.conv1
    assert torch.equal(copied(x), spec.model(x))
    spec.model.to(torch.float64)
    assert spec.model.wrapped.seg.weight.dtype == torch.float64


def test_safetensors_checkpoint_without_safetensors_is_one_line(tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "safetensors" else real(name, *a))
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not read")
    msg = one_line_error(ValueError, custom_cfg(checkpoint=str(path)))
    assert msg == f"model.checkpoint {str(path)!r} is a .safetensors file, and reading one needs `pip install safetensors`"
