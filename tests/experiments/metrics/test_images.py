"""Image statistics on gratings, white noise and noise with a known power-law spectrum."""
import numpy as np
import pytest
import torch

from experiments.metrics import images


def _power_law_noise(n: int, exponent: float, seed: int) -> np.ndarray:
    """Noise whose power falls as 1/f^exponent (amplitude 1/f^(exponent/2))."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n)
    r = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    r[0, 0] = 1.0
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / r ** (exponent / 2)
    return np.fft.ifft2(spec).real


def _grating(n: int = 64, cycles: int = 3) -> np.ndarray:
    return np.sin(2 * np.pi * cycles * np.arange(n) / n)[None, :].repeat(n, 0)


def test_hf_energy_low_grating_near_zero_white_noise_near_three_quarters():
    assert images.hf_energy(_grating()) < 1e-6
    noise = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert images.hf_energy(noise) == pytest.approx(0.75, abs=0.02)
    assert images.hf_energy(_grating(64, 20)) > 0.99  # 20/64 cycles/pixel > 0.25
    assert np.isnan(images.hf_energy(np.ones((8, 8))))


@pytest.mark.parametrize("exponent", [2.0, 3.0])
def test_spectral_slope_recovers_known_exponent(exponent):
    slopes = [images.spectral_slope(_power_law_noise(128, exponent, s)) for s in range(3)]
    assert np.mean(slopes) == pytest.approx(-exponent, abs=0.2)


def test_spectral_slope_white_noise_flat_and_photos_plausible():
    assert images.spectral_slope(np.random.default_rng(0).standard_normal((3, 128, 128))) == pytest.approx(0.0, abs=0.1)
    ref = images.photo_slopes()
    assert set(ref) == set(images.PHOTOS)
    assert all(-3.5 < s < -1.5 for s in ref.values()), ref
    with pytest.raises(ValueError, match="too small"):
        images.spectral_slope(np.zeros((4, 4)))


def test_tv_constant_zero_checkerboard_two():
    assert images.tv(np.full((3, 16, 16), 0.3)) == 0.0
    board = (np.indices((16, 16)).sum(0) % 2).astype(float)
    assert images.tv(board) == pytest.approx(2 * 16 * 15 / 256)
    assert images.tv(_grating()) < images.tv(board)


def test_diversity_identical_zero_unrelated_near_one():
    x = torch.rand(1, 3, 16, 16)
    assert images.diversity(x.repeat(4, 1, 1, 1)) == pytest.approx(0.0, abs=1e-12)
    assert images.diversity(torch.rand(6, 3, 32, 32)) == pytest.approx(1.0, abs=0.1)
    assert images.diversity(torch.stack([x[0], 1 - x[0]])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=">= 2 images"):
        images.diversity(x)
