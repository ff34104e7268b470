"""Posterior sampling with any differentiable likelihood (closure phases, log closure amplitudes, ...).

DPS (Chung et al. 2023) needs only ``∇_x log p(y | x)``: each EDM Euler step from ``x_i`` is followed
by ``x_{i+1} ← x_{i+1} − ζ ∇_{x_i} L(s · D(x_i, σ_i)) / sqrt(L)`` where ``L = Σ_d α_d loss_d`` is the
weighted negative log-likelihood of :mod:`.likelihoods` evaluated on the denoised image mapped to
Jy/pixel by the flux scale ``s`` (``s = total_flux``, the ``"flux"`` normalisation: prior images
are sky / total flux). The ``1/sqrt(L)`` normalisation is DPS's ``ζ / ‖y − A x̂₀‖``.

``LikelihoodDPS(...)(net, y, op, samples=K)`` returns a
:class:`~ambient_imaging.sampling.Reconstruction` in **Jy/pixel** with ``info`` holding
``chi2_<product>`` of the posterior mean (lists, one per measurement) and per sample
(``chi2_samples``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.interferometry.compact import ZBL_UV_CUT, compact_flux_data

from .denoiser import ConditionedDenoiser, Reconstruction
from .likelihoods import make_likelihoods, parse_data_terms
from .rml import fit_warnings
from .schedule import edm_sigmas

__all__ = ["LikelihoodDPS"]


@dataclass
class LikelihoodDPS:
    """DPS driven by interferometric likelihoods (see the module docs).

    Args:
        data_terms: e.g. ``"cphase,logcamp"`` or ``{"cphase": 1, "logcamp": 1, "amp": 0.1}``.
        steps, sigma_min, sigma_max, rho: EDM schedule.
        zeta: DPS step size. total_flux: the compact flux in Jy (default estimated; intra-site
            baselines are rescaled to it: :func:`~ambient_imaging.interferometry.compact.compact_flux_data`).
        flux_per_image: the prior's total per image in prior units (1 for the ``"flux"`` rule).
        flux_sigma: fractional std of a Gaussian constraint on the total flux of ``s · D(x, σ)``
            (closure quantities do not constrain it; ``None`` disables it).
        zbl_uv_cut: intra-site baselines are shorter (wavelengths); ``None``: no compact-flux handling.
    """

    data_terms: dict[str, float] | str | None = None
    steps: int = 100
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    zeta: float = 1.0
    total_flux: float | None = None
    flux_per_image: float = 1.0
    flux_sigma: float | None = 0.05
    zbl_uv_cut: float | None = ZBL_UV_CUT
    progress: bool = False
    info_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.data_terms = parse_data_terms(self.data_terms)

    def __call__(self, net, y: Tensor, op, *, samples: int = 1, mask_channels: int = 0,
                 generator: torch.Generator | None = None) -> Reconstruction:
        t0 = time.perf_counter()
        outs, infos = [], []
        for b in range(y.shape[0]):
            ob = op if op.batch_size == 1 else op[b]
            x, info = self._single(net, y[b : b + 1], ob, samples, mask_channels, generator)
            outs.append(x)
            infos.append(info)
        rec = Reconstruction(torch.stack(outs), nfe=self.steps)
        for k in sorted({k for i in infos for k in i}):
            rec.info[k] = [i.get(k) for i in infos]
        rec.info.update(method="likelihood-dps", data_terms=dict(self.data_terms), zeta=self.zeta,
                        seconds=time.perf_counter() - t0, **self.info_extra)
        rec.info["warnings"] = fit_warnings({k: v for k, v in rec.info.items() if k.startswith("chi2_")
                                             and k != "chi2_samples"})
        return rec

    def _single(self, net, y: Tensor, op, k: int, mask_channels: int, generator) -> tuple[Tensor, dict]:
        y = y.to(torch.complex128)
        op = op.to(dtype=torch.float64)
        y, op, compact = compact_flux_data(y, op, self.total_flux, self.zbl_uv_cut)
        flux = compact.flux
        scale = flux / float(self.flux_per_image)
        liks = make_likelihoods(y, op, self.data_terms)
        den = ConditionedDenoiser(net, None, mask_channels)
        h, w = op.image_shape
        sig = edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)
        x = float(sig[0]) * torch.randn(k, 1, h, w, dtype=torch.float32, generator=generator)

        def nll(img: Tensor) -> Tensor:
            tot = img.new_zeros(img.shape[0])
            for name, lk in liks.items():
                tot = tot + self.data_terms[name] * lk.loss(img)
            if self.flux_sigma:
                tot = tot + 0.5 * ((img.sum(dim=(1, 2, 3)) - flux) / (self.flux_sigma * flux)) ** 2
            return tot

        for i in range(self.steps):
            t, t_next = float(sig[i]), float(sig[i + 1])
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                d = den(xg, t)
                loss = nll(d.to(torch.float64) * scale)
                norm = torch.sqrt(loss.clamp_min(1e-12))
                (grad,) = torch.autograd.grad(norm.sum(), xg)
            x = x + (t_next - t) * (x - d.detach()) / t
            x = (x - 2.0 * self.zeta * grad.to(x.dtype)).detach()
        img = x.to(torch.float64) * scale
        with torch.no_grad():
            mean = img.mean(0, keepdim=True)
            info = {f"chi2_{n}": float(lk.chi2(mean)[0]) for n, lk in liks.items()}
            info["chi2_samples"] = {f"chi2_{n}": lk.chi2(img).tolist() for n, lk in liks.items()}
        info["total_flux"] = flux
        info["compact_flux"] = compact.describe()
        info["all_zero"] = bool(float(mean.abs().max()) <= 0)
        return img, info
