"""The key scientific checks: on Gaussian toys where the optimal denoisers have closed forms,
networks trained from corrupted data only learn the right thing.

* Ambient (Daras et al. 2023, Thm 4.1): trained with :class:`AmbientLoss` on masked data, the
  denoiser approaches ``E[x | Ã x_t, Ã] = Σ[:, S] (Σ[S, S] + σ² I)⁻¹ x_t[S]`` (S = rows of Ã);
  trained with :class:`NaiveLoss` it does not.
* Ambient Tweedie (2404.10177): trained on noisy data at σ_n, for σ > σ_n the denoiser matches
  the CLEAN-data denoiser ``Σ (Σ + σ² I)⁻¹ x_t`` and not the noisy-data one
  ``(Σ + σ_n² I)(Σ + σ² I)⁻¹ x_t``.

Data: 4-pixel images ``(B, 1, 1, 4)`` from N(0, Σ) with ``Σ_ij = 0.25 · 0.85^|i-j|``. The backbone
is a tiny hypernetwork: an MLP of (mask, c_noise) outputs a 4×4 matrix applied to the scaled
input, so the linear optimal denoisers are representable; it implements the Backbone protocol.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.networks import EDMPrecond
from ambient_imaging.operators import GaussianNoise, PixelMask
from ambient_imaging.training.losses import AmbientLoss, AmbientTweedieLoss, NaiveLoss

N = 4
IDX = torch.arange(N, dtype=torch.float64)
SIGMA = 0.25 * 0.85 ** (IDX[:, None] - IDX[None, :]).abs()
CHOL = torch.linalg.cholesky(SIGMA)
P_MISSING = 0.3
DELTA = 0.2
STEPS = 1500


class HyperLinear(nn.Module):
    """Backbone: ``F(x, c) = W(mask, c) x_img + b(mask, c)``; W, b from a small MLP."""

    stride = 1

    def __init__(self, mask_channels: int, hidden: int = 64):
        super().__init__()
        self.in_channels = 1 + mask_channels
        self.out_channels = 1
        self.mask_channels = mask_channels
        self.freqs = nn.Parameter(torch.linspace(0.5, 4.0, 6), requires_grad=False)
        self.mlp = nn.Sequential(
            nn.Linear(N * mask_channels + 13, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, N * N + N),
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        img = x[:, :1].reshape(b, N)
        c = c_noise.reshape(b, 1)
        feats = [c, torch.sin(c * self.freqs), torch.cos(c * self.freqs)]
        if self.mask_channels:
            feats.append(x[:, 1:].reshape(b, -1))
        out = self.mlp(torch.cat(feats, dim=1))
        w, bias = out[:, : N * N].reshape(b, N, N), out[:, N * N :]
        return (torch.einsum("bij,bj->bi", w, img) + bias).reshape(b, 1, 1, N)


def _clean(b: int, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(b, N, dtype=torch.float64, generator=g)
    return (z @ CHOL.T).float().reshape(b, 1, 1, N)


def _mask(b: int, g: torch.Generator, p: float) -> torch.Tensor:
    return torch.rand(b, 1, 1, N, generator=g) >= p


def _train(net: EDMPrecond, loss_fn, make_batch, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        loss = loss_fn(net, make_batch(g), g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _analytic_masked(xt: torch.Tensor, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x | Ã x_t, Ã] for x ~ N(0, Σ): Σ_{:,S} (Σ_SS + σ² I)⁻¹ x_t[S]."""
    out = torch.zeros(xt.shape[0], N, dtype=torch.float64)
    for i in range(xt.shape[0]):
        s = m[i].reshape(N)
        if s.any():
            k = SIGMA[:, s] @ torch.linalg.inv(SIGMA[s][:, s] + sigma**2 * torch.eye(int(s.sum()), dtype=torch.float64))
            out[i] = k @ xt[i].reshape(N)[s].double()
    return out


def test_ambient_loss_learns_analytic_masked_denoiser():
    torch.manual_seed(0)
    t0 = time.perf_counter()

    def make_batch(g):
        x = _clean(256, g)
        m = _mask(256, g, P_MISSING)
        op = PixelMask(m)
        return MeasurementBatch(y=op(x), op=op, scale=torch.ones(256))

    results = {}
    for name, loss in (("ambient", AmbientLoss(delta=DELTA)), ("naive", NaiveLoss(mask="operator"))):
        torch.manual_seed(1)
        net = EDMPrecond(HyperLinear(mask_channels=1), image_channels=1, mask_channels=1)
        _train(net, loss, make_batch, steps=STEPS, seed=2)
        # evaluate on inputs Ã x_t with Ã drawn as in training (A's mask, further subsampled)
        g = torch.Generator().manual_seed(3)
        errs, scale = [], []
        with torch.no_grad():
            for sigma in (0.1, 0.3, 0.6, 1.0):
                x = _clean(2000, g)
                m = _mask(2000, g, P_MISSING) & _mask(2000, g, DELTA)
                xt = (x + sigma * torch.randn(x.shape, generator=g)) * m
                d = net(xt, torch.full((2000,), sigma), mask=m.float()).reshape(2000, N).double()
                ref = _analytic_masked(xt, m, sigma)
                errs.append(((d - ref) ** 2).mean())
                scale.append((ref**2).mean())
        results[name] = (float(torch.stack(errs).mean()), float(torch.stack(scale).mean()))
    amb, naive = results["ambient"][0], results["naive"][0]
    print(f"toy ambient: MSE to analytic ambient={amb:.2e} naive={naive:.2e} (signal {results['ambient'][1]:.2e}) "
          f"in {time.perf_counter() - t0:.1f}s")
    assert amb < 0.05 * results["ambient"][1]  # within 5% of the analytic output energy
    assert amb < naive / 10


def test_tweedie_loss_learns_clean_not_noisy_denoiser():
    torch.manual_seed(0)
    sigma_n = 0.5
    t0 = time.perf_counter()

    def make_batch(g):
        x = _clean(256, g)
        op = GaussianNoise(sigma_n)
        return MeasurementBatch(y=op.measure(x, g), op=op, scale=torch.ones(256))

    net = EDMPrecond(HyperLinear(mask_channels=0), image_channels=1)
    _train(net, AmbientTweedieLoss(sigma_n), make_batch, steps=500, seed=2)
    g = torch.Generator().manual_seed(3)
    eye = torch.eye(N, dtype=torch.float64)
    to_clean, to_noisy, gap = [], [], []
    with torch.no_grad():
        for sigma in (0.6, 0.8, 1.2, 2.0):
            x = _clean(2000, g)
            xt = x + sigma * torch.randn(x.shape, generator=g)
            d = net(xt, torch.full((2000,), sigma)).reshape(2000, N).double()
            v = xt.reshape(2000, N).double()
            clean = v @ (SIGMA @ torch.linalg.inv(SIGMA + sigma**2 * eye)).T
            noisy = v @ ((SIGMA + sigma_n**2 * eye) @ torch.linalg.inv(SIGMA + sigma**2 * eye)).T
            to_clean.append(((d - clean) ** 2).mean())
            to_noisy.append(((d - noisy) ** 2).mean())
            gap.append(((clean - noisy) ** 2).mean())
    c, n, g_ = (float(torch.stack(t).mean()) for t in (to_clean, to_noisy, gap))
    print(f"toy tweedie: MSE to clean denoiser={c:.2e}, to noisy denoiser={n:.2e}, clean-vs-noisy={g_:.2e} "
          f"in {time.perf_counter() - t0:.1f}s")
    assert c < 0.1 * g_
    assert c < n / 5
