"""Data sources: every conf/data option builds through its `_target_`, new sources need no registry edit."""
from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import numpy as np
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
            "image_folder": "image_folder.load_image_folder", "arrays": "arrays.load_arrays"}


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
def test_every_data_option_builds_through_its_target(option: str, image_root: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "images.npy", np.random.default_rng(0).random((10, 3, 20, 24), dtype=np.float32))
    where = {"image_folder": [f"data.root={image_root}"], "arrays": [f"data.path={tmp_path / 'images.npy'}"]}
    cfg = make_cfg(f"data={option}", "data.n=8", *where.get(option, [])).data
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
    assert str(err.value) == "unknown data.name 'imagenet'; valid: arrays, image_folder, shapes, skimage"


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
    assert folder_error(ValueError, image_root, n=0) == "data.n=0 must be >= 1 or all"


def test_shapes_too_small_for_the_model_names_input_size() -> None:
    with pytest.raises(ValueError, match=r"^data=shapes draws images of >= 32 px; the model's input is 16 px \(model.input_size=16\)$"):
        build_data(make_cfg("data=shapes").data, 16)


def one_image(root: Path, rgb: np.ndarray, name: str = "0.png") -> Path:
    """`rgb` ([H, W, 3] uint8) saved as root/things/<name>."""
    (root / "things").mkdir(exist_ok=True)
    Image.fromarray(rgb).save(root / "things" / name)
    return root / "things" / name


def wide_photo() -> np.ndarray:
    """A 448 x 172 (width x height) image: red in its leftmost 20 columns, blue in its rightmost 20, green between."""
    rgb = np.zeros((172, 448, 3), dtype=np.uint8)
    rgb[:, :20, 0], rgb[:, 20:-20, 1], rgb[:, -20:, 2] = 255, 255, 255
    return rgb


def folder(root: Path, size: object, *overrides: str) -> DataSpec:
    """The image folder at `root` built through its config at `size`."""
    return build_data(make_cfg("data=image_folder", f"data.root={root}", *overrides).data, size)


def test_pad_keeps_the_whole_width_of_a_wide_image(tmp_path: Path) -> None:
    one_image(tmp_path, wide_photo())
    image = folder(tmp_path, 64).images[0]  # 64 x 24.6 -> 25 rows, 19 grey rows above and 20 below
    assert (image[:, :19] == 0.5).all() and (image[:, 44:] == 0.5).all() and not (image[:, 19:44] == 0.5).all(0).any()
    red, blue = torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0])
    assert torch.allclose(image[:, 20:43, 0].T, red.expand(23, 3), atol=0.02)  # the leftmost column is still red
    assert torch.allclose(image[:, 20:43, -1].T, blue.expand(23, 3), atol=0.02)  # and the rightmost blue


def test_crop_and_stretch_are_the_other_fits(tmp_path: Path) -> None:
    one_image(tmp_path, wide_photo())
    crop, stretch = folder(tmp_path, 64, "data.resize=crop").images[0], folder(tmp_path, 64, "data.resize=stretch").images[0]
    assert torch.allclose(crop[:, :, [0, -1]], torch.tensor([0, 1.0, 0]).view(3, 1, 1).expand(3, 64, 2))  # sides lost
    assert (stretch[0, :, 0] > 0.9).all() and (stretch[2, :, -1] > 0.9).all()  # sides kept, no grey rows
    assert not (stretch == 0.5).all(0).any()


def test_non_square_input_size(tmp_path: Path) -> None:
    one_image(tmp_path, wide_photo())
    for resize in ("pad", "crop", "stretch"):
        assert folder(tmp_path, (24, 80), f"data.resize={resize}").images.shape == (1, 3, 24, 80)


def test_unknown_resize_is_one_line(tmp_path: Path) -> None:
    one_image(tmp_path, wide_photo())
    with pytest.raises(ValueError, match=r"^unknown data.resize 'pads'; did you mean pad\? valid: pad, crop, stretch$"):
        folder(tmp_path, 32, "data.resize=pads")


