"""Samplers against closed-form Gaussian posteriors (analytic denoisers, no training)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from ambient_imaging.operators import GaussianNoise, LinearOperator, PixelMask
from ambient_imaging.sampling import (
    ADPS,
    DPS,
    MMPS,
    AmbientMMPS,
    EDMSampler,
    FixedMaskSampler,
    OneStep,
    TruncatedSampler,
    conjugate_gradient,
    edm_sigmas,
)

H = W = 4
N = H * W
DT = torch.float64


def _to_real(x: Tensor) -> Tensor:
    """(B, ...) real or complex -> (B, n) real vector (complex: [Re, Im])."""
    v = x.reshape(x.shape[0], -1)
    return torch.cat([v.real, v.imag], dim=1) if x.is_complex() else v


def _from_real(v: Tensor, like: Tensor) -> Tensor:
    if like.is_complex():
        n = v.shape[1] // 2
        return torch.complex(v[:, :n], v[:, n:]).reshape(like.shape)
    return v.reshape(like.shape)


class GaussianDenoiser(torch.nn.Module):
    """Exact ``E[x | x_t]`` for ``x ~ N(μ, Σ)`` (real vector form; complex = [Re, Im], each part noise σ²)."""

    def __init__(self, mu: Tensor, cov: Tensor):
        super().__init__()
        self.mu, self.cov = mu, cov
        self.calls = 0

    def forward(self, x: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor:
        self.calls += 1
        v = _to_real(x)
        eye = torch.eye(self.cov.shape[0], dtype=v.dtype)
        if torch.all(sigma == sigma.reshape(-1)[0]):  # one σ for the batch: one (n, n) gain
            gain = self.cov @ torch.linalg.inv(self.cov + sigma.reshape(-1)[0].to(v.dtype) ** 2 * eye)
            out = self.mu + (v - self.mu) @ gain.T
        else:
            s2 = sigma.reshape(-1, 1, 1).to(v.dtype) ** 2
            gain = self.cov @ torch.linalg.inv(self.cov + s2 * eye)  # (B, n, n)
            out = self.mu + (gain @ (v - self.mu)[..., None])[..., 0]
        return _from_real(out, x)


class DenseOperator(LinearOperator):
    """y = M x for a dense (possibly complex) matrix, for closed-form tests."""

    def __init__(self, matrix: Tensor, noise_sigma: float = 0.0):
        self.matrix, self.noise_sigma = matrix, noise_sigma

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).to(self.matrix.dtype) @ self.matrix.T

    def adjoint(self, y: Tensor) -> Tensor:
        return (y @ self.matrix.conj()).reshape(y.shape[0], 1, H, W)


def _real_matrix(op: LinearOperator, like: Tensor) -> Tensor:
    """The operator as a real matrix (real-vector form of input and output)."""
    n = _to_real(like).shape[1]
    cols = []
    for j in range(n):
        e = torch.zeros(1, n, dtype=DT)
        e[0, j] = 1
        ax = op.forward(_from_real(e, like[:1]))
        if ax.ndim > 2:
            ax = ax.reshape(1, -1)
        cols.append(_to_real(ax).reshape(-1))
    return torch.stack(cols, dim=1)


def _gaussian(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(n, dtype=DT)
    cov = 0.3 * torch.exp(-((idx[:, None] - idx[None]) ** 2) / 8.0) + 0.05 * torch.eye(n, dtype=DT)
    mu = 0.3 * torch.randn(n, generator=g, dtype=DT)
    return mu, cov


def _posterior(mu, cov, a_real, y_real, var_y):
    prec = torch.linalg.inv(cov) + a_real.T @ a_real / var_y
    post_cov = torch.linalg.inv(prec)
    post_mu = post_cov @ (torch.linalg.solve(cov, mu) + a_real.T @ y_real / var_y)
    return post_mu, post_cov


def _check_moments(samples: Tensor, mu: Tensor, cov: Tensor, mean_tol_sd: float = 5.0, cov_factor: float = 1.6):
    """Empirical mean/covariance of ``samples`` vs ``(mu, cov)``.

    Tolerances from the sampling error alone: the mean within ``mean_tol_sd`` standard errors
    (+1e-3 for ODE discretisation); the relative Frobenius covariance error within
    ``cov_factor`` × its expected value for K Gaussian samples,
    ``sqrt((tr Σ² + (tr Σ)²) / K) / ‖Σ‖_F`` (≈ 0.05–0.1 here).
    """
    v = _to_real(samples)
    k = v.shape[0]
    expected = math.sqrt((torch.trace(cov @ cov) + torch.trace(cov) ** 2).item() / k) / torch.linalg.matrix_norm(
        cov).item()
    cov_tol = cov_factor * expected + 0.01
    m = v.mean(0)
    c = torch.cov(v.T)
    mean_err = (m - mu).abs().max().item()
    mean_bound = mean_tol_sd * math.sqrt(cov.diagonal().max().item() / k) + 1e-3
    cov_err = (torch.linalg.matrix_norm(c - cov) / torch.linalg.matrix_norm(cov)).item()
    assert mean_err < mean_bound, f"mean error {mean_err:.4g} > {mean_bound:.4g}"
    assert cov_err < cov_tol, f"relative covariance error {cov_err:.4g} > {cov_tol}"
    print(f"moments: max mean error {mean_err:.4g} (bound {mean_bound:.4g}), relative cov error {cov_err:.4g} "
          f"(expected from sampling {expected:.4g}, bound {cov_tol:.4g})")
    return mean_err, cov_err


def test_schedule_endpoints():
    s = edm_sigmas(10, 0.002, 80.0)
    assert len(s) == 11 and s[-1] == 0
    assert math.isclose(float(s[0]), 80.0) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-9)
    assert torch.all(s[:-1] > s[1:])


def test_cg_solves_complex_hermitian_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(3, 6, 6, dtype=torch.complex128, generator=g)
    a = m @ m.conj().transpose(-1, -2) + torch.eye(6)
    b = torch.randn(3, 6, dtype=torch.complex128, generator=g)
    x, _ = conjugate_gradient(lambda v: (a @ v[..., None])[..., 0], b, max_iter=30, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_edm_sampler_reproduces_gaussian_prior():
    mu, cov = _gaussian(N, 0)
    net = GaussianDenoiser(mu, cov)
    rec = EDMSampler(steps=32).sample(net, (4000, 1, H, W), dtype=DT, generator=torch.Generator().manual_seed(1))
    assert rec.samples.shape == (4000, 1, 1, H, W)
    assert rec.nfe == 2 * 32 - 1 == net.calls
    _check_moments(rec.samples[:, 0], mu, cov)
    euler = EDMSampler(steps=64, heun=False).sample(net, (8, 1, H, W), dtype=DT)
    assert euler.nfe == 64 and torch.isfinite(euler.samples).all()


def test_mmps_matches_closed_form_posterior_pixel_mask():
    mu, cov = _gaussian(N, 1)
    net = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(1, 1, H, W, generator=g) < 0.5
    op = PixelMask(mask, noise_sigma=0.1)
    x = (mu + torch.linalg.cholesky(cov) @ torch.randn(N, generator=g, dtype=DT)).reshape(1, 1, H, W)
    y = op.measure(x, g)
    a_real = _real_matrix(op, x)
    post_mu, post_cov = _posterior(mu, cov, a_real, _to_real(y)[0], 0.1**2)
    sampler = MMPS(steps=32, cg_iters=N, cg_tol=1e-10)
    rec = sampler(net, y, op, samples=3000, generator=g)
    assert rec.samples.shape == (1, 3000, 1, H, W)
    _check_moments(rec.samples[0], post_mu, post_cov)
    # the posterior std is reported per pixel
    torch.testing.assert_close(rec.std[0, 0].reshape(-1) ** 2, post_cov.diagonal(), rtol=0.15, atol=1e-3)


def test_mmps_matches_closed_form_posterior_complex_operator():
    # complex image (Re, Im jointly Gaussian), complex measurements with circular noise
    mu, cov = _gaussian(2 * N, 3)
    net = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(4)
    mat = torch.randn(10, N, dtype=torch.complex128, generator=g) / math.sqrt(N)
    sigma_y = 0.2
    op = DenseOperator(mat, noise_sigma=sigma_y)
    x = _from_real((mu + torch.linalg.cholesky(cov) @ torch.randn(2 * N, generator=g, dtype=DT))[None],
                   torch.zeros(1, 1, H, W, dtype=torch.complex128))
    y = op.measure(x, g)
    a_real = _real_matrix(op, x)
    post_mu, post_cov = _posterior(mu, cov, a_real, _to_real(y)[0], sigma_y**2 / 2)
    rec = MMPS(steps=32, cg_iters=20, cg_tol=1e-10)(net, y, op, samples=3000, generator=g)
    assert rec.samples.dtype == torch.complex128
    _check_moments(rec.samples[0], post_mu, post_cov)


def test_mmps_matches_closed_form_posterior_multicoil_mri():
    from _toy_mri import coil_maps, make_mri

    mu, cov = _gaussian(2 * N, 12)
    net = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(13)
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[..., [0, 1, 3]] = True  # 3 of 4 phase-encode lines
    sigma_y = 0.1
    op = make_mri(coil_maps(2, H, W), mask, noise_sigma=sigma_y)
    x = _from_real((mu + torch.linalg.cholesky(cov) @ torch.randn(2 * N, generator=g, dtype=DT))[None],
                   torch.zeros(1, 1, H, W, dtype=torch.complex128))
    y = op.measure(x, g)
    # real form of A restricted to the measured k-space entries
    a_real = _real_matrix(op, x)
    keep = _to_real(op.restrict(torch.full_like(y, 1 + 1j))).reshape(-1) != 0
    post_mu, post_cov = _posterior(mu, cov, a_real[keep], _to_real(y)[0][keep], sigma_y**2 / 2)
    rec = MMPS(steps=32, cg_iters=36, cg_tol=1e-8)(net, y, op, samples=3000, generator=g)
    _check_moments(rec.samples[0], post_mu, post_cov)


def test_mmps_batched_measurements_and_noiseless_floor():
    mu, cov = _gaussian(N, 5)
    net = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(6)
    mask = torch.rand(2, 1, H, W, generator=g) < 0.6
    op = PixelMask(mask)  # noiseless: sigma_y_floor applies
    x = torch.randn(2, 1, H, W, generator=g, dtype=DT)
    y = op.measure(x)
    rec = MMPS(steps=16, cg_iters=N)(net, y, op, samples=4, generator=g)
    assert rec.samples.shape == (2, 4, 1, H, W)
    # each measurement's samples agree with its own data on observed pixels
    for b in range(2):
        err = ((rec.samples[b] - x[b]) * mask[b]).abs().max().item()
        assert err < 0.02, err


def _zero_filled_error(x, y):
    return torch.linalg.vector_norm(y - x).item()


def test_dps_and_onestep_move_towards_posterior():
    mu, cov = _gaussian(N, 7)
    net = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(8)
    mask = torch.rand(1, 1, H, W, generator=g) < 0.5
    op = PixelMask(mask, noise_sigma=0.05)
    x = (mu + torch.linalg.cholesky(cov) @ torch.randn(N, generator=g, dtype=DT)).reshape(1, 1, H, W)
    y = op.measure(x, g)
    post_mu, _ = _posterior(mu, cov, _real_matrix(op, x), _to_real(y)[0], 0.05**2)
    zf_err = torch.linalg.vector_norm(y.reshape(-1) - post_mu).item()
    rec = DPS(steps=50, zeta=0.5)(net, y, op, samples=64, generator=g)
    assert torch.isfinite(rec.samples).all()
    dps_err = torch.linalg.vector_norm(rec.mean.reshape(-1) - post_mu).item()
    assert dps_err < zf_err, (dps_err, zf_err)
    assert rec.nfe == 50
    one = OneStep()(net, y, op)
    assert one.nfe == 1 and torch.isfinite(one.samples).all()
    assert torch.all(one.std == 0)


def test_adps_uses_a_fixed_subsampled_operator():
    seen = []

    class Spy(GaussianDenoiser):
        def forward(self, x, sigma, mask=None):
            seen.append(mask.clone())
            # the input is restricted to the mask, as in ambient training
            assert torch.all(x[mask.expand_as(x) == 0] == 0)
            return super().forward(x, sigma)

    mu, cov = _gaussian(N, 9)
    g = torch.Generator().manual_seed(10)
    op = PixelMask(torch.rand(1, 1, H, W, generator=g) < 0.7, noise_sigma=0.05)
    y = op.measure(mu.reshape(1, 1, H, W), g)
    rec = ADPS(steps=6, delta=0.3)(Spy(mu, cov), y, op, samples=3, generator=g)
    assert rec.samples.shape == (1, 3, 1, H, W) and torch.isfinite(rec.samples).all()
    assert len(seen) == 6 and all(torch.equal(m, seen[0]) for m in seen)
    assert seen[0].shape[0] == 3  # one Ã per sample
    assert torch.all(seen[0] <= op.mask.float())  # Ã's rows are a subset of A's
    # AmbientMMPS evaluates an ambient prior the same way with subsample_delta
    seen.clear()
    rec = AmbientMMPS(steps=3, subsample_delta=0.3)(Spy(mu, cov), y, op, samples=2, mask_channels=1, generator=g)
    assert torch.isfinite(rec.samples).all() and len(seen) >= 5
    assert all(torch.equal(m, seen[0]) for m in seen) and torch.all(seen[0] <= op.mask.float())


def test_fixed_mask_and_truncated_samplers():
    mu, cov = _gaussian(N, 11)
    masks = []

    class Spy(GaussianDenoiser):
        def forward(self, x, sigma, mask=None):
            masks.append(mask)
            return super().forward(x, sigma)

    rec = FixedMaskSampler(steps=5, corruption=0.4, delta=0.1).sample(Spy(mu, cov), (200, 1, H, W), dtype=DT)
    assert rec.nfe == 9 and all(torch.equal(m, masks[0]) for m in masks)
    survival = masks[0].mean().item()
    assert abs(survival - 0.6 * 0.9) < 0.06
    # truncated: stops at sigma_n and returns D(x, sigma_n): exact prior mean/cov of E[x | x_{σn}]
    net = GaussianDenoiser(mu, cov)
    tr = TruncatedSampler(steps=20, sigma_n=0.2).sample(net, (3000, 1, H, W), dtype=DT,
                                                        generator=torch.Generator().manual_seed(3))
    assert tr.nfe == 2 * 19 + 1  # 19 Heun steps between 20 sigmas, then D(x, σ_n)
    gain = cov @ torch.linalg.inv(cov + 0.04 * torch.eye(N, dtype=DT))
    _check_moments(tr.samples[:, 0], mu, gain @ (cov + 0.04 * torch.eye(N, dtype=DT)) @ gain.T)


def test_sampler_rejects_mismatched_batches():
    mu, cov = _gaussian(N, 0)
    op = PixelMask(torch.ones(3, 1, H, W, dtype=torch.bool))
    with pytest.raises(ValueError, match="3 elements"):
        MMPS(steps=2)(GaussianDenoiser(mu, cov), torch.zeros(2, 1, H, W, dtype=DT), op)
    with pytest.raises(ValueError, match="samples"):
        DPS(steps=2)(GaussianDenoiser(mu, cov), torch.zeros(3, 1, H, W, dtype=DT), op, samples=0)
    assert GaussianNoise(0.1).noise_sigma == 0.1


def test_daps_serves_visibilities_and_is_registered():
    """DAPS on interferometric visibilities (complex data, real image) with a Gaussian prior: finite,
    closer to the posterior mean than the dirty image; the registry builds it for every input kind."""
    from ambient_imaging.operators import Interferometer
    from ambient_imaging.sampling import DAPS, get_method

    n = 4
    g = torch.Generator().manual_seed(0)
    pixel = 1e-6
    m = 10
    r = (0.45 / pixel) * torch.sqrt(torch.rand(m, generator=g, dtype=DT))
    th = 2 * math.pi * torch.rand(m, generator=g, dtype=DT)
    op = Interferometer(torch.stack([r * torch.cos(th), r * torch.sin(th)], dim=1), (n, n), pixel, noise_sigma=0.05)
    mu, cov = _gaussian(N, 11)
    x = (mu + torch.linalg.cholesky(cov) @ torch.randn(N, generator=g, dtype=DT)).reshape(1, 1, H, W)
    y = op.measure(x, g)
    rec = DAPS(steps=40, langevin_steps=20)(GaussianDenoiser(mu, cov), y, op, samples=32, generator=g)
    assert torch.isfinite(rec.samples).all() and rec.samples.shape == (1, 32, 1, H, W)
    assert rec.nfe == 40 and "lipschitz" in rec.info
    a = _real_matrix(op, x)
    post_mu, _ = _posterior(mu, cov, a, _to_real(y)[0], 0.05**2 / 2)  # complex noise: σ²/2 per part
    err = torch.linalg.vector_norm(rec.mean.reshape(-1) - post_mu)
    assert err < torch.linalg.vector_norm(mu - post_mu), err
    cls = get_method("daps")
    assert cls is DAPS and cls.needs_prior and all(cls.serves(k) for k in ("mri", "image", "visibilities"))


def test_samplers_are_stateless():
    """Running a sampler leaves its configuration untouched (re-entrant: no run state on the dataclass)."""
    from ambient_imaging.sampling import DAPS, AmbientMMPS

    mu, cov = _gaussian(N, 12)
    g = torch.Generator().manual_seed(12)
    op = PixelMask(torch.rand(1, 1, H, W, generator=g) < 0.6, noise_sigma=0.05)
    y = op.measure(mu.reshape(1, 1, H, W), g)
    for sampler in (MMPS(steps=3), AmbientMMPS(steps=2), DPS(steps=3), ADPS(steps=3), DAPS(steps=3)):
        before = dict(vars(sampler))
        sampler(GaussianDenoiser(mu, cov), y, op, samples=2, mask_channels=1 if isinstance(sampler, ADPS) else 0,
                generator=g)
        assert vars(sampler) == before, type(sampler).__name__
