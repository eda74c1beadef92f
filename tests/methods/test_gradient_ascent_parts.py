"""Parts of gradient ascent on constructed cases: parameterizations, transforms, regularizers, objectives."""
import math

import pytest
import torch

from methods.base import Target, read_out
from methods.gradient_ascent import objectives as obj
from methods.gradient_ascent import regularizers as reg
from methods.gradient_ascent.parameterizations import (
    COLOR_CORRELATION, FourierImage, MacoImage, PixelImage, natural_magnitude, rfft_freqs)
from methods.gradient_ascent.transforms import STANDARD, TransformSpec, draw, resolve, warp


# ---------------------------------------------------------------- parameterizations

def test_fourier_output_in_unit_range_and_seeded_per_image():
    p = FourierImage([1, 2, 3], 16)
    x = p()
    assert x.shape == (3, 3, 16, 16) and x.min() >= 0 and x.max() <= 1
    with torch.no_grad():
        p.coeffs.mul_(1e4)  # huge coefficients saturate the sigmoid, still in range
    assert p().min() >= 0 and p().max() <= 1
    assert torch.equal(FourierImage([2], 16)()[0], x[1])  # image 1 depends only on its own seed


def test_fourier_scales_coefficients_by_inverse_frequency():
    p = FourierImage([0], 8, decay_power=1.0)
    f = rfft_freqs(8).clamp(min=1 / 8)
    assert torch.allclose(p.scale[0, 0, :, :, 0], 1 / f)
    assert p.scale[0, 0, 0, 0, 0] == 8  # DC is scaled like the lowest frequency


def test_decorrelation_matrix_is_applied():
    plain, dec = FourierImage([5], 8, decorrelate=False), FourierImage([5], 8, decorrelate=True)
    logit = lambda x: torch.log(x / (1 - x))
    expected = torch.einsum("ck,bkhw->bchw", COLOR_CORRELATION, logit(plain()))
    assert torch.allclose(logit(dec()), expected, atol=1e-5)
    assert torch.allclose(COLOR_CORRELATION.norm(dim=0).max(), torch.tensor(1.0))  # Lucid's column normalization


def test_pixel_clamp_projects_to_range_and_sigmoid_is_grey_at_start():
    p = PixelImage([0, 1], 8, squash="clamp")
    with torch.no_grad():
        p.raw.mul_(10)
    p.project()
    assert p().min() >= 0 and p().max() <= 1
    s = PixelImage([0], 8, squash="sigmoid")
    assert (s() - 0.5).abs().max() < 0.01


def test_maco_keeps_magnitude_and_optimizes_phase_only():
    mag = natural_magnitude(16)
    p = MacoImage([0, 1], 16, mag)
    assert [n for n, _ in p.named_parameters()] == ["phase"]
    assert torch.allclose(p.spectrum().abs(), mag.expand(2, -1, -1, -1), rtol=1e-4, atol=1e-6)
    x = p()
    assert x.shape == (2, 3, 16, 16) and x.min() >= 0 and x.max() <= 1


def test_natural_magnitude_falls_with_frequency():
    mag = natural_magnitude(32)
    f = rfft_freqs(32)
    low, high = mag[:, (f > 0) & (f < 0.1)].mean(), mag[:, f > 0.4].mean()
    assert low > 5 * high  # natural images: roughly 1/f spectrum
    flat = torch.rand(4, 3, 32, 32)  # white noise has a flat spectrum
    noise = natural_magnitude(32, flat)
    assert noise[:, (f > 0) & (f < 0.1)].mean() < 2 * noise[:, f > 0.4].mean()


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_fourier_any_channels_non_square_has_the_frequencies_of_its_coefficients(channels):
    p = FourierImage([0, 1], (24, 40), decay_power=1.0, channels=channels)
    assert p().shape == (2, channels, 24, 40) and p.coeffs.shape == (2, channels, 24, 21, 2)
    f = rfft_freqs(24, 40)
    assert f.shape == (24, 21) and f[2, 3] == pytest.approx(math.hypot(2 / 24, 3 / 40))
    assert p.scale[0, 0, 0, 0, 0] == 40  # DC clamped at 1 / max(h, w), as Lucid
    with torch.no_grad():
        p.coeffs.zero_()
        p.coeffs[0, -1, 2, 3, 0] = 1.0  # one coefficient: 2 cycles down the 24 rows, 3 across the 40 columns
    logit = torch.logit(p()[0, -1].double())
    y, x = torch.meshgrid(torch.arange(24.0), torch.arange(40.0), indexing="ij")
    wave = torch.cos(2 * math.pi * (2 * y / 24 + 3 * x / 40)).double()
    assert torch.corrcoef(torch.stack([logit.flatten(), wave.flatten()]))[0, 1] > 0.9999
    assert torch.all(p()[1] == 0.5) and torch.all(p()[0, :-1] == 0.5)  # the other images and channels stay grey


