"""Metrics against scikit-image and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ambient_imaging.metrics import (
    center_crop,
    coverage,
    heldout_denoising_error,
    interval_coverage,
    memorization,
    nmse,
    psnr,
    slice_metrics,
    ssim,
    volume_metrics,
)


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.random((3, 24, 20)) + 0.5
    pred = gt + 0.05 * rng.standard_normal(gt.shape)
    return gt, pred


def test_nmse_psnr_by_hand():
    gt, pred = _pair()
    assert nmse(gt, pred) == pytest.approx(np.sum((gt - pred) ** 2) / np.sum(gt**2))
    mse = np.mean((gt - pred) ** 2)
    assert psnr(gt, pred) == pytest.approx(10 * np.log10(gt.max() ** 2 / mse))
    assert psnr(gt, gt + 0.1, maxval=1.0) == pytest.approx(20.0)


def test_ssim_matches_skimage_fastmri_convention():
    gt, pred = _pair(1)
    ref = np.mean([structural_similarity(g, p, data_range=gt.max()) for g, p in zip(gt, pred)])
    assert ssim(gt, pred) == pytest.approx(ref)
    assert ssim(gt, gt) == pytest.approx(1.0)
    # complex tensors are scored on magnitude
    tg, tp = torch.from_numpy(gt) * 1j, torch.from_numpy(pred) * (-1j)
    assert ssim(tg, tp) == pytest.approx(ref)


def test_slice_and_volume_metrics_and_crop():
    gt, pred = _pair(2)
    per = slice_metrics(gt, pred)
    assert len(per) == 3 and per[1]["psnr"] == pytest.approx(psnr(gt[1], pred[1]))
    vol = volume_metrics(gt, pred)
    assert vol["nmse"] == pytest.approx(nmse(gt, pred))
    assert center_crop(gt, 10).shape == (3, 10, 10)
    assert center_crop(gt, (30, 8)).shape == (3, 24, 8)
    np.testing.assert_array_equal(center_crop(gt, 10), gt[:, 7:17, 5:15])
    with pytest.raises(ValueError, match="shape"):
        nmse(gt, pred[:2])


def test_coverage_of_calibrated_gaussian():
    rng = np.random.default_rng(3)
    mean = rng.standard_normal((32, 32))
    std = 0.5 + rng.random((32, 32))
    ref = mean + std * rng.standard_normal((32, 32))
    samples = mean + std * rng.standard_normal((400, 32, 32))
    # ~0.954 for k = 2 (tolerance: 1024 pixels, sampling error ≈ 0.007, plus std estimation)
    assert coverage(samples, ref, k=2) == pytest.approx(0.954, abs=0.03)
    assert interval_coverage(samples, ref, 0.9) == pytest.approx(0.9, abs=0.04)
    # overconfident samples (std / 4) under-cover
    assert coverage(mean + 0.25 * (samples - mean), ref, k=2) < 0.6


def test_memorization_finds_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(50, 1, 8, 8, generator=g)
    copies = train[[3, 7]] * 2.0 + 0.1  # cosine on mean-removed pixels is invariant to this
    fresh = torch.rand(3, 1, 8, 8, generator=g)
    rep = memorization(torch.cat([copies, fresh]), train, chunk=16)
    np.testing.assert_allclose(rep.similarity[:2], 1.0, atol=1e-12)
    assert list(rep.nearest[:2]) == [3, 7]
    assert rep.similarity[2:].max() < 0.9
    assert rep.frac_above_095 == pytest.approx(2 / 5) and rep.frac_above_090 == pytest.approx(2 / 5)
    exact = memorization(train[[5]], train)
    assert exact.l2_ratio[0] == pytest.approx(0.0, abs=1e-9)
    d = torch.cdist(fresh.reshape(3, -1).double(), train.reshape(50, -1).double()).sort(dim=1).values
    np.testing.assert_allclose(rep.l2_ratio[2:], (d[:, 0] / d[:, 1]).numpy(), rtol=1e-9)


def test_heldout_denoising_error_of_exact_gaussian_denoiser():
    # x ~ N(0, v I): the optimal denoiser is x_t v/(v+σ²), MSE = v σ²/(v+σ²)
    v = 0.25
    x = (v**0.5) * torch.randn(4000, 1, 4, 4, generator=torch.Generator().manual_seed(123), dtype=torch.float64)

    def net(xt, sigma, mask=None):
        return xt * v / (v + sigma.reshape(-1, 1, 1, 1) ** 2)

    err = heldout_denoising_error(net, x, (0.1, 0.5, 2.0), batch_size=1000)
    for s, e in err.items():
        assert e == pytest.approx(v * s**2 / (v + s**2), rel=0.03)
