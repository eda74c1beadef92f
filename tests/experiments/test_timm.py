"""timm models: random init, local state dict files, pretrained weights from the local cache only, clear errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from experiments.builders import check_builder
from experiments.zoo import build_model
from experiments.zoo.probe import trace
from experiments.zoo.timm_models import build_timm
from tests.conftest import make_cfg

timm = pytest.importorskip("timm")

REVISION = "0123abcd"


def timm_cfg(*overrides: str):
    """The model config of `model=timm` with `overrides`."""
    return make_cfg("model=timm", *overrides).model


@pytest.mark.parametrize(("name", "first"), [("test_resnet", "conv1.0"), ("test_convnext", "stem.0"),
                                             ("test_vit", "patch_embed.proj")])
def test_random_init_architectures_build_with_their_input_format(name: str, first: str) -> None:
    spec = build_model(timm_cfg(f"model.name={name}"))
    cfg = timm.models.get_pretrained_cfg(name)
    assert spec.weights is None and spec.hw == cfg.input_size[1:] and spec.in_channels == 3
    assert spec.mean == tuple(cfg.mean) and spec.std == tuple(cfg.std) and spec.num_classes == 1000
    assert list(spec.default_targets)[0] == first and len(spec.default_targets) == 3
    probe = trace(spec.model, spec.hw, spec.in_channels)
    calls = {c.name: c for c in probe.calls}
    assert all(probe.is_map(calls[layer]) for layer in spec.default_targets)
    assert spec.model(torch.rand(1, 3, *spec.hw)).shape == (1, 1000)


def test_vit_default_targets_are_whole_blocks() -> None:
    spec = build_model(timm_cfg("model.name=test_vit"))
    assert len(spec.model.blocks) == 6
    assert list(spec.default_targets)[1:] == ["blocks.1", "blocks.3"]  # the blocks ending 1/3 and 2/3 of the six


def test_unknown_name_says_did_you_mean() -> None:
    with pytest.raises(ValueError) as err:
        build_timm("resnet181")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("unknown timm model 'resnet181' (model.name); did you mean resnet18")
    assert "timm.list_models()" in msg


def test_unknown_pretrained_tag_is_refused_before_building() -> None:
    with pytest.raises(ValueError) as err:
        check_builder("model", timm_cfg("model.name=resnet18.a1_in1kk"), "source")
    assert str(err.value) == ("unknown timm model 'resnet18.a1_in1kk'; did you mean resnet18.a1_in1k, "
                              "resnet18.a3_in1k, resnet18.a2_in1k? valid: resnet18.a1_in1k, resnet18.a2_in1k, resnet18.a3_in1k, resnet18.fb_ssl_yfcc100m_ft_in1k, "
                              "resnet18.fb_swsl_ig1b_ft_in1k, resnet18.gluon_in1k, resnet18.tv_in1k (model.name; "
                              "resnet18 without a tag: its default weights)")


def test_bad_weights_value_is_one_line() -> None:
    with pytest.raises(ValueError) as err:
        build_timm("test_resnet", "pretrianed")
    assert str(err.value) == ("unknown model.weights 'pretrianed'; did you mean pretrained? valid: null, pretrained "
                              "or the path of a state dict file (no such file)")


def test_timm_not_installed_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ValueError) as err:
        build_timm("resnet18")
    assert str(err.value) == 'model=timm needs timm, which is not installed: pip install -e ".[timm]"'


def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hugging Face and torch hub caches in `tmp_path`, both empty; the hub cache folder."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "hf"


def cached_file(cache: Path, repo: str, filename: str) -> Path:
    """Where the Hugging Face cache keeps `filename` of `repo` at its main revision (refs/main -> snapshot)."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(REVISION)
    path = folder / "snapshots" / REVISION / filename
    path.parent.mkdir(parents=True)
    return path


def test_absent_pretrained_weights_name_the_files_and_folder(tmp_path, monkeypatch) -> None:
    cache = empty_caches(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError) as err:
        build_model(timm_cfg("model.name=test_resnet", "model.weights=pretrained"))
    msg = str(err.value)
    folder = cache / "models--timm--test_resnet.r160_in1k" / "snapshots"
    assert "\n" not in msg and msg.startswith("timm weights test_resnet.r160_in1k (model.weights=pretrained) are not "
                                              "available offline: ")
    assert f"model.safetensors or pytorch_model.bin of timm/test_resnet.r160_in1k in {folder}" in msg
    assert "model.weights=null" in msg


def test_absent_url_weights_name_the_torch_hub_file(tmp_path, monkeypatch) -> None:
    empty_caches(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError) as err:
        build_timm("resnet18.a1_in1k", "pretrained")
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18_a1_0-d63eafa0.pth") in str(err.value)


def test_pretrained_weights_load_from_the_hugging_face_cache(tmp_path, monkeypatch) -> None:
    cache = empty_caches(tmp_path, monkeypatch)
    torch.manual_seed(1)
    ref = timm.create_model("test_resnet", pretrained=False)
    torch.save(ref.state_dict(), cached_file(cache, "timm/test_resnet.r160_in1k", "pytorch_model.bin"))
    spec = build_model(timm_cfg("model.name=test_resnet", "model.weights=pretrained"))
    assert spec.weights == "pretrained test_resnet.r160_in1k"
    for key, value in ref.state_dict().items():
        assert torch.equal(spec.model.state_dict()[key], value), key


def test_corrupt_cached_weights_are_one_line(tmp_path, monkeypatch) -> None:
    cache = empty_caches(tmp_path, monkeypatch)
    path = cached_file(cache, "timm/test_resnet.r160_in1k", "pytorch_model.bin")
    path.write_bytes(b"")
    with pytest.raises(ValueError) as err:
        build_timm("test_resnet", "pretrained")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"model.weights=pretrained: the weights file {path} is empty (0 bytes)")


def test_other_models_cached_weights_name_their_keys(tmp_path, monkeypatch) -> None:
    cache = empty_caches(tmp_path, monkeypatch)
    path = cached_file(cache, "timm/test_resnet.r160_in1k", "pytorch_model.bin")
    torch.save(timm.create_model("test_convnext").state_dict(), path)
    with pytest.raises(ValueError) as err:
        build_timm("test_resnet", "pretrained")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"model.weights=pretrained: the weights file {path} does not fit test_resnet: ")
    assert "missing keys conv1.0.weight" in msg


def test_weights_from_a_local_file_with_a_data_parallel_prefix(tmp_path) -> None:
    torch.manual_seed(2)
    ref = timm.create_model("test_convnext", pretrained=False)
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, tmp_path / "mine.pt")
    spec = build_model(timm_cfg("model.name=test_convnext", f"model.weights={tmp_path / 'mine.pt'}"))
    assert spec.weights == str(tmp_path / "mine.pt")
    assert torch.equal(spec.model.stem[0].weight, ref.stem[0].weight)


def test_local_file_that_does_not_fit_honours_strict(tmp_path) -> None:
    state = timm.create_model("test_convnext", pretrained=False).state_dict()
    state.pop("head.fc.bias")
    torch.save(state, tmp_path / "headless.pt")
    with pytest.raises(ValueError, match=r"does not fit ConvNeXt: missing keys head.fc.bias$"):
        build_timm("test_convnext", str(tmp_path / "headless.pt"))
    assert build_timm("test_convnext", str(tmp_path / "headless.pt"), strict=False).num_classes == 1000
