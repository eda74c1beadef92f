"""Channel counts and input sizes of the data sources: grey (ITU-R 601-2 luma) or RGB, square or (h, w)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.data import build_data
from experiments.data.channels import luminance
from experiments.data.photos import load_photos
from experiments.data.shapes import make_shapes
from experiments.data.spec import DataSpec
from methods.base import pair
from tests.conftest import make_cfg


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An ImageFolder tree of three coloured noise images of different sizes."""
    rng = np.random.default_rng(0)
    (tmp_path / "things").mkdir()
    for i, (w, h) in enumerate([(48, 40), (90, 30), (30, 70)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "things" / f"{i}.png")
    return tmp_path


def source(name: str, root: Path, size: int | tuple[int, int], channels: int) -> DataSpec:
    """Data source `name` (shapes, skimage or image_folder) built through its config at `size` with `channels`."""
    cfg = make_cfg(f"data={name}", "data.n=12", *([f"data.root={root}"] if name == "image_folder" else [])).data
    return build_data(cfg, size, channels)


def test_luminance_is_itu_r_601_as_pil_l() -> None:
    assert torch.allclose(luminance(torch.eye(3).view(3, 3, 1, 1)).flatten(), torch.tensor([0.299, 0.587, 0.114]))
    assert torch.allclose(luminance(torch.full((3, 2, 2), 0.25)), torch.full((1, 2, 2), 0.25))
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    ours = luminance(torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1))[0].numpy()
    assert np.abs(ours - pil).max() <= 0.5 + 1e-3  # PIL rounds to the nearest integer


@pytest.mark.parametrize("name", ["shapes", "skimage", "image_folder"])
@pytest.mark.parametrize("size", [32, (32, 48), (56, 36)])
def test_one_channel_is_the_luminance_of_the_rgb_version(name: str, size: int | tuple[int, int],
                                                          image_root: Path) -> None:
    rgb, grey = source(name, image_root, size, 3), source(name, image_root, size, 1)
    assert rgb.images.shape[1:] == (3, *pair(size)) and grey.images.shape == (len(rgb.images), 1, *pair(size))
    assert torch.allclose(grey.images, luminance(rgb.images), atol=1e-6)
    assert torch.equal(grey.labels, rgb.labels)
    assert (grey.masks is None) == (rgb.masks is None) and (rgb.masks is None or torch.equal(grey.masks, rgb.masks))
    assert (rgb.images.amax(1) - rgb.images.amin(1)).max() > 0.1  # the RGB version has colour: grey is not a copy


@pytest.mark.parametrize("name", ["shapes", "skimage", "image_folder"])
def test_other_channel_counts_are_one_line_pointing_at_arrays(name: str, image_root: Path) -> None:
    with pytest.raises(ValueError) as err:
        source(name, image_root, 32, 4)
    assert str(err.value) == (f"data={name} gives 1 (grey) or 3 (RGB) channels, not 4; for 4-channel images use "
                              f"data=arrays data.path=<.npy/.npz/.pt file or folder>")


def three_channels(size: int, n: int) -> DataSpec:
    """A data source that knows no channels."""
    return DataSpec(name="rgb_only", images=torch.rand(n, 3, size, size), labels=torch.zeros(n, dtype=torch.long),
                    masks=None, class_names=())


def test_a_source_without_channels_giving_the_wrong_count_is_one_line() -> None:
    cfg = make_cfg("data=shapes", f"data._target_={__name__}.three_channels", "data.n=2").data
    assert build_data(cfg, 16).images.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"^data=rgb_only gave 3-channel images but the model takes 1 \(.*three_channels "
                                         r"has no channels parameter\)$"):
        build_data(cfg, 16, 1)


@pytest.mark.parametrize("size", [(40, 96), (96, 40)])
def test_non_square_shapes_spread_over_the_image_and_stay_inside(size: tuple[int, int]) -> None:
    data = make_shapes(n=90, size=size, seed=2)
    h, w = size
    assert data.images.shape == (90, 3, h, w) and data.masks.shape == (90, h, w)
    assert data.masks.flatten(1).any(1).all()  # every image has its object
    border = data.masks[:, [0, -1], :].any() or data.masks[:, :, [0, -1]].any()
    assert not border  # kept 2 px inside
    rows, cols = data.masks.any(2).float().mean(0), data.masks.any(1).float().mean(0)
    long_axis = cols if w > h else rows
    assert long_axis[: len(long_axis) // 4].sum() > 0 and long_axis[-len(long_axis) // 4 :].sum() > 0  # both ends used


def test_square_shapes_are_unchanged_by_the_pair_form() -> None:
    a, b = make_shapes(n=18, size=48, seed=4), make_shapes(n=18, size=(48, 48), seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)


def test_shapes_too_small_names_both_sides() -> None:
    with pytest.raises(ValueError, match=r"^data=shapes draws images of >= 32 px; the model's input is 28x64 px "
                                         r"\(model.input_size=\[28, 64\]\)$"):
        make_shapes(n=4, size=(28, 64))


def test_photos_are_centre_crops_at_the_models_aspect_ratio() -> None:
    """coffee (400 x 600, second in PHOTOS) at (32, 48) is the whole photo; at (48, 32) its middle 400 x 267."""
    import skimage.data

    def resized(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Resized as data=skimage resizes (PIL, anti-aliased bilinear), [3, h, w] in [0, 1]."""
        pil = Image.fromarray(np.ascontiguousarray(image)).resize(size[::-1], Image.Resampling.BILINEAR)
        return torch.tensor(np.asarray(pil), dtype=torch.float32).permute(2, 0, 1) / 255

    coffee = skimage.data.coffee()
    assert torch.allclose(load_photos((32, 48), n=2).images[1], resized(coffee, (32, 48)), atol=1e-6)
    assert torch.allclose(load_photos((48, 32), n=2).images[1], resized(coffee[:, 166:433], (48, 32)), atol=1e-6)
