"""Raw-filter metrics on Gabor, gray, coloured and noise filters."""
import numpy as np
import pytest
from skimage.filters import gabor_kernel

from experiments.metrics import raw_weights as rw


def _gabor(side: int, theta: float, freq: float, sigma: float, phase: float) -> np.ndarray:
    """An off-grid Gabor pattern [side, side] (parameters between the bank's grid points)."""
    k = gabor_kernel(freq, theta=theta, sigma_x=sigma * side, sigma_y=sigma * side, offset=phase, n_stds=5).real
    c = k.shape[0] // 2
    return k[c - side // 2 : c + side // 2 + 1, c - side // 2 : c + side // 2 + 1]


@pytest.mark.parametrize("side", [7, 11])
def test_gabor_fit_high_for_gabor_low_for_noise(side):
    g = _gabor(side, theta=0.3, freq=0.23, sigma=0.25, phase=1.0)
    opponent = np.stack([g, 0.5 * g, -0.3 * g])[None]  # a colour-opponent Gabor
    assert rw.gabor_fit(opponent)[0] > 0.95
    noise = np.random.default_rng(0).standard_normal((32, 3, side, side))
    assert rw.gabor_fit(noise).mean() < 0.5
    assert rw.gabor_fit(noise).mean() < rw.gabor_fit(opponent)[0] - 0.45


def test_color_ratio_and_fraction():
    g = _gabor(7, 0.0, 0.2, 0.3, 0.0)
    gray, colour = np.stack([g, g, g]), np.stack([g, -g, 0 * g])
    assert rw.color_ratio(np.stack([gray, colour])) == pytest.approx([0.0, 1.0])
    assert rw.color_fraction(np.stack([gray, gray, colour, 1.1 * gray])) == 0.25
    noise = np.random.default_rng(0).standard_normal((64, 3, 7, 7))
    assert rw.color_ratio(noise).mean() == pytest.approx(2 / 3, abs=0.05)


def test_filter_smoothness_smooth_below_noise():
    g = _gabor(11, 0.5, 0.1, 0.4, 0.0)
    smooth = np.stack([g, g, g])
    noise = np.random.default_rng(0).random((3, 11, 11))
    tv = rw.filter_smoothness(np.stack([smooth, noise, np.ones((3, 11, 11))]))
    assert tv[0] < tv[1] / 2 and tv[2] == 0.0
    with pytest.raises(ValueError, match=r"\[F, C, h, w\]"):
        rw.filter_smoothness(np.zeros((7, 7)))
