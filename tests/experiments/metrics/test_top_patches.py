"""Top-patch metrics on hand-made labels and boxes."""
import math

import numpy as np
import pytest
import torch

from experiments.metrics import top_patches as tp


def test_topk_mean_activation_per_unit():
    assert tp.topk_mean_activation(torch.tensor([[1.0, 3.0], [2.0, 2.0]])) == pytest.approx([2.0, 2.0])
    assert tp.topk_mean_activation([4.0, 2.0]) == pytest.approx([3.0])


def test_preferred_class_precision_and_entropy():
    labels = np.array([0, 0, 1, 1, 2, 2, -1])
    acts = np.array([1.0, 1.0, 5.0, 3.0, 0.0, 9.0, 100.0])  # class means 1, 4, 4.5; the unknown label is ignored
    assert tp.preferred_class(acts, labels) == 2
    assert tp.preferred_class(np.where(labels == 2, np.nan, acts), labels) == 1  # a NaN class mean ranks last
    assert tp.topk_precision([2, 2, 1, 2], 2) == 0.75
    assert tp.label_entropy([3, 3, 3]) == 0.0
    assert tp.label_entropy([0, 1, 2, 3, -1]) == pytest.approx(math.log(4))
    assert np.isnan(tp.label_entropy([-1, -1]))
    with pytest.raises(ValueError, match="no known labels"):
        tp.preferred_class([1.0], [-1])


def test_rf_coverage_from_unclipped_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [-5, 0, 5, 10], [25, 25, 35, 35]])
    assert tp.rf_coverage(boxes[:1], (32, 32)) == 1.0
    assert tp.rf_coverage(boxes, (32, 32)) == pytest.approx((1.0 + 0.5 + 0.49) / 3)
    with pytest.raises(ValueError, match="x1 > x0"):
        tp.rf_coverage([[5, 5, 5, 9]], (32, 32))
