"""Every bad input a new user might try ends the run loudly: non-zero exit, exactly one `error:` line on stderr,
no traceback, and the bad key, value or file named. The CLI runs in process (Hydra's app as `python -m
experiments.run` runs it), so the ~40 cases take seconds, not minutes; test_sweeps runs it as a subprocess."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from experiments import run as run_module
from tests.conftest import make_tiny_cnn

QUICK = ["hydra.mode=RUN", "progress=false", "metrics=none", "data.n=16"]
CUSTOM = ["model=custom", "model.factory=tests.conftest.make_tiny_cnn", "model.input_size=32"]
TORCHVISION = ["model=torchvision", "model.name=resnet18"]


def raising_factory() -> torch.nn.Module:
    """A model factory whose own code fails."""
    raise RuntimeError("the weights server is down")


def one_channel_factory() -> torch.nn.Module:
    """A model for 1-channel (grey) inputs."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Bad files of every kind: checkpoints, a hub cache, image folders."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "good.pt"
    torch.save(make_tiny_cnn().state_dict(), good)
    out = {"good": good, "corrupt": root / "corrupt.pt", "truncated": root / "truncated.pt",
           "pickled": root / "pickled.pt", "renamed": root / "renamed.pt", "reshaped": root / "reshaped.pt",
           "empty_folder": root / "empty", "missing": root / "does_not_exist.pt", "torch_home": root / "torch_home"}
    out["corrupt"].write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                             dtype=torch.uint8).numpy().tobytes())
    out["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    torch.save(make_tiny_cnn(), out["pickled"])
    state = make_tiny_cnn().state_dict()
    torch.save({("body." + k if k.startswith("conv1") else k): v for k, v in state.items()}, out["renamed"])
    torch.save({**state, "fc.weight": torch.zeros(7, 16)}, out["reshaped"])
    out["empty_folder"].mkdir()
    hub = out["torch_home"] / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "resnet18-f37072fd.pth").write_bytes(b"PK\x03\x04 this is not the file you are looking for")
    return out


