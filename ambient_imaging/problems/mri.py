"""Multi-coil Cartesian MRI problems: one builder for training items and reconstructions.

:func:`mri_problem` turns one k-space slice (and what its file says about it) into a
:class:`~ambient_imaging.problems.Problem`: the measured k-space, a ``MultiCoilMRI`` operator
whose protected rows are the ACS lines, the noise level, coil maps calibrated from the
*measured* data, and — for a fully sampled slice — the reference image. The training dataset
(:class:`~ambient_imaging.datasets.FastMRISlices`) and ``ambient-imaging reconstruct`` both
call it, so masks, ACS, noise and normalisation cannot drift apart between train and test.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .masks import MaskSpec
from .normalisation import Normalisation
from .problem import Problem

__all__ = [
    "mri_problem",
    "derive_line_mask",
    "acs_from_lines",
    "calibration_width",
    "estimate_coil_maps",
    "estimate_noise_sigma",
]

#: widest ESPIRiT calibration block used by default
MAX_CALIBRATION = 24


def derive_line_mask(kspace: np.ndarray) -> np.ndarray:
    """Sampled columns ``(W,)``: those holding any non-zero value (over coils and rows)."""
    k = np.abs(np.asarray(kspace))
    return k.reshape(-1, k.shape[-2], k.shape[-1]).max(axis=(0, 1)) > 0


def acs_from_lines(lines: np.ndarray) -> np.ndarray:
    """The contiguous block of sampled columns around the centre ``W // 2`` (the ACS), ``(W,)`` bool."""
    lines = np.asarray(lines, dtype=bool)
    w = lines.shape[-1]
    acs = np.zeros(w, dtype=bool)
    c = w // 2
    if not lines[c]:
        return acs
    lo, hi = c, c
    while lo - 1 >= 0 and lines[lo - 1]:
        lo -= 1
    while hi + 1 < w and lines[hi + 1]:
        hi += 1
    acs[lo : hi + 1] = True
    return acs


def calibration_width(acs: np.ndarray, cap: int = MAX_CALIBRATION) -> int:
    """Largest ``c <= cap`` whose centred block ``[W//2 - c//2, W//2 - c//2 + c)`` (ESPIRiT's) lies in the ACS."""
    acs = np.asarray(acs, dtype=bool)
    w = acs.shape[-1]
    for c in range(min(int(cap), int(acs.sum())), 0, -1):
        lo = w // 2 - c // 2
        if lo >= 0 and lo + c <= w and acs[lo : lo + c].all():
            return c
    return 0


