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


def test_color_ratio_counts_the_mean_colour():
    g = _gabor(7, 0.0, 0.2, 0.3, 0.0)
    ones = np.ones_like(g)
    grey = np.stack([g, g, g])
    blob = np.stack([ones, -ones, 0 * ones])  # uniform in space, channels differ: before, NaN (all removed)
    opponent = np.stack([g, -g, 0 * g])
    offset = grey + 0.7  # grey pattern plus one DC offset in every channel
    tinted = np.stack([0.5 * ones, 0.4 * ones, 0.3 * ones])  # mostly grey blob, slightly warm
    assert rw.color_ratio(np.stack([grey, blob, opponent, offset, tinted])) == pytest.approx([0, 1, 1, 0, 0.02 / 0.5])
    # a grey Gabor on a coloured DC: (0.3, -0.3, 0) per pixel against the Gabor's energy
    on_colour = grey + np.array([0.3, -0.3, 0.0])[:, None, None]
    assert rw.color_ratio(on_colour)[0] == pytest.approx(0.18 * g.size / (on_colour**2).sum())
    assert rw.color_fraction(np.stack([grey, blob, opponent, offset])) == 0.5
    assert np.isnan(rw.color_ratio(np.zeros((3, 7, 7)))[0])
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


def test_one_channel_filters_have_no_colour_but_a_gabor_fit():
    g = _gabor(7, theta=0.3, freq=0.23, sigma=0.25, phase=1.0)
    grey = np.stack([g[None], -2 * g[None]])  # [2, 1, 7, 7]
    assert rw.color_undefined(grey) == "1-channel filters have no colour (colour is a difference between input channels)"
    assert np.isnan(rw.color_ratio(grey)).all() and np.isnan(rw.color_fraction(grey))
    assert (rw.gabor_fit(grey) > 0.95).all()  # the filter itself, whatever its sign and scale
    assert rw.gabor_fit(grey)[0] == pytest.approx(rw.gabor_fit(np.stack([g, g, g])[None])[0])
    noise = np.random.default_rng(1).standard_normal((32, 1, 7, 7))
    assert rw.gabor_fit(noise).mean() < 0.6 and rw.filter_smoothness(noise).shape == (32,)


@pytest.mark.parametrize("channels", [2, 4])
def test_colour_is_the_difference_between_any_channels(channels):
    g = _gabor(7, 0.0, 0.2, 0.3, 0.0)
    same = np.stack([g] * channels)  # one pattern in every band: no colour
    band = np.stack([g] + [0 * g] * (channels - 1))  # only in band 0
    assert rw.color_undefined(same) is None
    assert rw.color_ratio(np.stack([same, band])) == pytest.approx([0, (channels - 1) / channels])
    noise = np.random.default_rng(0).standard_normal((64, channels, 7, 7))
    assert rw.color_ratio(noise).mean() == pytest.approx((channels - 1) / channels, abs=0.05)
    assert rw.gabor_fit(np.stack([g, -0.5 * g, *[0.2 * g] * (channels - 2)])[None])[0] > 0.95
