"""The method registry: one entry per method, params checked against each method's own schema."""
from __future__ import annotations

import inspect
from typing import Optional, Sequence

import pytest

from experiments.adapters import call_method, get_method, registry
from experiments.adapters.base import INPUTS, SUPPLIED, fits
from methods.base import Target


def test_registry_has_the_four_methods_and_their_floor_with_consistent_entries() -> None:
    methods = registry()
    assert set(methods) == {"raw_weights", "gradient_ascent", "occlusion", "top_patches", "random_baseline"}
    for name, m in methods.items():
        assert m.name == name and m.inputs in INPUTS and m.visualize.__module__.startswith(f"methods.{name}")
        assert m.batch is None or m.batch in m.schema
        assert not set(m.schema) & set(SUPPLIED)
        assert set(m.peers) <= {"lucent", "captum_occlusion"}
    assert sorted(n for n, m in methods.items() if m.stochastic) == ["gradient_ascent", "random_baseline"]
    assert {n for n, m in methods.items() if m.contenders} == {"gradient_ascent", "occlusion", "top_patches"}


def test_unknown_method_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown method 'occlusoin'; did you mean occlusion\\? valid: gradient_ascent"):
        get_method("occlusoin")


@pytest.mark.parametrize("name", ["raw_weights", "gradient_ascent", "occlusion", "top_patches"])
def test_every_method_accepts_its_own_defaults(name: str) -> None:
    m = get_method(name)
    m.check_params(m.defaults())
    m.check_params({})


def test_signature_schemas_match_visualize() -> None:
    m = get_method("occlusion")
    sig = inspect.signature(m.visualize).parameters
    assert m.defaults() == {k: p.default for k, p in sig.items() if p.kind is p.KEYWORD_ONLY and k not in SUPPLIED}


def test_gradient_ascent_schema_is_its_settings() -> None:
    from methods.gradient_ascent import Settings
    defaults = get_method("gradient_ascent").defaults()
    assert defaults["steps"] == Settings().steps == 512 and defaults["snapshots"] == ()


@pytest.mark.parametrize("value,hint,ok", [
    (3, int, True), (3.0, int, False), (True, int, False), (3, float, True), ("x", float, False),
    (None, Optional[int], True), (None, int, False), ("grey", str | float, True), (0.5, str | float, True),
    ([1, 2], Sequence[int], True), ("ab", Sequence[int], False), (True, bool, True), (1, bool, False),
])
def test_fits(value, hint, ok: bool) -> None:
    assert fits(value, hint) is ok


def test_call_method_runs_a_registered_method() -> None:
    from experiments.adapters import RunOptions
    from experiments.data.shapes import make_shapes
    from experiments.zoo.planted import build_planted
    spec = build_planted()
    result = call_method("raw_weights", spec, make_shapes(n=4, size=64), Target("conv1", (0, 1)), {}, RunOptions())
    assert result.weights.shape[0] == 2