def quadrant(w: int = 100, h: int = 50) -> np.ndarray:
    """A black w x h image, white in its bottom-right quadrant."""
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[h // 2 :, w // 2 :] = 255
    return rgb


@pytest.mark.parametrize("resize", ["pad", "crop", "stretch"])
@pytest.mark.parametrize("size", [32, (40, 24), (29, 31)])
@pytest.mark.parametrize("shape", [(100, 50), (37, 23)])
def test_mask_pngs_are_fitted_exactly_like_their_images(tmp_path: Path, resize: str, size: object,
                                                        shape: tuple[int, int]) -> None:
    """White bands from 60% of the height (or width) on, each with its mask: no output pixel centre falls on an
    edge, so image > 0.5 is exactly where the fitted mask must be."""
    w, h = shape
    for axis in (0, 1):
        band = np.zeros((h, w), dtype=np.uint8)
        if axis == 0:
            band[round(h * 0.6) :] = 255
        else:
            band[:, round(w * 0.6) :] = 255
        path = one_image(tmp_path, np.repeat(band[:, :, None], 3, 2), f"{axis}.png")
        Image.fromarray(band).save(path.with_suffix(".mask.png"))
    data = folder(tmp_path, size, f"data.resize={resize}")
    assert len(data.images) == 2 and data.masks.dtype == torch.bool  # the masks are not read as images
    assert data.masks.flatten(1).any(1).all() and torch.equal(data.masks, data.images[:, 0] > 0.5)


def test_a_box_lands_on_its_pixel_after_pad(tmp_path: Path) -> None:
    """A 20 x 10 image at 20 px: scale 1, 5 grey rows above; a box on pixel (row 3, col 7) lands on (8, 7)."""
    one_image(tmp_path, np.zeros((10, 20, 3), dtype=np.uint8))
    (tmp_path / "boxes.csv").write_text("path,top,left,bottom,right\nthings/0.png,3,7,4,8\n")
    mask = folder(tmp_path, 20, f"data.boxes={tmp_path / 'boxes.csv'}").masks[0]
    assert mask.nonzero().tolist() == [[8, 7]]


def test_boxes_are_united_and_resized_with_their_image(tmp_path: Path) -> None:
    """Two boxes tiling the white quadrant of a 100 x 50 image: at 32 px it lands on rows 16-23, columns 16-31."""
    one_image(tmp_path, quadrant())
    (tmp_path / "boxes.csv").write_text("path,top,left,bottom,right\nthings/0.png,25,50,50,75\nthings/0.png,25,75,50,100\n")
    data = folder(tmp_path, 32, f"data.boxes={tmp_path / 'boxes.csv'}")
    expected = torch.zeros(32, 32, dtype=torch.bool)
    expected[16:24, 16:32] = True
    assert torch.equal(data.masks[0], expected) and torch.equal(data.masks[0], data.images[0, 0] > 0.5)


def test_a_box_and_a_mask_png_are_united(tmp_path: Path) -> None:
    path = one_image(tmp_path, np.zeros((8, 8, 3), dtype=np.uint8))
    png = np.zeros((8, 8), dtype=np.uint8)
    png[0, 0] = 1
    Image.fromarray(png).save(path.with_suffix(".mask.png"))
    (tmp_path / "boxes.csv").write_text(f"path,top,left,bottom,right\n{path},7,7,8,8\n")  # an absolute path works too
    mask = folder(tmp_path, 8, f"data.boxes={tmp_path / 'boxes.csv'}").masks[0]
    assert mask.nonzero().tolist() == [[0, 0], [7, 7]]


def test_images_without_masks_get_empty_ones_and_one_warning(image_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    Image.new("L", (48, 40), 255).save(image_root / "dark" / "0.mask.png")
    with caplog.at_level(logging.WARNING, logger="experiments.data.image_folder"):
        data = folder(image_root, 32, "data.n=4")
    assert len(data.images) == 4 and data.masks.shape == (4, 32, 32)
    assert data.masks.flatten(1).any(1).sum() == 1 and data.masks.sum() == 32 * 27  # 48 x 40 -> 32 x 27 under pad
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and " 3 of 4 images have no mask " in warnings[0]


def test_a_folder_without_masks_or_boxes_has_none(image_root: Path) -> None:
    assert folder(image_root, 32).masks is None


def box_error(root: Path, csv: str, kind: type[Exception] = ValueError) -> str:
    """The one-line error data.boxes with content `csv` gives."""
    (root / "boxes.csv").write_text(csv)
    with pytest.raises(kind) as err:
        folder(root, 32, f"data.boxes={root / 'boxes.csv'}")
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_boxes_are_one_line_each(tmp_path: Path) -> None:
    one_image(tmp_path, np.zeros((10, 20, 3), dtype=np.uint8))
    csv = str(tmp_path / "boxes.csv")
    assert box_error(tmp_path, "file,y0,x0\n") == (f"data.boxes={csv!r} needs the columns path,top,left,bottom,right "
                                                   f"(header found: file,y0,x0)")
    assert box_error(tmp_path, "path,top,left,bottom,right\nthings/1.png,0,0,1,1\n") == (
        f"data.boxes={csv!r} line 2: 'things/1.png' is no image under data.root={str(tmp_path)!r} "
        f"(paths are relative to data.root, e.g. 'things/0.png')")
    assert box_error(tmp_path, "path,top,left,bottom,right\nthings/0.png,0,0,1.5,1\n").startswith(
        f"data.boxes={csv!r} line 2: top,left,bottom,right must be integers (pixels), got 0,0,1.5,1")
    assert box_error(tmp_path, "path,top,left,bottom,right\nthings/0.png,0,0,1,1\nthings/0.png,5,0,11,3\n").startswith(
        f"data.boxes={csv!r} line 3: box top,left,bottom,right=5,0,11,3 is not inside its 20x10 image")
    (tmp_path / "boxes.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"^data.boxes=.*boxes.csv' does not exist \(a CSV with the header"):
        folder(tmp_path, 32, f"data.boxes={tmp_path / 'boxes.csv'}")


def test_boxes_from_json_equal_boxes_from_csv(tmp_path: Path) -> None:
    one_image(tmp_path, quadrant())
    (tmp_path / "boxes.csv").write_text("path,top,left,bottom,right\nthings/0.png,25,50,50,75\nthings/0.png,25,75,50,100\n")
    boxes = [{"path": "things/0.png", "top": 25, "left": 50, "bottom": 50, "right": 75},
             {"path": "things/0.png", "top": 25.0, "left": 75, "bottom": 50, "right": 100}]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    from_csv, from_json = (folder(tmp_path, 32, f"data.boxes={tmp_path / name}").masks for name in ("boxes.csv", "boxes.json"))
    assert from_json[0].any() and torch.equal(from_csv, from_json)
    js = str(tmp_path / "boxes.json")
    for text, message in [("{", "is not valid JSON"), ('{"path": 1}', "must hold a JSON list of objects with the keys"),
                          ('[{"path": "things/0.png", "top": 0}]', "must hold a JSON list of objects with the keys")]:
        (tmp_path / "boxes.json").write_text(text)
        with pytest.raises(ValueError, match=f"^data.boxes={re.escape(repr(js))} {message}"):
            folder(tmp_path, 32, f"data.boxes={js}")
    (tmp_path / "boxes.json").write_text(json.dumps([{**boxes[0], "bottom": 1.5}]))
    with pytest.raises(ValueError, match=r"entry 0: top,left,bottom,right must be integers \(pixels\), got 25,50,1.5,75$"):
        folder(tmp_path, 32, f"data.boxes={js}")


def test_a_mask_of_another_size_is_one_line(tmp_path: Path) -> None:
    path = one_image(tmp_path, np.zeros((10, 20, 3), dtype=np.uint8))
    Image.new("L", (10, 20)).save(path.with_suffix(".mask.png"))
    with pytest.raises(ValueError, match=r"^mask .*0.mask.png is 10x20 px but its image is 20x10 \(width x height\)"):
        folder(tmp_path, 32)
