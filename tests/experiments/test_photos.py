"""The scikit-image photos: offline, square, in [0, 1], unlabelled."""
import pytest
import torch

from experiments.data.photos import PHOTOS, load_photos


def test_load_photos_shapes_and_range():
    data = load_photos(48)
    n = data.images.shape[0]
    assert 4 <= n <= len(PHOTOS)  # astronaut, coffee, chelsea, rocket ship with every scikit-image
    assert data.images.shape == (n, 3, 48, 48) and data.images.dtype == torch.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.labels.dtype == torch.int64 and (data.labels == -1).all() and data.masks is None
    assert data.images.flatten(1).std(1).min() > 0.05  # real pictures, not blank
    assert data.images.mean((2, 3)).std(1).max() > 0.01  # colour, not grey copied to RGB


def test_photos_are_centre_crops():
    """coffee (400 x 600, second in PHOTOS) becomes its middle 400 x 400 square, resized."""
    import skimage.data
    from skimage.transform import resize

    middle = skimage.data.coffee()[:, 100:500]
    expected = torch.tensor(resize(middle, (32, 32), anti_aliasing=True), dtype=torch.float32).permute(2, 0, 1)
    assert torch.allclose(load_photos(32).images[1], expected, atol=1e-5)
    shifted = torch.tensor(resize(skimage.data.coffee()[:, :400], (32, 32), anti_aliasing=True), dtype=torch.float32)
    assert not torch.allclose(load_photos(32).images[1], shifted.permute(2, 0, 1), atol=1e-2)


def test_bad_size():
    with pytest.raises(ValueError, match="size"):
        load_photos(2)
