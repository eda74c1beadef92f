"""Targets resolve from config and are checked against the model."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

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
    with pytest.raises(ValueError, match="which has 5 channels"):
        resolve_targets(target_cfg(kind="class", units=[7]), spec())


def test_bad_kind() -> None:
    with pytest.raises(ValueError, match="unknown target.kind 'pixel'; valid: channel, neuron"):
        resolve_targets(target_cfg(layer="conv1", units=[0], kind="pixel"), spec())
