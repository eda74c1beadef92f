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


def test_command_writes_every_row_and_exits_1_on_a_failure(tmp_path, capsys) -> None:
    import pandas as pd

    from experiments.coverage import main

    out = tmp_path / "coverage.csv"
    assert main(["--models", "squeezenet1_0,resnet181", "--methods", "raw_weights", "--out", str(out)]) == 1
    rows = pd.read_csv(out)
    assert rows.model.tolist() == ["squeezenet1_0", "resnet181"] and rows.status.tolist()[0] == "ok"
    assert rows.status[1].startswith("failed: ValueError: unknown torchvision model 'resnet181'")
    assert "raw_weights: 1/2" in capsys.readouterr().out
