"""Data sources: every conf/data option builds through its `_target_`, new sources need no registry edit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from experiments.config import DataConf
from experiments.data import build_data
from experiments.builders import options
from experiments.data.shapes import make_shapes
from experiments.data.spec import DataSpec
from tests.conftest import make_cfg

BUILDERS = {"shapes": "shapes.make_shapes", "skimage": "photos.load_photos",
            "image_folder": "image_folder.load_image_folder"}


def two_greys(size: int, n: int) -> DataSpec:
    """A data source written as a plain function: `size` from the run, `n` from its config."""
    return DataSpec(name="greys", images=torch.full((n, 3, size, size), 0.5), labels=torch.zeros(n, dtype=torch.long),
                    masks=None, class_names=("grey",))


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An ImageFolder tree with two classes of two 40 px images each."""
    for label, colour in (("dark", 40), ("light", 200)):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.new("RGB", (48, 40), (colour, colour + i, colour)).save(tmp_path / label / f"{i}.png")
    return tmp_path


def test_options_are_the_known_builders() -> None:
    assert options("data") == sorted(BUILDERS)


@pytest.mark.parametrize("option", sorted(BUILDERS))
def test_every_data_option_builds_through_its_target(option: str, image_root: Path) -> None:
    cfg = make_cfg(f"data={option}", "data.n=8", f"data.root={image_root}").data
    assert cfg._target_ == f"experiments.data.{BUILDERS[option]}"
    data = build_data(cfg, 32)
    assert data.images.shape[1:] == (3, 32, 32) and len(data.labels) == len(data.images) <= 8


def test_shapes_are_what_make_shapes_draws() -> None:
    data = build_data(make_cfg("data=shapes", "data.n=8").data, 64)
    ref = make_shapes(n=8, size=64, seed=1234)
    assert torch.equal(data.images, ref.images) and torch.equal(data.masks, ref.masks)


def test_image_folder_draws_n_seeded(image_root: Path) -> None:
    cfg = make_cfg("data=image_folder", "data.n=3", f"data.root={image_root}").data
    a, b = build_data(cfg, 32), build_data(cfg, 32)
    assert len(a.images) == 3 and torch.equal(a.images, b.images) and a.class_names == ("dark", "light")


@pytest.mark.parametrize("name", ["shapes", "skimage"])
def test_data_conf_by_name_alone_builds_that_source(name: str) -> None:
    data = build_data(OmegaConf.structured(DataConf(name=name, n=8)), 32)
    assert data.name == {"shapes": "shapes", "skimage": "photos"}[name]


def test_new_source_is_one_function_and_one_config() -> None:
    data = build_data(OmegaConf.create({"_target_": f"{__name__}.two_greys", "name": "greys", "n": 2, "seed": 5}), 16)
    assert data.name == "greys" and data.images.shape == (2, 3, 16, 16)


def test_bad_target_is_one_line_naming_it_and_the_valid_ones() -> None:
    with pytest.raises(ValueError) as err:
        build_data(OmegaConf.structured(DataConf(_target_="experiments.data.shapes.make_shape")), 32)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("unknown data._target_ 'experiments.data.shapes.make_shape'; did you mean experiments.data.shapes.make_shapes? valid: ")
    assert all(f"experiments.data.{b}" in msg for b in BUILDERS.values())


def test_unknown_name_lists_the_data_options() -> None:
    with pytest.raises(ValueError) as err:
        build_data(OmegaConf.structured(DataConf(name="imagenet")), 32)
    assert str(err.value) == "unknown data.name 'imagenet'; valid: image_folder, shapes, skimage"


def test_image_folder_without_root_is_one_line() -> None:
    with pytest.raises(FileNotFoundError, match="data.root=None is not a folder"):
        build_data(make_cfg("data=image_folder").data, 32)
