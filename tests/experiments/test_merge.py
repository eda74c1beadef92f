"""Sharded top patches: shard runs merge into exactly one pass over the whole data, scored like any run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from experiments import compare, merge, tables
from experiments import run as run_module
from experiments.adapters import registry
from experiments.adapters.top_patches import METHOD
from experiments.scoring import METRICS
from methods import top_patches
from methods.base import Target
from tests.conftest import make_cfg, make_tiny_cnn

ROOT = Path(__file__).resolve().parents[2]
DEAD = 0  # the relu1 unit dead_unit_cnn kills: 0 at every image and position, so all of them tie
LAYER, K = "relu1", 4
TINY = ["progress=false", "model=custom", f"model.factory={__name__}.dead_unit_cnn", "model.input_size=32",
        "data.n=30", f"target.layer={LAYER}", "target.units=[0,1,2]", f"method={METHOD.name}", f"method.params.k={K}",
        "method.params.batch_size=4"]
EXACT = ("indices", "positions", "boxes", "boxes_unclipped", "activations", "images", "context")
MODES = {"max": [], "location": ["method.params.mode=location", "method.params.per_image=2"],
         # before the ReLU: its zeros would tie every unit's minima, the dead unit is -1 everywhere there
         "minimize": ["method.params.minimize=true", "target.layer=conv1"]}


def dead_unit_cnn() -> nn.Module:
    """A seeded TinyCNN whose relu1 unit DEAD never fires (conv1 gives it -1 everywhere)."""
    model = make_tiny_cnn()
    with torch.no_grad():
        model.conv1.weight[DEAD] = 0
        model.conv1.bias[DEAD] = -1
    return model


def run_into(folder: Path, *overrides: str) -> pd.DataFrame:
    """A quality run of TINY into `folder`, leaving its config where a Hydra job does (.hydra/config.yaml)."""
    cfg = make_cfg(*TINY, *overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(folder)
    df = run_module.run(cfg)
    (folder / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    return df


def shard_runs(sweep: Path, n: int, *overrides: str, shards: list[int] | None = None) -> None:
    """The shard runs of a sweep over data.shard (jobs 0..n-1, or only `shards`)."""
    for i in range(n) if shards is None else shards:
        run_into(sweep / str(i), f"data.shard={i}", f"data.num_shards={n}", *overrides)


def arrays(folder: Path) -> dict:
    """A run's saved top-patch arrays (of its one layer)."""
    [path] = (folder / "arrays").glob("*.pt")
    return torch.load(path, weights_only=True)


def assert_same_patches(merged: dict, whole: dict) -> None:
    """Every winner's image, position, box, activation and picture equal, bit for bit."""
    for key in EXACT:
        assert torch.equal(merged[key], whole[key]), key
    assert merged["images_processed"] == whole["images_processed"]


