"""The sanity similarities against Quantus 0.6 (quantus.functions.similarity_func, as its MPRT metric calls them).

Spearman (signed, and on |values| as MPRT with abs=True, normalise_by_max) agrees to 1e-8. SSIM agrees to 1e-8
where the conventions match: 2-D maps that each already span [0, 1], window 5. Departures, each tested below:
- we min-max rescale each result to [0, 1] first, so a result and a positive affine copy of it score 1; Quantus
  takes the raw values with the pair's joint range as data range (and scores less than 1);
- several channels: we average the channels' 2-D SSIMs; Quantus has no channel axis;
- Quantus's MPRT flattens each explanation to a vector before calling ssim (a 1-D SSIM); we keep the 2-D map.
"""
import numpy as np
import pytest

from experiments.metrics import sanity
from experiments.metrics._common import rescale

similarity = pytest.importorskip("quantus.functions.similarity_func")
normalise = pytest.importorskip("quantus.functions.normalise_func")


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Signed map pairs: related, independent, negated, tied (ReLU-like with many zeros), and 3-channel."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:32, :32]
    m = np.sin(x / 5.0) + np.cos(y / 7.0)
    a, b = m + 0.3 * rng.standard_normal(m.shape), m + 0.3 * rng.standard_normal(m.shape)
    relu = np.maximum(rng.standard_normal((2, 32, 32)), 0)
    return [(a, b), (a, rng.standard_normal(m.shape)), (a, -a), (relu[0], relu[1] - relu[0]),
            (rng.standard_normal((3, 16, 16)), rng.standard_normal((3, 16, 16)))]


def _mprt_abs(a: np.ndarray) -> np.ndarray:
    """What Quantus's MPRT (abs=True, normalise=True) compares: |a| divided by its max, flattened."""
    return normalise.normalise_by_max(np.abs(a)).ravel()


def test_spearman_matches_quantus():
    pairs = _pairs()
    signed = [abs(sanity.sanity_spearman(a, b) - similarity.correlation_spearman(a.ravel(), b.ravel())) for a, b in pairs]
    absolute = [abs(sanity.sanity_spearman_abs(a, b) - similarity.correlation_spearman(_mprt_abs(a), _mprt_abs(b)))
                for a, b in pairs]
    assert max(signed) < 1e-8 and max(absolute) < 1e-8  # measured: 0 and 0
    batch_a, batch_b = (np.stack([p[i].ravel() for p in pairs[:4]]) for i in (0, 1))
    batched = similarity.correlation_spearman(batch_a, batch_b, batched=True)  # MPRT's call
    assert np.abs(batched - [sanity.sanity_spearman(a, b) for a, b in pairs[:4]]).max() < 1e-8


def test_ssim_matches_quantus_on_maps_spanning_zero_to_one():
    diffs = []
    for a, b in _pairs()[:4]:
        for x, y in ((a, b), (np.abs(a), np.abs(b))):
            ours = sanity.sanity_ssim(x, y)
            diffs.append(abs(ours - similarity.ssim(rescale(x, 0.0, 1.0), rescale(y, 0.0, 1.0), win_size=5)))
        diffs.append(abs(sanity.sanity_ssim_abs(a, b) - sanity.sanity_ssim(np.abs(a), np.abs(b))))
    assert max(diffs) < 1e-8  # measured: 0


def test_departure_each_result_is_rescaled_first():
    a = _pairs()[0][0]
    assert sanity.sanity_ssim(a, 10 * a + 3) == pytest.approx(1.0)
    assert similarity.ssim(a, 10 * a + 3, win_size=5) < 0.2  # measured 0.065: raw values, joint data range


def test_departure_channels_are_averaged():
    rng = np.random.default_rng(1)
    x, y = (np.stack([rescale(c, 0.0, 1.0) for c in rng.standard_normal((3, 16, 16))]) for _ in range(2))
    per_channel = np.mean([similarity.ssim(xc, yc, win_size=5) for xc, yc in zip(x, y)])
    assert sanity.sanity_ssim(x, y) == pytest.approx(per_channel, abs=1e-8)


def test_departure_mprt_flattens_the_map():
    a, b = _pairs()[0]
    x, y = rescale(a, 0.0, 1.0), rescale(b, 0.0, 1.0)
    flat = similarity.ssim(x.ravel()[None], y.ravel()[None], batched=True, win_size=5)[0]
    assert abs(sanity.sanity_ssim(a, b) - flat) > 0.03  # measured 0.359 (2-D) vs 0.308 (1-D)
