"""The contract every registered method keeps, checked on the planted model: its result type and fields, the
caller's model left as it was, the same seed giving the same result, and units batched equal units one by one."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from experiments.adapters import RunOptions, registry
from experiments.data.shapes import make_shapes
from methods.base import Target, Visualization
from methods.occlusion import OcclusionMaps

UNITS = (0, 1, 2)
QUICK = {"gradient_ascent": {"steps": 4, "transforms": "standard"}, "occlusion": {"window": 16, "stride": 16},
         "top_patches": {"k": 3}, "raw_weights": {}}
QUICK |= {f"random_baseline/{like}": {"like": like, **params} for like, params in
          {"raw_weights": {}, "gradient_ascent": {}, "occlusion": {"window": 16, "stride": 16}, "top_patches": {"k": 3}}.items()}
LAYER = {"raw_weights": "conv1", "random_baseline/raw_weights": "conv1"}


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n=32, size=64, seed=3)


def call(name: str, spec, data, units: tuple[int, ...] = UNITS, seed: int = 0) -> Visualization:
    """Method `name` on planted units, as a run calls it (params beyond QUICK at their defaults)."""
    method = registry()[name.split("/")[0]]
    target = Target(LAYER.get(name, "conv2"), units)
    return method.call(spec, data, target, QUICK[name], RunOptions(seed=seed, n_images=2), spec.model)


def state(model: torch.nn.Module) -> tuple[dict, bool, int]:
    """What a method must not change: the weights, the mode and the hooks."""
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return copy.deepcopy(model.state_dict()), model.training, hooks


def test_every_method_is_covered() -> None:
    assert set(registry()) == {name.split("/")[0] for name in QUICK}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_result_type_and_fields(name: str, planted, shapes) -> None:
    result = call(name, planted, shapes)
    assert isinstance(result, Visualization) and type(result) is not Visualization  # a typed result of its own
    assert result.units == UNITS and result.layer == LAYER.get(name, "conv2")
    assert result.images.shape[0] == len(UNITS) * result.images_per_unit and result.images.dim() == 4
    assert result.images.min() >= 0 and result.images.max() <= 1 and torch.isfinite(result.images).all()
    assert len(result.unit_images()) == len(UNITS) and len(result.compared()) == len(UNITS)
    assert all(v.shape == (len(UNITS),) for v in result.values.values()) and result.values
    assert result.work["units"] == len(UNITS)
    assert {f.name for f in dataclasses.fields(result)} > {"images", "units", "layer", "images_per_unit"}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_the_callers_model_is_unchanged(name: str, planted, shapes) -> None:
    weights, training, hooks = state(planted.model)
    call(name, planted, shapes)
    after = state(planted.model)
    assert after[1:] == (training, hooks)
    assert all(torch.equal(weights[k], after[0][k]) for k in weights)
    assert all(p.is_contiguous() for p in planted.model.parameters())  # not left in channels_last


@pytest.mark.parametrize("name", sorted(QUICK))
def test_same_seed_same_result(name: str, planted, shapes) -> None:
    a, b = call(name, planted, shapes, seed=3), call(name, planted, shapes, seed=3)
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(a.values[k], b.values[k]) for k in a.values)


@pytest.mark.parametrize("name", sorted(QUICK))
def test_units_batched_equal_units_one_by_one(name: str, planted, shapes) -> None:
    together = call(name, planted, shapes)
    alone = [call(name, planted, shapes, units=(u,)) for u in UNITS]
    if isinstance(together, OcclusionMaps):  # each unit is mapped on the union of the units' images: compare its own maps
        for i, single in enumerate(alone):
            own, maps = together.own_maps(i)
            assert own == single.own_maps(0)[0]
            torch.testing.assert_close(maps, single.own_maps(0)[1], atol=1e-5, rtol=1e-5)
        return
    torch.testing.assert_close(together.images, torch.cat([r.images for r in alone]), atol=1e-5, rtol=1e-4)
    for key, values in together.values.items():
        torch.testing.assert_close(values, torch.cat([r.values[key] for r in alone]), atol=1e-5, rtol=1e-4)
