"""Held-out denoising error: a generation metric that needs no Inception network.

For clean validation images ``x`` and each ``σ`` on a fixed grid,
``E ‖D(x + σ n, σ) − x‖² / numel``: lower is a better prior (evaluation
only: it needs clean images).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ambient_imaging.operators.base import image_noise, real_dtype_like

__all__ = ["SIGMA_GRID", "heldout_denoising_error"]

#: the fixed σ grid (images normalised to the σ_data = 0.5 range)
SIGMA_GRID: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@torch.no_grad()
def heldout_denoising_error(
    net,
    images: Tensor,
    sigmas: tuple[float, ...] = SIGMA_GRID,
    *,
    mask_channels: int = 0,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[float, float]:
    """Mean squared denoising error per σ (per real component) over ``images`` ``(N, C, H, W)``.

    ``mask_channels > 0`` (ambient priors) passes an all-ones mask, the
    full-observation conditioning. Noise is drawn from ``seed``, so two priors
    are compared on the same noise.
    """
    if images.ndim != 4:
        raise ValueError(f"heldout_denoising_error: images must be (N, C, H, W), got {tuple(images.shape)}")
    g = torch.Generator(device=images.device).manual_seed(seed)
    rdt = real_dtype_like(images.dtype)
    out = {}
    for s in sigmas:
        total, count = 0.0, 0
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size]
            xt = x + s * image_noise(tuple(x.shape), x.dtype, x.device, g)
            sig = torch.full((x.shape[0],), s, dtype=rdt, device=x.device)
            mask = None
            if mask_channels > 0:
                mask = torch.ones(x.shape[0], mask_channels, *x.shape[-2:], dtype=rdt, device=x.device)
            err = (net(xt, sig, mask) - x).abs() ** 2
            total += float(err.sum())
            count += x.numel() * (2 if x.is_complex() else 1)
        out[float(s)] = total / count
    return out
