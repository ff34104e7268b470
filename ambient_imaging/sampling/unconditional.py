"""Unconditional sampling from a diffusion prior.

* :class:`EDMSampler`: Karras et al. 2022, Algorithm 2 (ρ-schedule, 2nd-order Heun
  with an Euler last step, optional stochastic churn) or plain Euler.
* :class:`FixedMaskSampler`: for ambient (masked) priors. One random
  ``Ã`` at the training survival rate is drawn per sample and kept for every
  step; the network sees ``Ã x_t`` and ``Ã``'s mask (Daras et al. 2023, Sec. 4).
* :class:`TruncatedSampler`: for Tweedie priors trained on noisy data at
  ``σ_n``: run the ODE down to ``σ_n`` and return ``D(x, σ_n)`` (Daras et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ambient_imaging.operators import PixelMask, dust_mask

from .denoiser import ConditionedDenoiser, Denoiser, Reconstruction
from .schedule import edm_sigmas, image_noise

__all__ = ["edm_loop", "EDMSampler", "FixedMaskSampler", "TruncatedSampler"]

DenoiseFn = Callable[[Tensor, float], Tensor]


def edm_loop(
    denoise: DenoiseFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    heun: bool = True,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "sampling",
) -> Tensor:
    """Integrate the probability-flow ODE ``dx/dσ = (x - D(x, σ))/σ`` along ``sigmas``.

    ``x`` is the starting point at ``sigmas[0]`` (already scaled). ``denoise`` is any
    estimate of ``E[x_0 | x_t]`` (a prior, or a posterior mean for guided samplers).
    Heun's correction is skipped on a step to ``σ = 0`` (Karras et al. 2022, Alg. 2).
    """
    n = len(sigmas) - 1
    for i in tqdm(range(n), desc=desc, disable=not progress, leave=False):
        t, t_next = float(sigmas[i]), float(sigmas[i + 1])
        gamma = min(s_churn / n, math.sqrt(2) - 1) if (s_churn > 0 and s_tmin <= t <= s_tmax) else 0.0
        t_hat = t + gamma * t
        if gamma > 0:
            x = x + math.sqrt(t_hat**2 - t**2) * s_noise * image_noise(x.shape, x.dtype, x.device, generator)
        d = (x - denoise(x, t_hat)) / t_hat
        x_next = x + (t_next - t_hat) * d
        if heun and t_next > 0:
            d2 = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x + (t_next - t_hat) * 0.5 * (d + d2)
        x = x_next
    return x


@dataclass
class EDMSampler:
    """Unconditional EDM sampler (Karras et al. 2022, Alg. 2).

    Defaults: 18 steps, σ ∈ [0.002, 80], ρ = 7, Heun (NFE = 2·steps − 1),
    deterministic (``s_churn = 0``). ``heun=False`` gives Euler (NFE = steps).
    """

    steps: int = 18
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    heun: bool = True
    s_churn: float = 0.0
    progress: bool = False

    def sigmas(self, device=None) -> Tensor:
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho, device=device)

    def run(self, denoise: ConditionedDenoiser, shape: tuple[int, ...], dtype: torch.dtype,
            device: torch.device | str | None, generator: torch.Generator | None) -> Tensor:
        sig = self.sigmas()
        x = float(sig[0]) * image_noise(tuple(shape), dtype, device, generator)
        return edm_loop(denoise, x, sig, heun=self.heun, s_churn=self.s_churn, generator=generator,
                        progress=self.progress)

    def sample(
        self,
        net: Denoiser,
        shape: tuple[int, ...],
        *,
        mask_channels: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Reconstruction:
        """Draw ``shape[0]`` images of shape ``shape[1:]`` = ``(C, H, W)``.

        Returns a :class:`Reconstruction` with samples ``(N, 1, C, H, W)``.
        """
        den = ConditionedDenoiser(net, None, mask_channels)
        with torch.no_grad():
            x = self.run(den, shape, dtype, device, generator)
        return Reconstruction(x[:, None], nfe=den.nfe, info={"sampler": type(self).__name__})


@dataclass
class FixedMaskSampler(EDMSampler):
    """Fixed-mask sampler for ambient inpainting priors (Daras et al. 2023, Sec. 4).

    Each sample gets one random pixel mask ``Ã`` with survival probability
    ``(1 - corruption)(1 - delta)`` (the training distribution of ``Ã``), kept
    for all steps; the network is called with ``Ã x_t`` and ``Ã.mask_channels()``.
    """

    corruption: float = 0.0
    delta: float = 0.1
    mask_channels_shared: bool = True

    def sample(
        self,
        net: Denoiser,
        shape: tuple[int, ...],
        *,
        mask_channels: int = 1,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Reconstruction:
        n, c, h, w = shape
        missing = 1.0 - (1.0 - self.corruption) * (1.0 - self.delta)
        mc = 1 if self.mask_channels_shared or mask_channels == 1 else c
        mask = dust_mask((n, mc, h, w), missing, generator=generator, device=device)
        den = ConditionedDenoiser(net, PixelMask(mask))
        with torch.no_grad():
            x = self.run(den, shape, dtype, device, generator)
        info = {"sampler": "FixedMaskSampler", "survival": 1.0 - missing}
        return Reconstruction(x[:, None], nfe=den.nfe, info=info)


@dataclass
class TruncatedSampler(EDMSampler):
    """Truncated sampler for Tweedie priors learned from noisy data at ``sigma_n``.

    Runs the ODE from ``sigma_max`` down to ``sigma_n`` (ρ-schedule on
    ``[sigma_n, sigma_max]``, Heun throughout) and returns ``D(x, σ_n)``, the
    MMSE estimate the prior is trustworthy for (Daras et al. 2024).
    """

    sigma_n: float = 0.1

    def sigmas(self, device=None) -> Tensor:
        if self.sigma_n <= 0:
            raise ValueError(f"TruncatedSampler: sigma_n must be > 0, got {self.sigma_n}")
        return edm_sigmas(self.steps, self.sigma_n, self.sigma_max, self.rho, append_zero=False, device=device)

    def run(self, denoise, shape, dtype, device, generator) -> Tensor:
        x = super().run(denoise, shape, dtype, device, generator)
        return denoise(x, self.sigma_n)
