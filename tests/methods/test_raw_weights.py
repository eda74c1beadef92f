"""Raw weights: exact filters, three normalizations, a clear error for deeper layers."""
from __future__ import annotations

import pytest
import torch
from torchvision.models import googlenet

from methods.base import Target
from methods.raw_weights import first_conv_name, normalize_filters, visualize
from tests.conftest import make_tiny_cnn


def test_per_filter_reproduces_filters_up_to_affine_map() -> None:
    model = make_tiny_cnn()
    vis = visualize(model, Target("conv1", (0, 3)))
    for img, w in zip(vis.images, model.conv1.weight[[0, 3]].detach()):
        assert torch.allclose(img * (w.max() - w.min()) + w.min(), w, atol=1e-6)


def test_symmetric_keeps_zero_grey_and_shared_uses_one_scale() -> None:
    w = torch.tensor([[[[-2.0, 0.0, 1.0]]], [[[0.0, 0.5, 0.0]]]])
    sym = normalize_filters(w, "symmetric")
    assert sym[0, 0, 0].tolist() == [0.0, 0.5, 0.75] and sym[1, 0, 0].tolist() == [0.5, 1.0, 0.5]
    shared = normalize_filters(w, "shared")
    assert shared[1, 0, 0].tolist() == [0.5, 0.625, 0.5]


def test_bad_normalization_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="per_filter, symmetric, shared"):
        normalize_filters(torch.zeros(1, 3, 3, 3), "minmax")


def test_deeper_layer_cannot_be_drawn() -> None:
    with pytest.raises(ValueError, match="feature maps, not colours.*gradient_ascent or top_patches"):
        visualize(make_tiny_cnn(), Target("conv2", (0,)))


def test_first_conv_found_without_conv1_name() -> None:
    model = googlenet(weights=None, aux_logits=False, init_weights=False)
    assert first_conv_name(model) == "conv1.conv"
    vis = visualize(model, Target("", (0, 1)))
    assert vis.images.shape == (2, 3, 7, 7) and vis.layer == "conv1.conv"
