"""The estimate of fastMRI's RSS target from an image and the measurements (``MultiCoilMRI.rss_estimate``)."""

from __future__ import annotations

import numpy as np
import torch

from ambient_imaging.metrics import psnr, ssim
from ambient_imaging.operators import MultiCoilMRI, birdcage_maps, fft2c, ifft2c
from ambient_imaging.problems import MaskSpec, mri_problem
from ambient_imaging.reconstruction import reconstruct
from ambient_imaging.sampling import ZeroFilled

H = W = 32


def phantom() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    obj = (((xx / 0.6) ** 2 + (yy / 0.7) ** 2) < 1).double() * (1 + 0.4 * torch.cos(5 * xx))
    return (obj * torch.exp(0.3j * yy)).to(torch.complex128)[None, None]


def setup(sigma: float, accel: float = 4.0, seed: int = 0):
    maps = birdcage_maps(6, (H, W), dtype=torch.complex128)[None]
    g = torch.Generator().manual_seed(seed)
    cols = torch.rand(W, generator=g, dtype=torch.float64) < 1 / accel
    cols[W // 2 - 2: W // 2 + 2] = True
    mask = cols[None, None, :].expand(1, H, W)
    op = MultiCoilMRI(maps, mask, noise_sigma=sigma)
    return op, phantom(), maps


def noisy_full_kspace(x, maps, sigma, g):
    k = fft2c(maps * x)
    noise = torch.complex(torch.randn(k.shape, generator=g, dtype=torch.float64),
                          torch.randn(k.shape, generator=g, dtype=torch.float64)) * sigma / 2**0.5
    return k + noise  # E|ε|² = σ² (complex std σ)


def test_fully_sampled_estimate_is_the_rss_of_the_measurements_whatever_the_image() -> None:
    op, x, maps = setup(0.05)
    full = op.replace(mask=torch.ones_like(op.mask))
    k = noisy_full_kspace(x, maps, 0.05, torch.Generator().manual_seed(1))
    rss = ifft2c(k).abs().pow(2).sum(1)[0].sqrt()
    for guess in (x, torch.zeros_like(x), 3 * x):
        assert torch.allclose(full.rss_estimate(guess, k)[0], rss, atol=1e-12)


def test_noise_free_estimate_from_the_true_image_is_the_true_rss() -> None:
    op, x, maps = setup(0.0)
    y = op.forward(x)
    want = (maps * x).abs().pow(2).sum(1)[0].sqrt()
    assert torch.allclose(op.rss_estimate(x, y)[0], want, atol=1e-10)


def test_estimate_squared_is_the_expected_squared_target_over_the_unmeasured_noise() -> None:
    """E[Σ_c |F⁻¹k_c|² | y] = Σ_c |F⁻¹(My + (1−M)F(Sx))_c|² + Nc (1−ρ) σ²: Monte Carlo over the unmeasured noise."""
    sigma = 0.3
    op, x, maps = setup(sigma)
    g = torch.Generator().manual_seed(2)
    y = op.restrict(noisy_full_kspace(x, maps, sigma, g))
    m = op.mask[:, None]
    energies = []
    for _ in range(400):
        k = torch.where(m, y, noisy_full_kspace(x, maps, sigma, g))  # the same measured part, fresh unmeasured noise
        energies.append(ifft2c(k).abs().pow(2).sum(1)[0])
    mc = torch.stack(energies).mean(0)
    est = op.rss_estimate(x, y)[0] ** 2
    floor = op.n_coils * (1 - op.mask.double().mean()) * sigma**2
    assert abs(float((mc - est).mean())) < 0.02 * float(floor)  # unbiased (the mean over pixels)
    assert float((mc - est).abs().max()) < 0.25 * float(floor)  # per pixel, within Monte Carlo error
    # without the floor the estimate is biased low by exactly that floor
    no_floor = op.with_noise(0.0).rss_estimate(x, y)[0] ** 2
    assert float((mc - no_floor).mean()) > 0.9 * float(floor)


def test_two_map_sets_sum_before_the_coils() -> None:
    maps = birdcage_maps(4, (H, W), dtype=torch.complex128)
    maps2 = torch.stack([maps, 0.5 * maps.roll(3, -1)])[None]  # (1, 2, Nc, H, W)
    op = MultiCoilMRI(maps2, torch.ones(1, H, W, dtype=torch.bool))
    x = torch.cat([phantom(), 0.3 * phantom()], 1)
    y = op.forward(x)
    coil = (maps2[0] * x[0][:, None]).sum(0)
    assert torch.allclose(op.rss_estimate(x, y)[0], coil.abs().pow(2).sum(0).sqrt(), atol=1e-10)


def test_scoring_against_rss_uses_the_estimate_and_it_beats_the_bare_magnitude() -> None:
    """With noisy coils the RSS target has a noise floor everywhere; the true image, mapped by
    ``rss_estimate``, scores far better against it than its bare magnitude does — and reconstruct()
    shows and scores that estimate for ``target="rss"``."""
    sigma = 0.02
    _, x, maps = setup(sigma)
    g = torch.Generator().manual_seed(3)
    k = noisy_full_kspace(x, maps, sigma, g)[0].to(torch.complex64).numpy()
    prob = mri_problem(k, mask_spec=MaskSpec("random", 3.0, center_lines=8, seed=0), key="rss",
                       noise_sigma=sigma)
    rss = prob.extras["rss"][0, 0].abs().numpy()
    res = reconstruct(prob, ZeroFilled(), None, target="rss")
    assert res.target_samples is not None and res.target_samples.shape == (1, H, W)
    assert torch.allclose(res.magnitude, res.target_samples[0])
    assert abs(res.metrics["psnr"] - psnr(rss, res.magnitude.numpy())) < 1e-9
    sense1 = reconstruct(prob, ZeroFilled(), None, target="sense1")
    assert sense1.target_samples is None  # the coil-combined reference: the bare magnitude
    ref = prob.reference.to(torch.complex128)
    est = prob.op.rss_estimate(ref, prob.y)[0].numpy()
    bare = ref[0, 0].abs().numpy()
    assert psnr(rss, est) > psnr(rss, bare) + 3.0
    assert ssim(rss[None], est[None]) > ssim(rss[None], bare[None])
    assert np.isfinite(res.metrics["ssim"])


def test_padding_columns_stay_zero_and_add_no_floor() -> None:
    """Columns outside the acquired band are zero in the fully sampled k-space: the estimate of a fully
    sampled band is then the RSS of the measurements exactly, noise floor 0."""
    op, x, maps = setup(0.05)
    lo, hi = 4, W - 4
    band_mask = torch.zeros(1, H, W, dtype=torch.bool)
    band_mask[..., lo:hi] = True
    op = op.replace(mask=band_mask)
    k = noisy_full_kspace(x, maps, 0.05, torch.Generator().manual_seed(4)) * band_mask[:, None]
    rss = ifft2c(k).abs().pow(2).sum(1)[0].sqrt()
    assert torch.allclose(op.rss_estimate(x, k, band=(lo, hi))[0], rss, atol=1e-12)
    assert not torch.allclose(op.rss_estimate(x, k)[0], rss, atol=1e-3)  # padding taken for unmeasured k-space
