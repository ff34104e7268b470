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
    "estimate_map_sets",
    "calibration_block",
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


def calibration_block(acs: np.ndarray, height: int, coils: int, cap: int = MAX_CALIBRATION
                      ) -> tuple[tuple[int, int], int]:
    """The ESPIRiT calibration block ``(rows, columns)`` and kernel width for measured line data.

    Columns: :func:`calibration_width` of the ACS (at most ``cap``). Rows: ``max(24, columns)``
    readout rows (capped at ``height``): the readout is fully sampled, so a narrow ACS (10 lines at
    8 % of 126 columns) still calibrates on 24 rows. Kernel: the widest ``3 <= k <= min(6, columns // 2)``
    whose calibration matrix has at least as many blocks as unknowns (``blocks >= coils·k²``): a
    kernel too wide for the block leaves the null space undetermined, the maps then miss half the
    object and the second eigenvalue map (reduced-FOV detection) stays empty.
    """
    cols = calibration_width(acs, cap)
    rows = min(int(height), max(MAX_CALIBRATION, cols))
    kw = max(3, min(6, cols // 2))
    while kw > 3 and (rows - kw + 1) * (cols - kw + 1) < coils * kw * kw:
        kw -= 1
    return (rows, cols), kw


def estimate_map_sets(kspace: np.ndarray | Tensor, acs: np.ndarray, cap: int = MAX_CALIBRATION,
                      where: str = "k-space", sets: int | str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """ESPIRiT maps from the ACS of *measured* k-space ``(Nc, H, W)``, ``sets`` given or chosen from the data.

    One eigen-decomposition of the ESPIRiT operator
    (:func:`~ambient_imaging.operators.espirit_sets.espirit_eigen`, the calibration of sigpy's
    ``EspiritCalib`` on the block of :func:`calibration_block`); each set is zero where its
    eigenvalue is below 0.95 (0 when no pixel reaches it: too little calibration data, warned).
    ``sets="auto"``: two sets when the second eigenvalue exceeds the crop on more than
    :data:`~ambient_imaging.operators.espirit_sets.REDUCED_FOV_FRACTION` of the object (the field
    of view is smaller than the object: the image wraps around), else one.

    Returns ``(maps, info)``: ``maps`` ``(Nc, H, W)`` complex64 for one set, ``(M, Nc, H, W)`` for
    more; ``info``: ``map_sets``, ``map_sets_rule`` (``"auto"``/``"given"``), ``second_set_fraction``
    and ``calibration`` (rows, columns, kernel).
    """
    from ambient_imaging.operators.espirit_sets import REDUCED_FOV_FRACTION, espirit_eigen

    k = kspace.detach().cpu().numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    nc, h, _w = k.shape
    (rows, cols), kw = calibration_block(acs, h, nc, cap)
    if cols < 6:
        raise ValueError(f"{where}: only {int(np.asarray(acs).sum())} contiguous centre (ACS) lines; ESPIRiT needs "
                         "at least 6 to estimate coil sensitivities from the measured data")
    m_max = min(nc, 2 if sets == "auto" else int(sets))
    try:
        vecs, vals = espirit_eigen(k, (rows, cols), 0.02, kw, sets=max(m_max, min(2, nc)))
    except (ValueError, np.linalg.LinAlgError) as err:
        raise ValueError(f"{where}: ESPIRiT calibration failed ({err})") from err
    crop = 0.95
    if not np.any(vals[0] > crop):
        warnings.warn(f"{where}: ESPIRiT maps empty with crop=0.95 ({cols} ACS lines); using crop=0",
                      RuntimeWarning, stacklevel=2)
        crop = 0.0
    obj = vals[0] > crop
    frac = float((vals[1] > crop)[obj].mean()) if obj.any() and len(vals) > 1 else 0.0
    m = (2 if frac > REDUCED_FOV_FRACTION else 1) if sets == "auto" else m_max
    maps = (vecs[:m] * (vals[:m] > crop)[:, None]).astype(np.complex64)
    info = {"map_sets": m, "map_sets_rule": "auto" if sets == "auto" else "given", "second_set_fraction": frac,
            "calibration": [rows, cols, kw]}
    return (maps[0] if m == 1 else maps), info


def estimate_coil_maps(kspace: np.ndarray | Tensor, acs: np.ndarray, cap: int = MAX_CALIBRATION,
                       where: str = "k-space", sets: int = 1) -> np.ndarray:
    """ESPIRiT maps ``(Nc, H, W)`` complex64 from the ACS of *measured* k-space ``(Nc, H, W)``
    (``sets`` M > 1: ``(M, Nc, H, W)``, soft SENSE for reduced-FOV data); :func:`estimate_map_sets`
    with a given number of sets."""
    return estimate_map_sets(kspace, acs, cap, where, sets=int(sets))[0]


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


def _maps_tensor(y: np.ndarray, acs_lines: np.ndarray, maps: np.ndarray | None, map_sets: int | str,
                 calibration: int | None, where: str) -> tuple[Tensor, dict[str, Any]]:
    """The operator's maps ``(1, Nc, H, W)`` / ``(1, M, Nc, H, W)`` (given, or ESPIRiT on ``y``) and what was chosen."""
    nc, h, w = y.shape
    sets_info: dict[str, Any] = {"map_sets": 1}
    if nc == 1:
        maps_t = torch.ones(1, 1, h, w, dtype=torch.complex64)
    else:
        if maps is None:
            cap = MAX_CALIBRATION if calibration is None else int(calibration)
            maps, sets_info = estimate_map_sets(y, acs_lines, cap, where=where, sets=map_sets)
        else:
            sets_info = {"map_sets": 1 if np.ndim(maps) == 3 else int(np.shape(maps)[0]), "map_sets_rule": "given"}
        maps_t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.complex64))[None]
    return maps_t, sets_info


def _reference(k: np.ndarray, maps_t: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """The fully sampled SENSE-1 reference ``(1, M, H, W)`` (one component per set of maps) and its RSS."""
    from ambient_imaging.operators import ifft2c, rss

    coil = ifft2c(torch.from_numpy(k.astype(np.complex64)))
    ref = coil[None] if k.shape[0] == 1 else (maps_t[0].conj() * coil).sum(-3, keepdim=maps_t.ndim == 4)[None]
    return ref, {"rss": rss(coil, dim=0)[None, None]}


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
    map_sets: int | str = 1,
    calibration: int | None = None,
) -> Problem:
    """The reconstruction / training problem of one k-space slice ``(Nc, H, W)``.

    Args:
        kspace: complex k-space of the slice as stored (zeros where not acquired).
        stored_mask: the file's mask, ``(W,)`` or ``(H, W)`` (``None``: the non-zero columns).
        mask_spec: undersampling of a *fully sampled* slice (an undersampled one keeps its mask).
        key: the item's identity for :meth:`MaskSpec.sample` (e.g. ``"file.h5:12"``).
        band: acquired columns ``(lo, hi)``; columns outside are padding (``None``: all columns).
        maps: coil maps ``(Nc, H, W)`` (e.g. a cache); ``None``: ESPIRiT on the measured data's ACS.
        noise_sigma: complex noise std of k-space in file units (``None``: :func:`estimate_noise_sigma`).
        reference: attach the fully sampled SENSE-1 image (and its RSS in ``extras``) when available.
        normalisation: the data's normalisation (default: ``Normalisation("measurement")``).
        where: names the slice in messages. calibration: ESPIRiT calibration width (``None``: ACS, ≤ 24).
        map_sets: ESPIRiT map sets M (> 1: soft SENSE, M image components; ``"auto"``: from the data).

    Returns:
        a :class:`Problem` with ``y (1, Nc, H, W)`` complex64 (file units), ``op`` a
        ``MultiCoilMRI`` with ``acs`` (protected rows), ``reference (1, 1, H, W)`` or ``None``,
        and ``meta`` (``acceleration`` over the band, ``acs_lines``, ``noise_sigma``,
        ``fully_sampled``, ``retrospective``, ``band``, ``mask_spec``, ``notes``).
    """
    from ambient_imaging.operators import MultiCoilMRI

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
    maps_t, sets_info = _maps_tensor(y, acs_lines, maps, map_sets, calibration, where)
    sigma = estimate_noise_sigma(k, lines) if noise_sigma is None else float(noise_sigma)
    mask_t = torch.from_numpy(np.ascontiguousarray(lines if line_layout else mask2d))[None]
    acs_t = None
    if acs_lines.any():
        acs_t = torch.from_numpy(acs_lines)[None] if line_layout else torch.from_numpy(
            np.ascontiguousarray(np.broadcast_to(acs_lines, (h, w)) & mask2d))[None]
    op = MultiCoilMRI(maps_t, mask_t, noise_sigma=sigma, acs=acs_t)
    ref, extras = _reference(k, maps_t) if reference and fully else (None, {})
    # the image support the coil maps define: outside it A x = 0 for every x, and the SENSE-1 image is 0
    extras["support"] = (maps_t.abs() ** 2).reshape(1, -1, h, w).sum(1, keepdim=True) > 0
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
        **sets_info,
    }
    info.update(meta or {})
    return Problem(torch.from_numpy(y)[None], op, normalisation or Normalisation("measurement"), ref, info,
                   kind="mri", extras=extras)