@pytest.mark.parametrize("channels", [1, 4])
def test_decorrelation_applies_to_three_channels_only(channels):
    on, off = FourierImage([5], (8, 12), channels=channels), FourierImage([5], (8, 12), decorrelate=False, channels=channels)
    assert torch.equal(on(), off())
    pix = PixelImage([5], (8, 12), squash="clamp", decorrelate=True, channels=channels)  # RGB would refuse this
    assert pix().shape == (1, channels, 8, 12) and not pix.decorrelate
    assert not torch.equal(FourierImage([5], 8)(), FourierImage([5], 8, decorrelate=False)())  # RGB: it applies


def test_maco_grey_and_non_square():
    mag = natural_magnitude((24, 40), channels=1)  # grayscale skimage photos
    assert mag.shape == (1, 24, 21)
    f = rfft_freqs(24, 40)
    assert mag[:, (f > 0) & (f < 0.1)].mean() > 5 * mag[:, f > 0.4].mean()
    p = MacoImage([0, 1], (24, 40), mag)
    assert torch.allclose(p.spectrum().abs(), mag.expand(2, -1, -1, -1), rtol=1e-4, atol=1e-6)
    assert p().shape == (2, 1, 24, 40) and not p.decorrelate
    own = natural_magnitude((24, 40), torch.rand(3, 4, 30, 50), channels=4)
    assert MacoImage([0], (24, 40), own)().shape == (1, 4, 24, 40)
    with pytest.raises(ValueError, match="param='maco' needs maco_images with 4 channels"):
        natural_magnitude(16, channels=4)
    with pytest.raises(ValueError, match=r"maco_images have shape \(3, 3, 16, 16\); the model takes \[N, 1, H, W\]"):
        natural_magnitude(16, torch.rand(3, 3, 16, 16), channels=1)
    with pytest.raises(ValueError, match=r"expected \(C, 24, 21\)"):
        MacoImage([0], (24, 40), natural_magnitude(24, channels=1))


# ---------------------------------------------------------------- transforms

def _image(size: int = 16) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_no_op_spec_is_identity():
    theta = draw(TransformSpec(), 3, 16, torch.Generator().manual_seed(0))
    x = _image()
    assert torch.allclose(warp(x, theta[0], 16, 0.5), x, atol=1e-5)


def test_rotation_by_90_degrees_is_rot90():
    theta = draw(TransformSpec(angles=(90.0,)), 1, 16, torch.Generator())
    x = _image()
    assert torch.allclose(warp(x, theta[0], 16, 0.5), torch.rot90(x, 1, (2, 3)), atol=1e-5)


def test_pad_fills_with_pad_value_and_keeps_centre():
    theta = draw(TransformSpec(pad=8), 1, 16, torch.Generator())
    out = warp(torch.ones(1, 3, 16, 16), theta[0], 16, 0.5)
    assert torch.allclose(out[..., 0, 0], torch.tensor(0.5)) and torch.allclose(out[..., 8, 8], torch.tensor(1.0))


def test_scale_two_magnifies_the_centre():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 4:12, 4:12] = 1.0  # centre square of half the side
    theta = draw(TransformSpec(scales=(2.0,)), 1, 16, torch.Generator())
    out = warp(x, theta[0], 16, 0.5)
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.ones(1, 3, 14, 14), atol=1e-5)  # edge pixels blend with 0
    assert out.min() > 0.5


def test_jitter_shifts_by_centred_whole_pixels():
    theta = draw(TransformSpec(jitter=(3,)), 200, 16, torch.Generator().manual_seed(0))
    shifts = set((theta[:, :, 2] * 16 / 2).round().flatten().tolist())
    assert shifts == {-1.0, 0.0, 1.0}
    assert torch.allclose(theta[:, 0, 0], torch.tensor(14 / 16))  # view shrinks by jitter - 1 pixels


