"""EDM noise schedule (Karras et al. 2022, Eq. 5) and noise helpers."""

from __future__ import annotations

import torch
from torch import Tensor

from ambient_imaging.operators.base import image_noise

__all__ = ["edm_sigmas", "image_noise"]


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
