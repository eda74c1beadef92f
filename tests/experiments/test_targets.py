"""Targets resolve from config and are checked against the model."""
from __future__ import annotations

from collections import OrderedDict

import pytest
from omegaconf import OmegaConf
from torch import nn

from experiments.targets import resolve_targets
from experiments.zoo.spec import ModelSpec
from tests.conftest import make_tiny_cnn


def spec() -> ModelSpec:
    return ModelSpec(name="tiny", model=make_tiny_cnn(), weights=None, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3,
                     default_targets={"conv1": [0, 1], "conv2": [3]}, num_classes=5)


def target_cfg(**kw: object):
    return OmegaConf.create({"layer": None, "units": None, "kind": "channel", "position": None, "direction": None, **kw})


def test_defaults_come_from_the_model() -> None:
    targets = resolve_targets(target_cfg(), spec())
    assert [(t.layer, t.units) for t in targets] == [("conv1", (0, 1)), ("conv2", (3,))]


def test_units_int_means_first_n() -> None:
    (t,) = resolve_targets(target_cfg(layer="conv2", units=8), spec())
    assert t.units == tuple(range(8))


def test_unknown_layer_suggests_closest() -> None:
    with pytest.raises(ValueError, match=r"unknown layer 'conv3'.*closest: conv2, conv1"):
        resolve_targets(target_cfg(layer="conv3", units=[0]), spec())


def test_unit_out_of_range_names_channel_count() -> None:
    with pytest.raises(ValueError, match=r"unit index 20 out of range for layer 'conv2', which has 16 channels"):
        resolve_targets(target_cfg(layer="conv2", units=[1, 20]), spec())


def test_class_target_checked_against_num_classes() -> None:
    assert error(kind="class", units=[7]) == "target.units=[7]: class index 7 out of range; the model has 5 classes (0..4)"


def test_bad_kind() -> None:
    with pytest.raises(ValueError, match="unknown target.kind 'pixel'; valid: channel, neuron"):
        resolve_targets(target_cfg(layer="conv1", units=[0], kind="pixel"), spec())


def error(model_spec: ModelSpec | None = None, **kw: object) -> str:
    """The ValueError resolving a target config raises, checked to be one line."""
    with pytest.raises(ValueError) as err:
        resolve_targets(target_cfg(**kw), model_spec or spec())
    assert "\n" not in str(err.value)
    return str(err.value)


def test_units_not_a_number_names_the_key_and_value() -> None:
    assert error(layer="conv2", units="abc") == ("target.units='abc' is not a unit count or a list of unit indices; "
                                                 "use e.g. target.units=8 (the first 8) or target.units=[3,7]")


def test_units_as_listconfig_and_as_digit_string() -> None:
    (listed,) = resolve_targets(target_cfg(layer="conv2", units=OmegaConf.create([3, 7])), spec())
    (counted,) = resolve_targets(target_cfg(layer="conv2", units="3"), spec())
    assert listed.units == (3, 7) and counted.units == (0, 1, 2)


@pytest.mark.parametrize(("units", "message"), [
    (-2, "target.units=-2 selects no units; give a count >= 1 or a list of indices like [3, 7]"),
    ([-1], "target.units=[-1]: unit index -1 out of range for layer 'conv2', which has 16 channels (0..15)"),
    ([1, 20], "target.units=[1, 20]: unit index 20 out of range for layer 'conv2', which has 16 channels (0..15)"),
    (17, "target.units=17 asks for more units than the layer's 16 channels"),
    ([], "target.units=[] selects no units"),
])
def test_units_out_of_range(units: object, message: str) -> None:
    assert error(layer="conv2", units=units) == message


def test_default_targets_from_model_config_name_their_key() -> None:
    bad = spec()
    bad.default_targets = {"conv2": [99]}
    assert error(bad).startswith("model.targets.conv2=[99]: unit index 99 out of range for layer 'conv2'")


def test_position_outside_the_map_names_its_size() -> None:
    msg = error(layer="conv2", units=[0], kind="neuron", position=[500, 500])
    assert msg == "target.position=[500, 500] is outside layer 'conv2''s 16x16 map (row 0..15, col 0..15)"


def test_position_of_wrong_length_is_caught_before_any_model_work() -> None:
    msg = error(layer="no_such_layer", units=[0], kind="neuron", position=[1, 2, 3])
    assert msg == "target.position=[1, 2, 3] needs 2 values (row, col), got 3"


def test_position_on_a_layer_without_a_map() -> None:
    assert error(layer="fc", units=[0], kind="neuron", position=[0, 0]) == \
        "target.kind=neuron needs a layer with a 2-D map; 'fc' outputs [5] per image"
    assert error(layer="fc", units=[0], kind="neuron").endswith("'fc' outputs [5] per image")  # the centre neither


def test_direction_length_must_match_channels() -> None:
    msg = error(layer="conv2", kind="direction", direction=[1.0, 0.0, 2.0])
    assert msg == "target.direction has 3 values but layer 'conv2' has 16 channels"
    assert error(layer="conv2", kind="direction").startswith("target.kind=direction needs target.direction=[...]")


def test_class_index_negative() -> None:
    assert error(kind="class", units=[-1]).startswith("target.units=[-1]: class index -1 out of range")


def test_unknown_layer_names_the_key() -> None:
    assert error(layer="conv3", units=[0]).startswith("target.layer: unknown layer 'conv3' in TinyCNN")


def gray_spec() -> ModelSpec:
    """A 1-channel model (as a grayscale custom model would be) fed RGB data."""
    model = nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 4, 3), relu=nn.ReLU(), conv2=nn.Conv2d(4, 4, 3)))
    return ModelSpec(name="gray", model=model, weights=None, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3,
                     default_targets={"conv2": [0]}, in_channels=3)


def test_model_input_channels_differ_from_the_data() -> None:
    assert error(gray_spec()) == ("model 'gray' takes 1-channel input (its first layer 'conv1' is Conv2d with "
                                  "in_channels=1) but model.in_channels=3; set model.in_channels=1")


def test_model_failing_on_the_probe_names_the_input() -> None:
    small = ModelSpec(name="small", model=nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 4, 5))), weights=None,
                      input_size=3, mean=(0.5,) * 3, std=(0.5,) * 3, default_targets={"conv": [0]})
    assert error(small).startswith("model 'small' fails on a [1, 3, 3, 3] input (model.input_size=3) while probing "
                                   "layer 'conv': RuntimeError: ")


def test_model_without_convs_needs_a_layer() -> None:
    flat = ModelSpec(name="mlp", model=nn.Sequential(OrderedDict(fc=nn.Linear(3, 2))), weights=None, input_size=1,
                     mean=(0.5,) * 3, std=(0.5,) * 3)
    assert error(flat) == "model 'mlp' has no default targets (no Conv2d layer); set target.layer to one of fc"