def test_standard_preset_matches_lucid():
    assert STANDARD.pad == 12 and STANDARD.pad_value == 0.5 and STANDARD.jitter == (8, 4)
    assert STANDARD.scales == tuple(1 + (i - 5) / 50 for i in range(11))
    assert min(STANDARD.angles) == -10 and max(STANDARD.angles) == 10
    assert resolve("standard") is STANDARD and resolve("none") is None
    assert resolve({"jitter": [4], "box": [1.0, 0.5]}) == TransformSpec(jitter=(4,), box=(1.0, 0.5))
    with pytest.raises(ValueError, match="standard, none"):
        resolve("fancy")


def _centred(h: int, w: int, half_h: float, half_w: float) -> torch.Tensor:
    """[1, 1, h, w]: 1 inside a centred box of half-sides (half_h, half_w) pixels, else 0."""
    y, x = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    return ((y.abs() < half_h) & (x.abs() < half_w)).float()[None, None]


def test_rotation_of_a_non_square_image_turns_pixels_not_the_frame():
    theta = draw(TransformSpec(angles=(90.0,)), 1, (24, 40), torch.Generator())
    wide = _centred(24, 40, 3, 8).expand(1, 2, -1, -1)  # 6 rows x 16 columns, in two channels
    torch.testing.assert_close(warp(wide, theta[0], (24, 40), 0.0), _centred(24, 40, 8, 3).expand(1, 2, -1, -1),
                               atol=1e-5, rtol=0)  # 16 x 6: a quarter turn in pixels
    flip = draw(TransformSpec(angles=(180.0,)), 1, (24, 40), torch.Generator())
    x = torch.rand(2, 1, 24, 40, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(warp(x, flip[0], (24, 40), 0.5), x.flip(2, 3), atol=1e-5, rtol=0)


def test_pad_scale_and_jitter_are_in_pixels_on_non_square_images():
    h, w = 24, 40
    theta = draw(TransformSpec(pad=4), 1, (h, w), torch.Generator())[0]
    assert theta[0, 0] == pytest.approx((w + 8) / w) and theta[1, 1] == pytest.approx((h + 8) / h)  # 4 px each side
    pad = warp(torch.ones(1, 1, h, w), theta, (h, w), 0.5)[0, 0]
    assert torch.all(pad[:3] == 0.5) and torch.all(pad[3:-3, 4:-4] == 1.0)  # 4 of 32 rows -> 3 of 24; 4 of 48 -> 3.3 of 40
    big = warp(_centred(h, w, 6, 10), draw(TransformSpec(scales=(2.0,)), 1, (h, w), torch.Generator())[0], (h, w), 0.5)
    assert torch.allclose(big[..., 1:-1, 1:-1], torch.ones(1, 1, h - 2, w - 2), atol=1e-5)  # half of each side, doubled
    theta = draw(TransformSpec(jitter=(3,)), 200, (h, w), torch.Generator().manual_seed(0))
    assert set((theta[:, 0, 2] * w / 2).round(decimals=4).tolist()) == {-1.0, 0.0, 1.0}
    assert set((theta[:, 1, 2] * h / 2).round(decimals=4).tolist()) == {-1.0, 0.0, 1.0}
    assert torch.allclose(theta[:, 0, 0], torch.tensor((w - 2) / w))  # the view shrinks by jitter - 1 pixels
    assert torch.allclose(theta[:, 1, 1], torch.tensor((h - 2) / h))


def test_draws_depend_only_on_the_seed():
    a = draw(STANDARD, 10, 32, torch.Generator().manual_seed(3))
    b = draw(STANDARD, 10, 32, torch.Generator().manual_seed(3))
    c = draw(STANDARD, 10, 32, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- regularizers

def test_tv_of_constant_is_zero_and_blur_reduces_tv():
    assert torch.all(reg.tv(torch.full((2, 3, 8, 8), 0.3)) == 0)
    x = _image()
    before = reg.tv(x)
    reg.blur_(x, 1.0)
    assert torch.all(reg.tv(x) < 0.5 * before)


def test_l1_l2_alpha_norm_known_values():
    x = torch.full((1, 3, 4, 4), 0.7)  # 0.2 above grey everywhere
    assert torch.allclose(reg.l1(x), torch.tensor([0.2]))
    assert torch.allclose(reg.l2(x), torch.tensor([0.04]))
    assert torch.allclose(reg.alpha_norm(x, 6.0), torch.tensor([(3 * 0.04) ** 3]))


def test_l2_bound_projects_onto_the_ball():
    x = 0.5 + torch.randn(3, 3, 8, 8)
    x[2] = 0.5 + 0.001 * torch.randn(3, 8, 8)  # already inside: untouched
    inside = x[2].clone()
    reg.project_l2_(x, 0.1, 0.5)
    radius = 0.1 * math.sqrt(3 * 64)
    norms = (x - 0.5).flatten(1).norm(dim=1)
    assert torch.allclose(norms[:2], torch.tensor([radius, radius]), rtol=1e-5)
    assert torch.equal(x[2], inside)


def test_l2_bound_radius_counts_every_channel_and_pixel():
    x = 0.5 + torch.randn(2, 1, 6, 10)
    reg.project_l2_(x, 0.1, 0.5)
    assert torch.allclose((x - 0.5).flatten(1).norm(dim=1), torch.full((2,), 0.1 * math.sqrt(1 * 6 * 10)), rtol=1e-5)
    y = 0.5 + torch.randn(2, 4, 6, 10)
    reg.project_l2_(y, 0.1, 0.5)
    assert torch.allclose((y - 0.5).flatten(1).norm(dim=1), torch.full((2,), 0.1 * math.sqrt(4 * 6 * 10)), rtol=1e-5)


def test_decay_and_clipping():
    x = torch.full((1, 3, 4, 4), 0.9)
    reg.decay_(x, 0.5, 0.5)
    assert torch.allclose(x, torch.tensor(0.7))
    y = 0.5 + torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4).clone() / 100
    reg.clip_small_norm_(y, 50, 0.5)
    assert int((y[0, 0] == 0.5).sum()) == 8  # the 8 pixels of smallest norm
    z = 0.5 + torch.ones(1, 3, 4, 4)
    grad = torch.arange(16.0).view(1, 1, 4, 4).expand(1, 3, 4, 4)
    reg.clip_small_contrib_(z, grad, 25, 0.5)
    assert torch.equal(z[0, 0].flatten()[:4], torch.full((4,), 0.5)) and torch.all(z[0, 0].flatten()[4:] == 1.5)


# ---------------------------------------------------------------- objectives

def test_objectives_match_read_out_and_compose():
    acts = torch.randn(4, 5, 6, 6)
    units = torch.tensor([0, 3, 3, 1])
    ch = obj.channel()(acts, units)
    assert torch.allclose(ch, acts.mean((2, 3))[torch.arange(4), units])
    nr = obj.neuron()(acts, units)
    assert torch.allclose(nr, acts[torch.arange(4), units, 3, 3])
    assert torch.allclose(obj.neuron((1, 2))(acts, units), acts[torch.arange(4), units, 1, 2])
    assert torch.allclose(obj.layer()(acts, units), acts.pow(2).mean((1, 2, 3)))
    combo = 2 * obj.channel() - obj.neuron() + 1.5
    assert torch.allclose(combo(acts, units), 2 * ch - nr + 1.5)
    assert torch.allclose((-obj.channel())(acts, units), -ch)
    logits = torch.randn(4, 10)
    assert torch.allclose(obj.class_logit()(logits, units), logits[torch.arange(4), units])
    with pytest.raises(TypeError):
        obj.channel() * obj.neuron()


def test_direction_objective_and_cosine_power():
    acts = torch.randn(2, 4, 3, 3)
    vec = [1.0, 0.0, -1.0, 0.5]
    d = obj.direction(vec)(acts, torch.zeros(2, dtype=torch.long))
    assert torch.allclose(d, read_out(acts, Target("x", (0,), "direction", direction=tuple(vec))))
    aligned = torch.tensor(vec).view(1, 4, 1, 1).expand(1, 4, 3, 3)
    cos_d = obj.direction(vec, cossim_pow=2.0)(aligned, torch.zeros(1, dtype=torch.long))
    assert torch.allclose(cos_d, obj.direction(vec)(aligned, torch.zeros(1, dtype=torch.long)), rtol=1e-5)  # cos = 1


def test_diversity_is_zero_for_one_image_and_lower_for_similar_images():
    acts = torch.rand(4, 3, 5, 5)
    units = torch.zeros(4, dtype=torch.long)
    assert torch.all(obj.diversity(1)(acts, units) == 0)
    same = acts[:1].expand(2, -1, -1, -1)
    different = torch.zeros(2, 3, 5, 5)
    different[0, 0], different[1, 1] = 1.0, 1.0  # orthogonal Gram matrices
    assert torch.allclose(obj.diversity(2)(same, units[:2]), torch.tensor([-1.0, -1.0]))
    assert torch.allclose(obj.diversity(2)(different, units[:2]), torch.zeros(2))
