"""Total flux from the shortest baselines, and the Jy/pixel normalisation of sky priors.

A sky image ``I`` in **Jy/pixel** has total flux ``F = Σ I = V(0, 0)``. Interferometers do not
measure ``u = v = 0``, but the shortest baselines (EHT: ALMA–APEX, SMA–JCMT) see a compact
source unresolved, so ``|V| ≈ F`` there. :func:`estimate_total_flux` takes the median amplitude
on the shortest baselines (robust to ±10 % amplitude gains and to noise).

**Normalisation rule** ``"total_flux"`` (stored with interferometric priors): prior images are
``x = k · I / F`` (``k`` the prior's ``flux_per_image``, its images' common total in prior units,
chosen so that typical peaks are ≈ 1), i.e. the reconstruction scale is ``s = F / k`` and
``I = s · x`` in Jy/pixel. The pixel scale in radians is stored with it (:func:`flux_rule`,
:func:`parse_flux_rule`); a data set imaged at another pixel scale has a different ``k``
per pixel, which :func:`check_pixel_scale` reports.
"""

from __future__ import annotations

import math
import re

import torch
from torch import Tensor

__all__ = [
    "estimate_total_flux",
    "FLUX_RULE",
    "flux_rule",
    "parse_flux_rule",
    "flux_scale",
    "check_pixel_scale",
    "gaussian_image",
]

FLUX_RULE = "total_flux"


def estimate_total_flux(y: Tensor, op, ratio: float = 1.5, min_points: int = 3) -> Tensor:
    """Total flux ``(B,)`` (Jy, the data's units) from the shortest valid baselines.

    The median ``|V|`` over the valid visibilities with ``|uv| ≤ ratio · |uv|_min`` (at least the
    ``min_points`` shortest). Exact for sources the shortest baselines do not resolve; an
    underestimate otherwise (then give the flux yourself).

    Args:
        y: ``(B, M)`` visibilities. op: an :class:`~ambient_imaging.operators.Interferometer`
            (rows ``uv``) or a :class:`~ambient_imaging.operators.GriddedInterferometer`.
    """
    if hasattr(op, "uv_grid"):  # gridded: rows are uv cells (B, 1, H, W)
        uvr = op.uv_grid().norm(dim=-1).reshape(1, -1)
        vals = y.reshape(y.shape[0], -1)
        mask = op.mask.reshape(op.mask.shape[0], -1)
    else:
        uvr = op.uv.to(torch.float64).norm(dim=-1)
        vals = y
        mask = op.mask
    b = vals.shape[0]
    uvr = torch.broadcast_to(uvr.to(vals.device), (b, uvr.shape[-1]))
    mask = torch.broadcast_to(mask.to(vals.device), (b, mask.shape[-1]))
    out = []
    for i in range(b):
        r = uvr[i][mask[i]]
        a = vals[i][mask[i]].abs().to(torch.float64)
        if r.numel() == 0:
            raise ValueError("estimate_total_flux: no valid visibilities")
        rmin = float(r.min())
        sel = r <= ratio * rmin if rmin > 0 else r <= r.min()
        if int(sel.sum()) < min_points:
            sel = torch.zeros_like(sel)
            sel[torch.argsort(r)[: min(min_points, r.numel())]] = True
        out.append(a[sel].median())
    return torch.stack(out)


def flux_rule(flux_per_image: float, pixel_rad: float) -> str:
    """The normalisation string stored with an interferometric prior (machine-readable)."""
    return (f"{FLUX_RULE} k={flux_per_image:.8g} pixel_rad={pixel_rad:.8g}: sky images in Jy/pixel divided by the "
            "total flux (times k; a reconstruction is scale * x with scale = total_flux / k)")


def parse_flux_rule(rule: str) -> tuple[float, float] | None:
    """``(k, pixel_rad)`` of a :func:`flux_rule` string, ``None`` for other rules."""
    mt = re.match(rf"\s*{FLUX_RULE}\s+k=([0-9.eE+-]+)\s+pixel_rad=([0-9.eE+-]+)", rule or "")
    if not mt:
        return None
    return float(mt.group(1)), float(mt.group(2))


def flux_scale(y: Tensor, op, flux_per_image: float = 1.0, total_flux: float | Tensor | None = None) -> Tensor:
    """The scale ``s = F / k`` ``(B,)`` that maps prior units to Jy/pixel (``F`` estimated unless given)."""
    f = estimate_total_flux(y, op) if total_flux is None else torch.as_tensor(total_flux, dtype=torch.float64)
    f = f.reshape(-1).to(torch.float64)
    if not (torch.isfinite(f).all() and (f > 0).all()):
        raise ValueError(f"flux_scale: the total flux must be positive and finite, got {f.tolist()}")
    return f / float(flux_per_image)


def check_pixel_scale(prior_pixel_rad: float, pixel_rad: float, rtol: float = 0.05) -> str | None:
    """A message when imaging at a pixel scale other than the prior's (``None`` when they agree)."""
    if prior_pixel_rad <= 0 or abs(pixel_rad / prior_pixel_rad - 1) <= rtol:
        return None
    uas = 180 / math.pi * 3600e6
    return (f"the prior was trained at {prior_pixel_rad * uas:.4g} µas/pixel but the data are imaged at "
            f"{pixel_rad * uas:.4g} µas/pixel: its sources have another size in pixels; image with "
            f"--fov {prior_pixel_rad * uas:.4g}uas per pixel × npix, or retrain")


def gaussian_image(shape: tuple[int, int], pixel_rad: float, fwhm_rad: float, total_flux: float = 1.0,
                   dtype: torch.dtype = torch.float64) -> Tensor:
    """A circular Gaussian ``(1, 1, H, W)`` at the phase centre (operator layout) with the given total."""
    h, w = shape
    yy = (torch.arange(h, dtype=dtype) - h // 2) * pixel_rad
    xx = (torch.arange(w, dtype=dtype) - w // 2) * pixel_rad
    s = fwhm_rad / (2 * math.sqrt(2 * math.log(2)))
    g = torch.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * s * s))
    return (g / g.sum() * total_flux)[None, None]
