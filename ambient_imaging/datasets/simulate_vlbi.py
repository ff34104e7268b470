"""Simulated VLBI observations for tests and benchmarks: a crescent, thermal noise from the
stations' SEFDs, random station gains, written by our UVFITS writer.

Thermal noise per baseline (each of the real and imaginary parts, ehtim's ``blnoise``):
``σ_ij = sqrt(SEFD_i SEFD_j / (2 Δν τ)) / 0.88`` (0.88: 2-bit quantisation efficiency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ambient_imaging.interferometry.gains import StationGains, random_station_gains

__all__ = ["UAS", "crescent", "thermal_sigma", "EHTSimulation", "simulate_eht", "ring_diameter"]

UAS = math.pi / 180 / 3600e6  # one microarcsecond in radians
M87_RA_DEG = 187.70593075
M87_DEC_DEG = 12.39112331


def crescent(shape: tuple[int, int], pixel_rad: float, diameter_rad: float = 40 * UAS, width_frac: float = 0.25,
             flux: float = 0.6, asymmetry: float = 0.5, angle_deg: float = 180.0) -> Tensor:
    """A crescent (a ring brighter on one side) ``(H, W)`` in Jy/pixel, operator layout (east along
    +column), centred on the phase centre.

    Args:
        diameter_rad: ring diameter (the peak-brightness circle). width_frac: ring FWHM / diameter.
        flux: total flux (Jy). asymmetry: brightness contrast ``(1 + a cos(φ − angle))``.
        angle_deg: position angle of the bright side, east of north (180 = south, as M87*).
    """
    h, w = shape
    yy = (torch.arange(h, dtype=torch.float64) - h // 2)[:, None] * pixel_rad  # north
    xx = (torch.arange(w, dtype=torch.float64) - w // 2)[None, :] * pixel_rad  # east
    r = torch.sqrt(xx**2 + yy**2)
    sw = width_frac * diameter_rad / (2 * math.sqrt(2 * math.log(2)))
    ring = torch.exp(-0.5 * ((r - diameter_rad / 2) / sw) ** 2)
    phi = torch.atan2(xx, yy)  # position angle east of north
    ring = ring * (1 + asymmetry * torch.cos(phi - math.radians(angle_deg)))
    ring = ring.clamp_min(0)
    return ring / ring.sum() * flux


def thermal_sigma(sefd_jy: np.ndarray, pairs: np.ndarray, bandwidth_hz: float = 2e9, tint_s: float = 60.0,
                  efficiency: float = 0.88) -> np.ndarray:
    """Per-component noise σ ``(M,)`` of each visibility from the stations' SEFDs (NaN SEFDs take the median)."""
    sefd = np.asarray(sefd_jy, np.float64).copy()
    if np.isnan(sefd).all():
        raise ValueError("thermal_sigma: no station has an SEFD")
    sefd[np.isnan(sefd)] = np.nanmedian(sefd)
    p = np.asarray(pairs, np.int64)
    return np.sqrt(sefd[p[:, 0]] * sefd[p[:, 1]] / (2 * bandwidth_hz * tint_s)) / efficiency


@dataclass
class EHTSimulation:
    """A simulated gain-corrupted observation: ``vis`` (a :class:`~ambient_imaging.datasets.Visibilities`),
    the truth image ``(H, W)`` (Jy/pixel, operator layout), its pixel scale and the gains applied."""

    vis: object
    truth: Tensor
    pixel_rad: float
    gains: StationGains | None
    path: Path | None = None


def simulate_eht(
    shape: tuple[int, int] = (64, 64),
    fov_rad: float = 160 * UAS,
    image: Tensor | None = None,
    n_times: int = 40,
    hour_angle_range_h: tuple[float, float] = (-5.0, 5.0),
    frequency_hz: float = 227e9,
    declination_deg: float = M87_DEC_DEG,
    tint_s: float = 60.0,
    bandwidth_hz: float = 2e9,
    amp_error: float = 0.1,
    random_phases: bool = True,
    seed: int = 0,
    path: str | Path | None = None,
    array: str = "eht2017",
    extended_flux: float = 0.0,
    extended_fwhm_rad: float = 1000 * UAS,
) -> EHTSimulation:
    """EHT 2017 Earth-rotation synthesis of a crescent (40 µas, 0.6 Jy unless ``image`` is given) with
    SEFD thermal noise and random station gains (uniform phases, ``±amp_error`` amplitudes), written
    to ``path`` as UVFITS by our writer when given (then read back, so ``vis`` is what a user reads).

    ``extended_flux`` (Jy) adds a circular Gaussian of FWHM ``extended_fwhm_rad`` (default 1 mas, far
    outside the field) at the phase centre: emission that only the intra-site baselines see (M87's
    jet; in 2017 ALMA–APEX saw ~1.1 Jy, the compact ring ~0.6 Jy). ``truth`` stays the compact image."""
    from ambient_imaging.datasets.uvfits import read_uvfits, simulate_observation, write_uvfits
    from ambient_imaging.operators import earth_rotation_uv, load_array

    layout = load_array(array)
    pixel = fov_rad / shape[1]
    truth = crescent(shape, pixel) if image is None else torch.as_tensor(image, dtype=torch.float64)
    cov = earth_rotation_uv(layout, declination_deg, hour_angle_range_h, n_times=n_times, frequency_hz=frequency_hz)
    sigma = thermal_sigma(layout.sefd_jy, cov.pairs.numpy(), bandwidth_hz, tint_s)
    g = torch.Generator().manual_seed(int(seed))
    vis = simulate_observation(truth, pixel, cov, sigma, generator=g, source="M87", ra_deg=M87_RA_DEG,
                               layout=layout)
    if extended_flux > 0:
        uvr = np.hypot(vis.u, vis.v)
        ext = extended_flux * np.exp(-((np.pi * extended_fwhm_rad * uvr) ** 2) / (4 * math.log(2)))
        vis = replace(vis, vis=vis.vis + ext)
    gains = None
    if amp_error > 0 or random_phases:
        st = torch.from_numpy(np.stack([vis.ant1, vis.ant2], 1))
        times = torch.from_numpy((vis.time - vis.time.min()) * 86400.0)
        gains = random_station_gains(st, times, amp_error, "uniform" if random_phases else "none", generator=g)
        f = gains.factor().numpy()
        # gains multiply signal and noise alike; σ's scale with |g_i g_j| (as after a-priori calibration)
        vis = replace(vis, vis=vis.vis * f, sigma=vis.sigma * np.abs(f))
    if path is not None:
        path = Path(path)
        write_uvfits(path, vis, telescope="EHT", history=("simulated by ambient_imaging.interferometry",))
        vis = read_uvfits(path)
    return EHTSimulation(vis, truth, pixel, gains, path)


def ring_diameter(img: Tensor | np.ndarray, pixel_rad: float, search_rad: float = 10 * UAS,
                  n_angles: int = 36) -> float:
    """Ring diameter (radians) of an image (operator layout), REx-style:
    :func:`ambient_imaging.metrics.ring.ring_metrics` (``ring_diameter_uas`` in radians)."""
    from ambient_imaging.metrics.ring import ring_metrics

    m = ring_metrics(img, pixel_rad, n_rays=n_angles, search_uas=search_rad / UAS)
    return m.ring_diameter_uas * UAS
