"""Fixtures shared by the experiments tests."""
from __future__ import annotations

import pytest

from experiments.zoo.planted import build_planted
from experiments.zoo.spec import ModelSpec


@pytest.fixture(scope="module")
def planted() -> ModelSpec:
    """The planted model with its ground truth, built once per test module (methods leave it as they found it)."""
    return build_planted()
