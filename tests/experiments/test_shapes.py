"""Procedural shapes: deterministic, balanced, in [0, 1], with masks that cover the objects."""
import math

import pytest
import torch

from experiments.data.shapes import CLASSES, disc, make_shapes


@pytest.fixture(scope="module")
def data():
    return make_shapes(270, seed=0)


def test_shapes_and_types(data):
    assert data.images.shape == (270, 3, 64, 64) and data.images.dtype == torch.float32
    assert data.masks.shape == (270, 64, 64) and data.masks.dtype == torch.bool
    assert data.labels.dtype == torch.int64 and data.class_names == CLASSES
    assert data.images.min() >= 0 and data.images.max() <= 1


def test_deterministic_per_seed(data):
    again = make_shapes(270, seed=0)
    assert torch.equal(again.images, data.images) and torch.equal(again.labels, data.labels)
    assert torch.equal(again.masks, data.masks)
    other = make_shapes(270, seed=1)
    assert not torch.equal(other.images, data.images)


def test_labels_balanced(data):
    counts = torch.bincount(data.labels, minlength=len(CLASSES))
    assert counts.min() == counts.max() == 270 // len(CLASSES)
    uneven = torch.bincount(make_shapes(100, seed=3).labels, minlength=len(CLASSES))
    assert uneven.max() - uneven.min() <= 1


def test_masks_nonempty_and_inside(data):
    m = data.masks
    assert m.flatten(1).sum(1).min() >= 20
    border = m[:, 0].any(1) | m[:, -1].any(1) | m[:, :, 0].any(1) | m[:, :, -1].any(1)
    assert not border.any()  # every object lies whole inside the image


def test_masked_pixels_differ_from_background(data):
    """Inside the mask pixels are far from the background's median colour; outside they are close to it."""
    for image, mask in zip(data.images, data.masks):
        background = image[:, ~mask].median(dim=1).values.view(3, 1)
        inside = (image[:, mask] - background).abs().sum(0).mean()
        outside = (image[:, ~mask] - background).abs().sum(0).mean()
        assert inside > 3 * outside, (inside, outside)


def test_disc_mask_area_is_pi_r_squared():
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    r = torch.tensor([6.0, 9.5, 14.0]).view(3, 1, 1)
    area = disc(yy, xx, torch.full_like(r, 31.3), torch.full_like(r, 30.8), r).flatten(1).sum(1).float()
    assert torch.allclose(area, math.pi * r.flatten() ** 2, rtol=0.05)


def test_dataset_discs_are_round(data):
    """Each disc mask is square-boxed and its area is pi r^2 for a radius r the box width allows."""
    for mask in data.masks[data.labels == CLASSES.index("disc")]:
        rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert abs(h - w) <= 1
        side = (h + w).item() / 2
        assert math.pi * ((side - 2) / 2) ** 2 <= mask.sum() <= math.pi * ((side + 1) / 2) ** 2


def test_classes_look_different(data):
    """Sanity on the drawing: horizontal bars are wide and flat, vertical bars tall, red_green is red on the left."""
    for label, check in [("bar_h", lambda h, w: w > 4 * h), ("bar_v", lambda h, w: h > 4 * w)]:
        for mask in data.masks[data.labels == CLASSES.index(label)]:
            h, w = mask.any(1).sum(), mask.any(0).sum()
            assert check(h, w), (label, h, w)
    for image, mask in zip(data.images[data.labels == CLASSES.index("red_green")], data.masks[data.labels == CLASSES.index("red_green")]):
        cols = mask.any(0).nonzero().flatten()
        mid = (cols.min() + cols.max()) // 2
        redness = image[0] - image[1]
        assert redness[:, :mid][mask[:, :mid]].mean() > 0.3 and redness[:, mid:][mask[:, mid:]].mean() < -0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        make_shapes(10, size=16)
    with pytest.raises(ValueError, match="n="):
        make_shapes(0)
