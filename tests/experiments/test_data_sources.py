"""Data sources: every conf/data option builds through its `_target_`, new sources need no registry edit."""
from __future__ import annotations

import io
import logging
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


def folder_error(kind: type[Exception], root: object, n: int = 8) -> str:
    """The message of the `kind` error loading an image folder at `root`, checked to be one line."""
    with pytest.raises(kind) as err:
        build_data(make_cfg("data=image_folder", f"data.n={n}", *([f"data.root={root}"] if root else [])).data, 32)
    assert "\n" not in str(err.value) and type(err.value) is kind
    return str(err.value)


def test_image_folder_without_root_is_one_line() -> None:
    assert folder_error(ValueError, None).startswith("data=image_folder needs data.root=<folder> (expected an ImageFolder")


def test_image_folder_root_that_does_not_exist(tmp_path: Path) -> None:
    msg = folder_error(FileNotFoundError, tmp_path / "nope")
    assert msg == f"data.root={str(tmp_path / 'nope')!r} does not exist (expected an ImageFolder tree: root/<class>/<image>)"


def test_image_folder_without_class_folders(tmp_path: Path) -> None:
    assert folder_error(FileNotFoundError, tmp_path).startswith(f"data.root={str(tmp_path)!r} has no class subfolders")


def test_image_folder_with_no_images(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    msg = folder_error(FileNotFoundError, tmp_path)
    assert msg.startswith(f"data.root={str(tmp_path)!r} holds no image files in its class subfolders cats (extensions")


def bad_images(folder: Path) -> list[Path]:
    """A truncated JPEG and a text file named .jpg in `folder`."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="JPEG")
    truncated, text = folder / "truncated.jpg", folder / "text.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    text.write_text("this is not a JPEG")
    return [truncated, text]


def test_unreadable_images_are_skipped_with_a_warning_each(image_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = bad_images(image_root / "dark")
    with caplog.at_level(logging.WARNING, logger="experiments.data.image_folder"):
        data = build_data(make_cfg("data=image_folder", "data.n=4", f"data.root={image_root}").data, 32)
    assert len(data.images) == 4 and sorted(data.skipped) == sorted(map(str, bad))  # the 4 good ones, past the bad
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(any(str(p) in w for w in warnings) for p in bad)
    assert all(w.startswith("skipped unreadable image ") and "\n" not in w for w in warnings)


def test_folder_of_only_unreadable_images_stops(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    bad_images(tmp_path / "broken")
    msg = folder_error(ValueError, tmp_path)
    assert msg.startswith(f"data.root={str(tmp_path)!r} holds no readable images: all 2 failed to decode (e.g. ")


def test_image_folder_needs_n(image_root: Path) -> None:
    assert folder_error(ValueError, image_root, n=0) == "data.n=0 must be >= 1"


def test_shapes_too_small_for_the_model_names_input_size() -> None:
    with pytest.raises(ValueError, match=r"^data=shapes draws images of >= 32 px; the model's input is 16 px \(model.input_size=16\)$"):
        build_data(make_cfg("data=shapes").data, 16)
