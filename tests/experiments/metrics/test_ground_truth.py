"""Agreement with a planted preferred stimulus and with an object mask."""
import math

import numpy as np
import pytest
import torch

from experiments.metrics import ground_truth as gt
from experiments.metrics._common import ssim


def _planted(seed: int = 0) -> torch.Tensor:
    """A planted unit's preferred stimulus [3, 9, 9]: a coloured oriented edge."""
    y, x = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    edge = torch.sigmoid(x - y)
    return torch.stack([edge, 1 - edge, 0.5 * edge])


def _viz_with(truth: torch.Tensor, noise: float, seed: int = 0) -> torch.Tensor:
    """A 33x33 visualization with the truth at its centre plus noise."""
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, 33, 33, generator=g)
    img[:, 12:21, 12:21] = truth
    return (img + noise * torch.randn(3, 33, 33, generator=g)).clamp(0, 1)


def test_gt_separates_recovered_stimulus_from_noise():
    truth = _planted()
    good, bad = _viz_with(truth, 0.05), torch.rand(3, 33, 33, generator=torch.Generator().manual_seed(1))
    assert gt.gt_corr(good, truth) > 0.9
    assert abs(gt.gt_corr(bad, truth)) < 0.3
    assert gt.gt_ssim(good, truth) > 0.7
    assert gt.gt_ssim(bad, truth) < 0.3
    assert gt.gt_ssim(truth, truth) == pytest.approx(1.0)
    off_centre = torch.rand(3, 33, 33, generator=torch.Generator().manual_seed(2))
    off_centre[:, 2:11, 2:11] = truth  # the truth is compared at the centre only
    assert abs(gt.gt_corr(off_centre, truth)) < 0.3


def test_ssim_rescaling_range():
    """gt_ssim rescales to [0, 1] like the sanity metrics, so an inverted recovery scores below 0 ([-1, 1] would not)."""
    truth = _planted()
    inverted, truth_c = gt.match(1 - _viz_with(truth, 0.05), truth)
    assert gt.gt_ssim(1 - _viz_with(truth, 0.05), truth) == pytest.approx(ssim(inverted, truth_c))
    assert ssim(inverted, truth_c, lo=0.0) < -0.5  # measured -0.60
    assert ssim(inverted, truth_c, lo=-1.0) > 0.5  # measured +0.72: the luminance term's sign flips too


def test_gt_with_object_mask_for_maps():
    mask = np.zeros((20, 20), bool)
    mask[5:12, 8:15] = True
    wider = mask.copy()
    wider[12:14, 8:15] = True  # 14 more pixels: Pearson of two masks is their phi coefficient
    n11, n10, n01, n00 = 49, 14, 0, 400 - 63
    phi = (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    assert gt.gt_corr(wider * 2.0, mask) == pytest.approx(phi)
    assert gt.gt_corr(torch.rand(1, 20, 20), mask) < 0.3
    opponent = np.stack([mask, ~mask, np.zeros_like(mask)]).astype(float)  # channel mean 1/3 everywhere
    assert math.isnan(gt.gt_corr(opponent, mask))
    assert gt.gt_corr(np.stack([wider, mask, mask]).astype(float), mask) > phi  # the channel mean is compared


def test_gt_rejects_a_result_smaller_than_the_truth():
    with pytest.raises(ValueError, match="smaller than the truth"):
        gt.gt_corr(torch.rand(3, 5, 5), _planted())