def estimate_coil_maps(kspace: np.ndarray | Tensor, acs: np.ndarray, cap: int = MAX_CALIBRATION,
                       where: str = "k-space") -> np.ndarray:
    """ESPIRiT maps ``(Nc, H, W)`` complex64 from the ACS block of *measured* k-space ``(Nc, H, W)``.

    The calibration width is the centred part of the ACS (at most ``cap``); the kernel fits small
    blocks (``max(3, min(6, width // 2))``). If every eigenvalue falls below the crop threshold
    (maps all zero: too little calibration data), it retries without cropping, with a warning.
    ``where`` names the data in messages (a file and slice).
    """
    from ambient_imaging.operators import espirit_maps

    k = kspace.detach().cpu() if isinstance(kspace, Tensor) else torch.from_numpy(np.ascontiguousarray(kspace))
    k = k.to(torch.complex64)
    calib = calibration_width(acs, min(int(cap), k.shape[-2]))
    if calib < 6:
        raise ValueError(
            f"{where}: only {int(np.asarray(acs).sum())} contiguous centre (ACS) lines; ESPIRiT needs at least 6 "
            "to estimate coil sensitivities from the measured data"
        )
    kw = max(3, min(6, calib // 2))
    try:
        maps = espirit_maps(k, calib_width=calib, kernel_width=kw).numpy()
        if not np.any(maps):
            warnings.warn(f"{where}: ESPIRiT maps empty with crop=0.95 ({calib} ACS lines); using crop=0",
                          RuntimeWarning, stacklevel=2)
            maps = espirit_maps(k, calib_width=calib, kernel_width=kw, crop=0.0).numpy()
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
        raise ValueError(f"{where}: ESPIRiT calibration failed ({err})") from err
    return maps.astype(np.complex64)


def estimate_noise_sigma(k: np.ndarray, lines: np.ndarray) -> float:
    """Robust complex noise std ``σ`` (``E|n|² = σ²``) of ``(Nc, H, W)`` k-space.

    Uses the outermost ``H/32`` readout rows (top and bottom) of the sampled columns ``lines``
    (``(W,)`` bool), where k-space holds (almost) only noise: ``σ = √2 · 1.4826 · median|Re, Im|``
    (MAD of the real and imaginary parts, each ``N(0, σ²/2)``). An over-estimate when those rows
    still hold signal (no readout oversampling); 0 when no column is sampled.
    """
    h = k.shape[-2]
    edge = max(1, h // 32)
    lines = np.asarray(lines, dtype=bool)
    region = np.concatenate([k[:, :edge, lines], k[:, h - edge :, lines]], axis=1)
    re = np.concatenate([region.real.ravel(), region.imag.ravel()])
    return float(np.sqrt(2.0) * 1.4826 * np.median(np.abs(re))) if re.size else 0.0


def _lines_of(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    return m if m.ndim == 1 else m.all(axis=0)


def mri_problem(
    kspace: np.ndarray,
    *,
    stored_mask: np.ndarray | None = None,
    mask_spec: MaskSpec | None = None,
    key: Any = None,
    band: tuple[int, int] | None = None,
    maps: np.ndarray | None = None,
    noise_sigma: float | None = None,
    reference: bool = True,
    normalisation: Normalisation | None = None,
    where: str = "k-space",
    meta: dict[str, Any] | None = None,
) -> Problem:
    """The reconstruction / training problem of one k-space slice ``(Nc, H, W)``.

    Args:
        kspace: complex k-space of the slice as stored (zeros where not acquired).
        stored_mask: the file's mask, ``(W,)`` columns or ``(H, W)`` (``None``: the non-zero columns).
        mask_spec: undersampling of a *fully sampled* slice (``None``: keep it fully sampled).
            An undersampled slice always keeps its own mask (``meta["notes"]`` says so).
        key: the item's identity for :meth:`MaskSpec.sample` (e.g. ``"file.h5:12"``).
        band: acquired columns ``(lo, hi)`` of zero-padded k-space; columns outside are padding,
            not missed lines (``None``: all columns).
        maps: coil maps ``(Nc, H, W)`` (e.g. a cache); ``None``: ESPIRiT on the measured data's ACS.
        noise_sigma: complex noise std of k-space in file units (``None``: :func:`estimate_noise_sigma`).
        reference: attach the fully sampled SENSE-1 image (and its RSS in ``extras``) when available.
        normalisation: the data's normalisation (default: ``Normalisation("measurement")``).
        where: names the slice in messages.

    Returns:
        a :class:`Problem` with ``y (1, Nc, H, W)`` complex64 (file units), ``op`` a
        ``MultiCoilMRI`` with ``acs`` (protected rows), ``reference (1, 1, H, W)`` or ``None``,
        and ``meta`` (``acceleration`` over the band, ``acs_lines``, ``noise_sigma``,
        ``fully_sampled``, ``retrospective``, ``band``, ``mask_spec``, ``notes``).
    """
    from ambient_imaging.operators import MultiCoilMRI, ifft2c, rss

    k = np.asarray(kspace)
    if k.ndim == 2:
        k = k[None]
    if k.ndim != 3 or not np.iscomplexobj(k):
        raise ValueError(f"{where}: k-space must be complex (coils, H, W), got {k.dtype} {k.shape}")
    if not np.isfinite(k.view(np.float32 if k.dtype == np.complex64 else np.float64)).all():
        raise ValueError(f"{where}: k-space holds NaN or Inf values")
    nc, h, w = k.shape
    lo, hi = (0, w) if band is None else (int(band[0]), int(band[1]))
    if not 0 <= lo < hi <= w:
        raise ValueError(f"{where}: acquired band {band} is not inside the {w} columns")
    in_band = np.zeros(w, dtype=bool)
    in_band[lo:hi] = True
    notes: list[str] = []
    stored = None if stored_mask is None else np.asarray(stored_mask, dtype=bool)
    lines_file = derive_line_mask(k) if stored is None else _lines_of(stored)
    fully = bool(lines_file[in_band].all()) and (stored is None or stored.ndim == 1 or bool(stored.all()))
    retro = fully and mask_spec is not None
    if retro:
        m2, a2 = mask_spec.sample_with_acs((h, w), key, (lo, hi) if band is not None else None)
        mask2d, acs_lines = m2.numpy(), a2.numpy().all(axis=0)
    elif fully:
        mask2d = np.broadcast_to(in_band, (h, w)).copy()
        acs_lines = in_band.copy()
    else:
        if mask_spec is not None:
            notes.append(f"{where} is undersampled already: its own mask is used, not {mask_spec.describe(w)}")
        mask2d = (stored if stored is not None and stored.ndim == 2 else np.broadcast_to(lines_file, (h, w)))
        mask2d = mask2d & in_band[None]
        acs_lines = acs_from_lines(_lines_of(mask2d))
    line_layout = bool(np.all(mask2d == mask2d[:1]))
    lines = mask2d[0] if line_layout else mask2d.any(axis=0)
    y = (k * mask2d[None]).astype(np.complex64)
    if nc == 1:
        maps_t = torch.ones(1, 1, h, w, dtype=torch.complex64)
    else:
        if maps is None:
            maps = estimate_coil_maps(y, acs_lines, where=where)
        maps_t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.complex64))[None]
    sigma = estimate_noise_sigma(k, lines) if noise_sigma is None else float(noise_sigma)
    mask_t = torch.from_numpy(np.ascontiguousarray(lines if line_layout else mask2d))[None]
    acs_t = None
    if acs_lines.any():
        acs_t = torch.from_numpy(acs_lines)[None] if line_layout else torch.from_numpy(
            np.ascontiguousarray(np.broadcast_to(acs_lines, (h, w)) & mask2d))[None]
    op = MultiCoilMRI(maps_t, mask_t, noise_sigma=sigma, acs=acs_t)
    ref = None
    extras: dict[str, Tensor] = {}
    if reference and fully:
        coil = ifft2c(torch.from_numpy(k.astype(np.complex64)))
        ref = (maps_t[0].conj() * coil).sum(0, keepdim=True)[None] if nc > 1 else coil[None]
        extras["rss"] = rss(coil, dim=0)[None, None]
    n_band = int(in_band.sum())
    info = {
        "shape": (h, w),
        "coils": nc,
        "band": (lo, hi),
        "acceleration": float(n_band * h / max(int((mask2d & in_band[None]).sum()), 1)),
        "acs_lines": int(acs_lines.sum()),
        "noise_sigma": sigma,
        "fully_sampled": fully,
        "retrospective": retro,
        "mask_spec": mask_spec.to_dict() if retro else None,
        "notes": notes,
    }
    info.update(meta or {})
    return Problem(torch.from_numpy(y)[None], op, normalisation or Normalisation("measurement"), ref, info,
                   kind="mri", extras=extras)
