"""Top-patch metrics on hand-made labels and boxes, and topk_precision on a constructed model and data set."""
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from experiments.adapters import RunOptions, call_method
from experiments.data.spec import DataSpec
from experiments.metrics import top_patches as tp
from experiments.scoring import Scoring
from experiments.scoring.patches import topk_precision
from experiments.zoo.spec import ModelSpec
from methods.base import Target


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


def test_topk_precision_takes_the_class_from_the_statistic_that_ranks_the_patches():
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))  # the unit reads the red channel
    spec = ModelSpec("red", nn.Sequential(OrderedDict(conv=conv)).eval(), None, 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    g = torch.Generator().manual_seed(0)
    spots = torch.zeros(8, 3, 16, 16)  # class 0: one bright red pixel on black: high spatial max, low mean
    for i in range(8):
        spots[i, 0, *torch.randint(0, 16, (2,), generator=g)] = 0.9 + 0.1 * torch.rand(1, generator=g)
    washes = 0.4 + 0.1 * torch.rand(8, 3, 1, 1, generator=g).expand(8, 3, 16, 16)  # class 1: uniform: max = mean
    data = DataSpec("spots", torch.cat([spots, washes]), torch.tensor([0] * 8 + [1] * 8), None, ("spot", "wash"))
    target = Target("conv", (0,))
    result = call_method("top_patches", spec, data, target, {"k": 4}, RunOptions())
    assert set(data.labels[result.indices[0]].tolist()) == {0}  # ranked by the spatial max: all spots
    s = Scoring.for_method("top_patches", spec, data, target, {"k": 4})
    assert tp.preferred_class(s.natural[:, 0], data.labels) == 1  # the spatial mean prefers the washes
    rows = topk_precision(s, result)
    assert [r["value"] for r in rows] == [1.0]  # before: 0.0
    assert "data_peaks" in s._memo  # found once for every unit
