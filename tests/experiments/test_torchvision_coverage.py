"""Every method on the default targets of torchvision classifiers (random init, smoke settings): a handful of
families by default, every classifier with `pytest -m slow` (the README's coverage table)."""
from __future__ import annotations

import pytest

from experiments.coverage import check_model, smoke_methods, table
from experiments.zoo import build_model
from experiments.zoo.torchvision_models import classification_models
from methods.base import layer_shape
from tests.conftest import make_cfg

FAMILIES = ("resnet18", "efficientnet_b0", "convnext_tiny", "shufflenet_v2_x0_5", "inception_v3", "vit_b_16", "swin_t")


def check(name: str) -> None:
    """All smoke methods ok on `name`, and each default target a spatial map larger than 1x1."""
    rows = check_model(["model=torchvision", f"model.name={name}"], name=name)
    assert all(r["status"] == "ok" for r in rows), table(rows).to_markdown()
    assert {r["method"] for r in rows} == set(smoke_methods())
    spec = build_model(make_cfg("model=torchvision", f"model.name={name}").model)
    for layer in spec.default_targets:
        shape = layer_shape(spec.model, layer, spec.hw, spec.in_channels)
        assert len(shape) == 3 and shape[1] * shape[2] > 1, (layer, shape)


@pytest.mark.parametrize("name", FAMILIES)
def test_families(name: str) -> None:
    check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in classification_models() if m not in FAMILIES])
def test_every_classifier(name: str) -> None:
    check(name)
