"""Every config composes; misspelled keys and wrong types fail before any work, naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from tests.conftest import make_cfg

CONF = Path(__file__).resolve().parents[2] / "conf"


def options(group: str) -> list[str]:
    """Option names of a config group, nested groups as 'sub/name'."""
    return sorted(str(p.relative_to(CONF / group).with_suffix("")) for p in (CONF / group).rglob("*.yaml"))


def check_option(group: str, option: str, cfg) -> None:
    """What a composed option must hold: a registered method with valid params, an importable builder, ..."""
    from omegaconf import OmegaConf

    from experiments.adapters import get_method
    from experiments.builders import locate
    if group == "method":
        get_method(cfg.method.name).check_params(OmegaConf.to_container(cfg.method.params))
    elif group in ("model", "data"):
        assert callable(locate(group, cfg[group]._target_))
    elif group == "experiment":
        assert cfg.experiment == option
    else:
        assert cfg.metrics.randomization == cfg.metrics.reruns == (option == "full")
        assert isinstance(cfg.metrics.mis_tasks, int)


@pytest.mark.parametrize("group", ["method", "model", "data", "experiment", "metrics"])
def test_every_option_composes(group: str) -> None:
    assert options(group)
    for option in options(group):
        cfg = make_cfg(f"{group}={option}")
        assert cfg.seed == 0
        check_option(group, option, cfg)


@pytest.mark.parametrize("key", ["model.wieghts", "model._tagret_", "data.nn", "data._tagret_"])
def test_misspelled_key_fails_naming_it(key: str) -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as err:
        make_cfg(f"{key}=x")
    assert key.split(".")[1] in str(err.value)


@pytest.mark.parametrize("group", ["model", "data"])
def test_every_model_and_data_option_names_its_builder(group: str) -> None:
    for option in options(group):
        assert make_cfg(f"{group}={option}")[group]._target_.startswith("experiments."), option


def test_wrong_type_fails_naming_key() -> None:
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        make_cfg("seed=abc")
    assert "seed" in str(err.value)


def test_default_experiment_sweeps_models_and_methods_with_every_metric() -> None:
    from hydra import compose, initialize_config_module
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=default"], return_hydra_config=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.metrics.randomization and cfg.metrics.reruns
    assert set(cfg.hydra.sweeper.params.model.split(",")) == {"planted", "shapes_cnn"}


@pytest.mark.parametrize("overrides", [[], ["model=resnet18", "method=occlusion"], ["model=torchvision",
                                                                                     "model.name=vgg11"]])
def test_a_command_without_experiment_or_m_is_one_run_with_fast_metrics(overrides: list[str]) -> None:
    from hydra import compose, initialize_config_module
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.mode is None or cfg.hydra.mode.name == "RUN"
    assert cfg.experiment == "single" and not cfg.metrics.randomization and not cfg.metrics.reruns


def test_slurm_launcher_config_composes() -> None:
    from hydra import compose, initialize_config_module
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_gpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.partition == "gpu"