CASES = {
    # method params (silent exit 0 before)
    "steps": (["method=gradient_ascent/quick", "method.params.steps=-5"], "method.params.steps=-5"),
    "stride": (["method=occlusion", "method.params.stride=0"], "method.params.stride=0"),
    "window": (["method=occlusion", "method.params.window=1000"], "method.params.window=1000"),
    "occlusion_kind": (["method=occlusion", "target.layer=conv2", "target.kind=layer"], "'layer'"),
    "patches_no_map": (["method=top_patches", "target.layer=fc"], "'fc'"),
    "fill": (["method=occlusion", "method.params.fill=purple"], "'purple'"),
    "k": (["method=top_patches", "method.params.k=0"], "method.params.k=0"),
    "param": (["method=gradient_ascent/quick", "method.params.param=fourierr"], "'fourierr'"),
    "lr": (["method=gradient_ascent/quick", "method.params.lr=fast"], "method.params.lr='fast'"),
    "param_key": (["method=occlusion", "method.params.windw=4"], "'windw'"),
    "n_images": (["method=occlusion", "method.n_images=0"], "method.n_images=0"),
    # targets
    "raw_weights_deep": (["method=raw_weights", "target.layer=conv2"], "'conv2'"),
    "position": (["method=gradient_ascent/quick", "target.layer=conv2", "target.kind=neuron",
                  "target.position=[500,500]"], "target.position"),
    "units_abc": (["target.layer=conv1", "target.units=abc"], "target.units"),
    "unit_range": (["target.layer=conv1", "target.units=[99]"], "99"),
    "units_without_layer": (["target.units=[0,1]"], "target.layer"),
    "position_not_neuron": (["method=top_patches", "target.layer=conv2", "target.position=[1,1]"], "target.kind=neuron"),
    "layer": (["target.layer=nope"], "'nope'"),
    "direction": (["method=gradient_ascent/quick", "target.layer=conv2", "target.kind=direction",
                   "target.direction=[1,2]"], "target.direction"),
    "class": (["method=occlusion", "target.kind=class", "target.units=[500]"], "500"),
    "kind": (["target.kind=cls"], "'cls'"),
    # run-wide settings
    "amp_fp8": (["amp=fp8"], "'fp8'"),
    "amp_fp16_cpu": (["amp=fp16", "device=cpu"], "fp16"),
    "device": (["device=tpu"], "'tpu'"),
    "randomization_mode": (["metrics=full", "metrics.randomization_mode=sideways"], "'sideways'"),
    "enabled": (["metrics.enabled=[nosuch_metric]"], "'nosuch_metric'"),
    "mis_tasks": (["metrics.mis_tasks=0"], "metrics.mis_tasks=0"),
    "mis_references": (["metrics.mis_references=0"], "metrics.mis_references=0"),
    "mis_embedding": (["metrics.mis_embedding=nosuch_module:embed"], "nosuch_module:embed"),
    "mis_temperature": (["metrics.mis_temperature=-1"], "mis_temperature"),
    "baseline_like": (["method=random_baseline/occlusion", "method.params.like=occlusoin"], "'occlusoin'"),
    "baseline_deep_filters": (["method=random_baseline/raw_weights", "target.layer=conv2", "target.units=[0]"], "'conv2'"),
    "runner": (["runner=nosuch.run"], "'nosuch.run'"),
    # config keys and options (Hydra's multi-line messages before)
    "plus_key": (["+foo=1"], "'foo'"),
    "plus_typo": (["+metrics.randomisation=false"], "'metrics.randomisation'"),
    "typo": (["model.wieghts=x"], "'model.wieghts'"),
    "type": (["seed=abc"], "seed=abc"),
    "option": (["model=nosuch"], "'nosuch'"),
    "method_option": (["method=gradient_ascent/olah"], "'gradient_ascent/olah'"),
    "parse": (["seed=[1"], "'seed=[1'"),
    "sweep_without_m": (["model=planted,shapes_cnn"], "-m"),
    # models and checkpoints (tracebacks before)
    "torchvision_name": (["model=torchvision", "model.name=resnet181"], "'resnet181'"),
    "torchvision_weights": ([*TORCHVISION, "model.weights=NOPE"], "NOPE"),
    "hub_corrupt": ([*TORCHVISION, "model.weights=DEFAULT"], "resnet18-f37072fd.pth"),
    "factory_raises": (["model=custom", f"model.factory={__name__}.raising_factory"], "raising_factory"),
    "factory_missing": (["model=custom", "model.factory=nosuch_module.make"], "nosuch_module.make"),
    "checkpoint_missing": ([*CUSTOM, "model.checkpoint={missing}"], "does_not_exist.pt"),
    "checkpoint_corrupt": ([*CUSTOM, "model.checkpoint={corrupt}"], "corrupt.pt"),
    "checkpoint_truncated": ([*CUSTOM, "model.checkpoint={truncated}"], "truncated.pt"),
    "checkpoint_pickled": ([*CUSTOM, "model.checkpoint={pickled}"], "weights_only"),
    "checkpoint_keys": ([*CUSTOM, "model.checkpoint={renamed}"], "body.conv1"),
    "checkpoint_shapes": ([*CUSTOM, "model.checkpoint={reshaped}"], "fc.weight"),
    "channels": (["model=custom", f"model.factory={__name__}.one_channel_factory", "model.input_size=32",
                  "method=top_patches"], "channel"),
    # data
    "no_root": (["data=image_folder"], "data.root"),
    "missing_root": (["data=image_folder", "data.root={missing}"], "does_not_exist.pt"),
    "empty_root": (["data=image_folder", "data.root={empty_folder}"], "empty"),
    "data_n": (["data.n=0"], "data.n"),
    "model_targets": (["model.targets={{conv1:[99]}}"], "model.targets.conv1=[99]"),
    "neuron_without_map": (["method=occlusion", "target.layer=fc", "target.kind=neuron"], "'fc'"),
    "prob_not_class": (["method=occlusion", "method.params.output=prob"], "method.params.output=prob"),
    "speed_repeats": (["experiment=speed", "speed.repeats=0"], "speed.repeats=0"),
    "unused_field": (["model=torchvision", "model.input_size=64"], "model.input_size is not used by model=torchvision"),
}


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run `python -m experiments.run ARGV` in process; its exit status."""
    monkeypatch.setattr(sys, "argv", ["experiments/run.py", *argv])
    try:
        run_module.cli()
    except SystemExit as stop:
        return stop.code
    return 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_exits_non_zero_with_one_error_line_naming_it(case: str, files: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capfd: pytest.CaptureFixture) -> None:
    args, named = CASES[case]
    monkeypatch.setenv("TORCH_HOME", str(files["torch_home"]))
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    argv = [a.format(**files) for a in args]
    code = cli([*QUICK, f"hydra.run.dir={tmp_path}", *argv], monkeypatch)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert named in lines[0], lines[0]
    table = tmp_path / "metrics.csv"  # stopped before any work: no table, or the one row saying why
    assert not table.exists() or pd.read_csv(table)["metric"].tolist() == ["error"]


def test_bad_input_in_any_job_stops_the_default_sweep_before_its_first_job(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capfd: pytest.CaptureFixture) -> None:
    code = cli([f"hydra.sweep.dir={tmp_path}", "experiment=default", "progress=false", "model=torchvision",
                "model.name=resnet181"], monkeypatch)
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "'resnet181'" in lines[0] and "sweep job" in lines[0]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_an_unreadable_image_is_skipped_with_a_warning_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capfd: pytest.CaptureFixture) -> None:
    root = tmp_path / "images" / "cats"
    root.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (40, 40), (60 * i, 90, 200)).save(root / f"{i}.jpg")
    good = (root / "0.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "notes.jpg").write_text("not an image")
    out = tmp_path / "run"
    code = cli([*QUICK, f"hydra.run.dir={out}", "data=image_folder", f"data.root={tmp_path / 'images'}",
                "method=top_patches", "method.params.k=2"], monkeypatch)
    assert code == 0
    table = (out / "metrics.csv").read_text()
    assert "images_skipped" in table
    log = (out / "run.log").read_text()
    assert "notes.jpg" in log and "truncated.jpg" in log


def test_a_run_folder_that_cannot_be_made_stops_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capfd: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    code = cli([*QUICK, f"hydra.run.dir={blocker / 'run'}"], monkeypatch)
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "a_file is a file" in lines[0]
