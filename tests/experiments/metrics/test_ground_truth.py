"""Agreement with a planted preferred stimulus and with an object mask."""
import numpy as np
import pytest
import torch

from experiments.metrics import ground_truth as gt


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
    assert gt.gt_corr(truth, truth) == pytest.approx(1.0)
    assert gt.gt_ssim(truth, truth) == pytest.approx(1.0)
    assert gt.gt_corr(1 - truth, truth) == pytest.approx(-1.0)


def test_gt_with_object_mask_for_maps():
    mask = np.zeros((20, 20), bool)
    mask[5:12, 8:15] = True
    assert gt.gt_corr(mask * 2.0 + 0.1, mask) == pytest.approx(1.0)
    assert gt.gt_corr(torch.rand(1, 20, 20), mask) < 0.3
    assert gt.gt_corr(np.stack([mask, mask, mask]).astype(float), mask) == pytest.approx(1.0)


def test_gt_rejects_a_result_smaller_than_the_truth():
    with pytest.raises(ValueError, match="smaller than the truth"):
        gt.gt_corr(torch.rand(3, 5, 5), _planted())
