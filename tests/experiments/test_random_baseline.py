"""random_baseline: each method's kind of result with no knowledge of the model, and the floor every real method
beats on every metric that claims a direction."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from experiments.adapters import RunOptions, get_method
from experiments.data.shapes import make_shapes
from experiments.metrics.sanity import randomize
from experiments.run import quality_run
from experiments.scoring import better
from methods.base import Target
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.raw_weights import Filters
from methods.top_patches import TopPatches
from tests.conftest import make_cfg

LIKES = {"raw_weights": Filters, "gradient_ascent": Ascent, "occlusion": OcclusionMaps, "top_patches": TopPatches}
# what the default sweep runs for each family (conf/experiment/default.yaml)
REAL = {"raw_weights": "raw_weights", "gradient_ascent": "gradient_ascent/pixel_short", "occlusion": "occlusion",
        "top_patches": "top_patches"}


@pytest.fixture(scope="module")
def data():
    return make_shapes(n=48, size=64, seed=0)


def draw(spec, data, like: str, model=None, seed: int = 0, **params):
    """The stand-in for `like` on conv1 units 0-2 of `spec`."""
    target = Target(layer="conv1", units=(0, 1, 2))
    return get_method("random_baseline").call(spec, data, target, {"like": like, **params}, RunOptions(seed=seed),
                                              spec.model if model is None else model)


@pytest.mark.parametrize("like", LIKES)
def test_each_stand_in_is_its_methods_kind_of_result_and_ignores_the_weights(planted, data, like: str) -> None:
    result = draw(planted, data, like)
    assert isinstance(result, LIKES[like]) and result.units == (0, 1, 2)
    real = get_method(REAL[like].split("/")[0]).call(planted, data, Target(layer="conv1", units=(0, 1, 2)),
                                                     {"steps": 2} if like == "gradient_ascent" else {},
                                                     RunOptions(), planted.model)
    assert result.images.shape[1:] == real.images.shape[1:] and len(result.images) == len(real.images)
    other = draw(planted, data, like, model=randomize(planted.model, "conv1"))
    torch.testing.assert_close(result.images, other.images)  # the weights never choose the output
    assert not torch.equal(result.images, draw(planted, data, like, seed=1).images)


def test_measured_values_are_the_models_own(planted, data) -> None:
    ascent = draw(planted, data, "gradient_ascent")
    with torch.inference_mode():
        acts = planted.model.conv1(planted.normalizer()(ascent.images)).mean((2, 3))
    torch.testing.assert_close(ascent.activation, acts[[0, 1, 2], [0, 1, 2]])
    patches = draw(planted, data, "top_patches", k=4)
    assert patches.indices.shape == (3, 4) and all(len(set(row.tolist())) == 4 for row in patches.indices)
    with torch.inference_mode():
        maps = planted.model.conv1(planted.normalizer()(data.images[patches.indices[0]]))[:, 0]
    rows, cols = patches.positions[0].unbind(-1)
    torch.testing.assert_close(patches.activations[0], maps[torch.arange(4), rows, cols])


def test_minimize_draws_other_noise(planted, data) -> None:
    assert not torch.equal(draw(planted, data, "top_patches").indices, draw(planted, data, "top_patches", minimize=True).indices)


def test_bad_like_is_one_line() -> None:
    with pytest.raises(ValueError, match="unknown like 'occlusoin'.*valid: raw_weights, gradient_ascent, occlusion"):
        get_method("random_baseline").check_params({"like": "occlusoin"})


def family_results(tmp_path: Path, method: str) -> pd.DataFrame:
    """One run of `method` (a conf/method name) on the planted model, every metric."""
    cfg = make_cfg("model=planted", f"method={method}", "progress=false")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path / method.replace("/", "_"))
    return quality_run(cfg)


@pytest.fixture(scope="module")
def floor_table(tmp_path_factory) -> pd.DataFrame:
    tmp = tmp_path_factory.mktemp("floor")
    return pd.concat([family_results(tmp, m) for like, real in REAL.items() for m in (real, f"random_baseline/{like}")])


@pytest.mark.parametrize("like", REAL)
def test_every_directed_metric_ranks_the_real_method_above_the_floor(floor_table: pd.DataFrame, like: str) -> None:
    ok = floor_table[floor_table.status == "ok"]
    real = ok[(ok.method == REAL[like].split("/")[0])]
    base = ok[(ok.method == "random_baseline") & (ok.preset == like)]
    means = pd.DataFrame({"real": real.groupby("metric").value.mean(), "floor": base.groupby("metric").value.mean()})
    directed = [m for m in means.dropna().index if better(m) in ("higher", "lower")]
    assert len(directed) >= 3, means
    wrong = [m for m in directed if (means.real[m] > means.floor[m]) != (better(m) == "higher")]
    assert not wrong, means.loc[wrong]
