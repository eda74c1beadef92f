"""The scikit-image photos: offline, centre crops then seeded random crops, at any (h, w), in [0, 1], unlabelled."""
import logging

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from experiments.data.photos import PHOTOS, check_load_photos, load_photos


def distinct(images: torch.Tensor) -> int:
    """How many different images there are."""
    return len(torch.unique(images.flatten(1), dim=0))


@pytest.fixture(scope="module")
def default() -> torch.Tensor:
    """The default set at 48 px."""
    return load_photos(48).images


def test_load_photos_shapes_and_range():
    data = load_photos(48, n=20)
    assert data.images.shape == (20, 3, 48, 48) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.labels.shape == (20,) and data.labels.dtype == torch.int64 and (data.labels == -1).all()
    assert data.masks is None and data.skipped == ()  # every photo in PHOTOS loads offline in this install
    assert data.images.flatten(1).std(1).min() > 0.02  # real pictures, not blank
    assert data.images.mean((2, 3)).std(1).max() > 0.01  # colour, not grey copied to RGB


def test_default_is_hundreds_of_distinct_images(default: torch.Tensor):
    assert len(default) >= 100 > len(PHOTOS) and distinct(default) == len(default)


def test_n_is_respected_and_extends_the_smaller_set():
    small, large = load_photos(32, n=len(PHOTOS) + 5).images, load_photos(32, n=len(PHOTOS) + 40).images
    assert small.shape[0] == len(PHOTOS) + 5 and large.shape[0] == len(PHOTOS) + 40
    assert torch.equal(large[: len(small)], small)  # more images: the same ones first


def test_fewer_than_the_photos_are_the_first_centre_crops():
    few, every = load_photos(32, n=3).images, load_photos(32, n=len(PHOTOS)).images
    assert few.shape == (3, 3, 32, 32) and torch.equal(few, every[:3])


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = (load_photos(32, n=40, seed=s).images for s in (5, 5, 6))
    assert torch.equal(a, b)
    assert torch.equal(a[: len(PHOTOS)], c[: len(PHOTOS)])  # the centre crops do not depend on the seed
    assert distinct(torch.cat([a, c[len(PHOTOS) :]])) == len(a) + len(c) - len(PHOTOS)  # no random crop is shared


@pytest.mark.parametrize("size", [(40, 72), (72, 40)])
@pytest.mark.parametrize("channels", [1, 3])
def test_any_size_and_channel_count(size: tuple[int, int], channels: int):
    images = load_photos(size, channels=channels, n=60).images
    assert images.shape == (60, channels, *size) and images.min() >= 0 and images.max() <= 1
    assert distinct(images) == 60


def test_grey_photos_are_copied_to_rgb_and_rgb_ones_kept():
    images = load_photos(32, n=len(PHOTOS)).images
    grey = (images.amax(1) - images.amin(1)).flatten(1).amax(1) < 1e-6
    assert (~grey[: PHOTOS.index("camera")]).all() and grey[PHOTOS.index("camera") :].all()


def resized(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """An [H, W, 3] uint8 array resized (PIL, anti-aliased bilinear) to `size` (h, w), as [3, h, w] in [0, 1]."""
    pil = Image.fromarray(np.ascontiguousarray(image)).resize(size[::-1], Image.Resampling.BILINEAR)
    return torch.tensor(np.asarray(pil), dtype=torch.float32).permute(2, 0, 1) / 255


def test_photos_are_centre_crops():
    """coffee (400 x 600, second in PHOTOS) becomes its middle 400 x 400 square, resized."""
    coffee, image = skimage.data.coffee(), load_photos(32, n=2).images[1]
    assert torch.allclose(image, resized(coffee[:, 100:500], (32, 32)), atol=1e-6)
    assert (image - resized(coffee[:, :400], (32, 32))).abs().mean() > 0.02


def test_random_crops_look_like_their_photos():
    """A random crop of a photo resembles that photo's centre crop more than most other photos' do."""
    images = load_photos(32, n=4 * len(PHOTOS), seed=3).images
    centres, crops = images[: len(PHOTOS)], images[len(PHOTOS) :]
    nearest = torch.cdist(crops.mean((2, 3)), centres.mean((2, 3))).argsort(1)[:, :4]  # the 4 closest in mean colour
    source = torch.arange(len(crops)) % len(PHOTOS)  # the photos are taken in turn
    assert (nearest == source[:, None]).any(1).float().mean() > 0.5


def test_the_count_is_logged(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="vizbench"):
        load_photos((24, 40), n=len(PHOTOS) + 3, seed=7)
    assert f"data skimage: {len(PHOTOS) + 3} images at 24x40 ({len(PHOTOS)} photos + 3 random crops, seed 7)" \
        in caplog.messages


def test_a_photo_that_fails_to_load_is_skipped(monkeypatch: pytest.MonkeyPatch):
    def broken() -> None:
        raise ModuleNotFoundError("needs pooch")

    monkeypatch.setattr(skimage.data, "coffee", broken)
    data = load_photos(32, n=len(PHOTOS))
    assert data.skipped == ("coffee",) and len(data.images) == len(PHOTOS) and distinct(data.images) == len(PHOTOS)


@pytest.mark.parametrize("n", [0, -3])
def test_bad_n_is_one_line_naming_it(n: int):
    with pytest.raises(ValueError) as err:
        load_photos(32, n=n)
    assert str(err.value) == f"data.n={n} must be >= 1"
    with pytest.raises(ValueError, match=f"^data.n={n} must be >= 1$"):
        check_load_photos(n)


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        load_photos(2)
