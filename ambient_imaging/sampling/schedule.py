"""EDM noise schedule (Karras et al. 2022, Eq. 5) and noise helpers."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.operators.base import image_noise

__all__ = ["edm_sigmas", "image_noise", "sigma_range"]


def edm_sigmas(
    steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    append_zero: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """The ρ-schedule ``σ_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ``, ``i = 0..N-1``.

    Returns ``N + 1`` values with a trailing 0 (``append_zero=True``, the
    sampler's last step goes to the clean image) or the ``N`` values alone.
    """
    if steps < 1:
        raise ValueError(f"edm_sigmas: steps must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"edm_sigmas: need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    if steps == 1:
        s = torch.tensor([float(sigma_max)], dtype=dtype, device=device)
    else:
        i = torch.arange(steps, dtype=dtype, device=device)
        s = (sigma_max ** (1 / rho) + i / (steps - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    if append_zero:
        s = torch.cat([s, s.new_zeros(1)])
    return s


def sigma_range(prior: Any, sigma_min: float, sigma_max: float, *, noise_floor: bool = True) -> tuple[float, float]:
    """``[σ_min, σ_max]`` kept inside the range ``prior`` was trained for: σ_min ≥ the prior's σ_min
    (and, with ``noise_floor``, ≥ its data noise σ_n: a Tweedie prior is not trained below it),
    σ_max ≤ the prior's σ_max (never below σ_min). The one σ clamp of every sampler."""
    lo = max(float(sigma_min), float(getattr(prior, "sigma_min", 0.0) or 0.0))
    if noise_floor:
        lo = max(lo, float(getattr(prior, "noise_sigma", 0.0) or 0.0))
    hi = min(float(sigma_max), float(getattr(prior, "sigma_max", 0.0) or math.inf))
    return lo, max(hi, lo)
