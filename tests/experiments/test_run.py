"""experiments.run in process: params checked before any model is built, the OOM retry, one table per run."""
from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from experiments import run as run_module
from experiments.adapters import get_method
from methods.base import Target
from tests.conftest import make_cfg


def cfg_in(tmp_path: Path, *overrides: str):
    """A single-run config writing into tmp_path."""
    cfg = make_cfg("progress=false", "data.n=32", *overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.output_dir = str(tmp_path)
    return cfg


@pytest.mark.parametrize("overrides,message", [
    (["method=gradient_ascent/quick", "method.params.stpes=10"], "unknown gradient_ascent setting 'stpes'; did you mean steps?"),
    (["method=gradient_ascent/quick", "method.params.steps=0"], "method.params.steps=0 must be >= 1"),
    (["method=gradient_ascent/quick", "method.params.lr=fast"], "method.params.lr='fast' should be float"),
    (["method=gradient_ascent/quick", "method.params.param=fourierr"], "unknown param 'fourierr'; did you mean fourier?"),
    (["method=occlusion", "method.params.stride=0"], "method.params.stride=0 must be >= 1"),
    (["method=occlusion", "method.params.fill=purple"], "unknown fill 'purple'; valid: grey, zero, mean, blur"),
    (["method=top_patches", "method.params.k=0"], "method.params.k=0 must be >= 1"),
    (["method=top_patches", "method.params.mode=avg"], "unknown mode 'avg'; valid: max, location"),
    (["method=raw_weights", "method.params.normalization=none"], "unknown normalization 'none'"),
    (["method=occlusion", "method.params.model=1"], "method.params.model is set by the run itself"),
])
def test_bad_params_stop_before_any_model_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   overrides: list[str], message: str) -> None:
    monkeypatch.setattr(run_module, "build_model", lambda cfg: pytest.fail("a model was built"))
    with pytest.raises(ValueError) as err:
        run_module.run(cfg_in(tmp_path, *overrides))
    assert message in str(err.value) and "\n" not in str(err.value)


def fitting(key: str, limit: int, sizes: list):
    """A stand-in for Method.call that records params[key] and runs out of CUDA memory above `limit`."""
    def call(spec, data, target, params, opts, model):
        sizes.append(params[key])
        if params[key] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "result"
    return call


def test_cuda_out_of_memory_halves_the_batch() -> None:
    sizes: list = []
    method = dataclasses.replace(get_method("occlusion"), call=fitting("batch_size", 16, sizes))
    spec = types.SimpleNamespace(model=None)
    assert run_module.call_with_oom_retry(method, spec, None, None, {"batch_size": 64}, None) == ("result", 16)
    assert sizes == [64, 32, 16]


def test_cuda_out_of_memory_halves_gradient_ascent_units_per_batch() -> None:
    sizes: list = []
    method = dataclasses.replace(get_method("gradient_ascent"), call=fitting("units_per_batch", 3, sizes))
    spec, target = types.SimpleNamespace(model=None), Target("conv2", tuple(range(12)))
    assert run_module.call_with_oom_retry(method, spec, None, target, {"steps": 4}, None) == ("result", 3)
    assert sizes == [12, 6, 3]  # starts with all units in one batch
    sizes.clear()
    run_module.call_with_oom_retry(method, spec, None, target, {"units_per_batch": 8}, None)
    assert sizes == [8, 4, 2]


def test_a_quality_run_writes_its_table_pictures_and_done(tmp_path: Path) -> None:
    df = run_module.run(cfg_in(tmp_path, "method=top_patches", "metrics=fast", "target.layer=conv2", "target.units=[0,2]"))
    on_disk = pd.read_csv(tmp_path / "metrics.csv")
    assert len(on_disk) == len(df) and (tmp_path / "DONE").exists() and (df["status"] == "ok").all()
    assert set(df["unit"].dropna()) == {0, 2} and (df["method"] == "top_patches").all()
    assert {"topk_mean_activation", "topk_precision", "time_s", "metrics_time_s"} <= set(df["metric"])
    assert not df["metric"].str.startswith("sanity").any()  # metrics=fast: no randomization test
    assert not {"mis_proxy", "seed_ssim"} & set(df["metric"])  # ... and no other metric that re-runs the method
    assert (tmp_path / "grids" / "top_patches__conv2.png").exists()
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == [
        "top_patches__conv2__0.png", "top_patches__conv2__0__context.png",
        "top_patches__conv2__2.png", "top_patches__conv2__2__context.png"]
    arrays = torch.load(tmp_path / "arrays" / "top_patches__conv2.pt")
    assert arrays["indices"].shape == (2, 9) and arrays["layer"] == "conv2" and "topk_mean_activation" in arrays["values"]


def test_raw_weights_default_targets_are_the_first_layer(tmp_path: Path) -> None:
    df = run_module.run(cfg_in(tmp_path, "method=raw_weights", "model=shapes_cnn", "metrics=none"))
    assert set(df["layer"].dropna()) == {"conv1"}


def test_resume_skips_a_finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_module.run(cfg_in(tmp_path, "method=raw_weights", "metrics=none"))
    monkeypatch.setattr(run_module, "build_model", lambda cfg: pytest.fail("a finished run was run again"))
    again = run_module.run(cfg_in(tmp_path, "method=raw_weights", "metrics=none", "resume=true"))
    assert len(again) == len(first)


def test_the_metric_settings_reach_scoring_as_one_object(tmp_path: Path) -> None:
    settings = run_module.metric_settings(cfg_in(tmp_path, "metrics=fast", "metrics.mis_tasks=7"))
    assert (settings.randomization, settings.mis_tasks, settings.enabled) == (False, 7, ["all"])


def test_run_and_speed_import_neither_each_other() -> None:
    import subprocess
    import sys
    for module, other in (("experiments.run", "experiments.speed"), ("experiments.speed", "experiments.run")):
        code = f"import sys, {module}; sys.exit({other!r} in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0, module


def test_no_method_name_is_a_branch_outside_the_registry() -> None:
    import ast
    from experiments.adapters import registry
    root = Path(__file__).resolve().parents[2] / "experiments"
    allowed = {("config.py", "raw_weights"),  # the schema's default method
               ("planted_presets.py", "gradient_ascent")}  # a script about gradient-ascent presets
    found = set()
    for path in root.rglob("*.py"):
        if "adapters" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in registry():
                found.add((path.relative_to(root).as_posix(), node.value))
    assert found <= allowed, found - allowed