@pytest.mark.parametrize("mode", MODES)
def test_three_shards_merge_into_one_pass_exactly(tmp_path: Path, mode: str) -> None:
    sweep = tmp_path / "sweep"
    shard_runs(sweep, 3, "metrics=none", *MODES[mode])
    run_into(tmp_path / "whole", "metrics=none", *MODES[mode])
    [(out, df)] = merge.merge_sweep(sweep)
    assert out == sweep / "merged" and (out / "DONE").exists() and not len(tables.failed(df))
    whole = arrays(tmp_path / "whole")
    assert_same_patches(arrays(out), whole)
    assert len(set(whole["indices"].flatten().tolist())) > len(whole["indices"][0])  # winners from several shards
    # the dead unit's ties go to the first images, then the first positions, whatever the shards
    dead = whole["activations"][DEAD]
    assert (dead == dead[0]).all()
    per_image = 2 if mode == "location" else 1
    assert whole["indices"][DEAD].tolist() == (torch.arange(K) // per_image).tolist()
    assert whole["positions"][DEAD].tolist() == [[0, j % per_image] for j in range(K)]


@pytest.mark.parametrize("mode,per_image", [("max", 1), ("location", 2), ("location", None)])
def test_one_pass_does_not_depend_on_batch_size(mode: str, per_image: int | None) -> None:
    torch.manual_seed(5)
    images, target = torch.rand(11, 3, 32, 32), Target(LAYER, (0, 1, 2))
    runs = [top_patches.visualize(dead_unit_cnn(), images, target, k=5, mode=mode, per_image=per_image, batch_size=b)
            for b in (1, 3, len(images))]
    for other in runs[1:]:
        for key in ("indices", "positions", "boxes", "activations", "images"):
            assert torch.equal(getattr(other, key), getattr(runs[0], key)), key


def test_merge_winners_is_a_total_order() -> None:
    nan = float("nan")
    first = (torch.tensor([[1.0, nan, 0.0]]), torch.tensor([[3, 0, 1]]), torch.tensor([[0, 0, 0]]))
    second = (torch.tensor([[-0.0, 1.0]]), torch.tensor([[2, 1]]), torch.tensor([[0, 5]]))
    vals, idx, pos = top_patches.merge_winners([first, second], k=5)
    # 1.0 at images 1 then 3; 0.0 and -0.0 tie: image 1 then 2; NaN last
    assert idx.tolist() == [[1, 3, 1, 2, 0]] and pos.tolist() == [[5, 0, 0, 0, 0]] and vals[0, -1].isnan()
    assert top_patches.merge_winners([second, first], k=5)[1].tolist() == idx.tolist()
    low = top_patches.merge_winners([first, second], k=3, minimize=True)
    assert low[1].tolist() == [[1, 2, 1]] and low[0][0, -1] == 1.0  # the raw values, lowest first, NaN still last


def test_merge_refuses_a_sweep_with_a_missing_or_unfinished_shard(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep"
    shard_runs(sweep, 3, "metrics=none", shards=[0, 2])
    (sweep / "2" / "DONE").unlink()
    capsys.readouterr()
    assert merge.main([str(sweep)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot merge"), err
    assert "missing data.shard=1" in err[0] and "data.shard=2 did not finish" in err[0]
    assert not (sweep / "merged").exists()


def test_the_merged_run_is_scored_like_an_unsharded_run(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shard_runs(sweep, 3, "metrics=fast")
    whole = run_into(tmp_path / "whole", "metrics=fast")
    [(out, merged)] = merge.merge_sweep(sweep)
    for i in range(3):  # each shard says its metrics are deferred, and computes none
        shard = pd.read_csv(sweep / str(i) / "metrics.csv")
        deferred = shard[shard["metric"] == "quality_metrics"]
        assert list(deferred["layer"]) == [LAYER] and deferred["status"].str.startswith("deferred").all()
        assert deferred["status"].str.contains("experiments.merge").all() and (sweep / str(i) / "DONE").exists()
        assert not set(shard["metric"]) & {m.name for m in METRICS if m.compute is not None}
    scored = {m.name for m in METRICS if m.compute and issubclass(top_patches.TopPatches, m.on)} & set(whole["metric"])
    assert scored and scored <= set(merged["metric"])

    def per_unit(df: pd.DataFrame) -> pd.DataFrame:
        rows = df[df["unit"].notna()].astype({"unit": int})
        return rows.set_index(["layer", "unit", "metric"])[["value", "status"]].sort_index()

    pd.testing.assert_frame_equal(per_unit(merged), per_unit(whole))
    on_disk = compare.load_results([sweep])  # the merged run is read like any run of the sweep
    assert set(on_disk.loc[on_disk["run_dir"] == str(out), "metric"]) == set(merged["metric"])


def test_a_method_that_does_not_merge_is_refused_on_shards_before_anything_is_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = next(m for m in registry().values()
                 if m.merge is None and (ROOT / "conf" / "method" / f"{m.name}.yaml").exists())
    monkeypatch.setattr(run_module, "build_model", lambda cfg: pytest.fail("a model was built"))
    cfg = make_cfg("progress=false", f"method={other.name}", "data.shard=0", "data.num_shards=3")
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path)
    with pytest.raises(ValueError) as err:
        run_module.run(cfg)
    message = str(err.value)
    assert "\n" not in message and f"method={other.name}" in message and METHOD.name in message


def test_cli_sweep_over_three_shards_then_merge(tmp_path: Path) -> None:
    sweep, env = tmp_path / "sweep", {**os.environ, "HYDRA_FULL_ERROR": "0"}
    jobs = subprocess.run([sys.executable, "-m", "experiments.run", "-m", "data.shard=0,1,2", "data.num_shards=3",
                           *TINY, "metrics=fast", f"hydra.sweep.dir={sweep}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert jobs.returncode == 0, jobs.stderr[-2000:]
    assert all((sweep / str(i) / "DONE").exists() for i in range(3))
    done = subprocess.run([sys.executable, "-m", "experiments.merge", str(sweep)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("merged 3 shards") and str(sweep / "merged") in line
    run_into(tmp_path / "whole", "metrics=fast")
    assert_same_patches(arrays(sweep / "merged"), arrays(tmp_path / "whole"))
    help_text = subprocess.run([sys.executable, "-m", "experiments.merge", "--help"], cwd=ROOT, capture_output=True,
                               text=True, timeout=120)
    assert help_text.returncode == 0 and "sweep" in help_text.stdout
