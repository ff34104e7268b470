"""Sky problems: masked images (FITS, inpainting) and visibilities (interferometry)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .normalisation import Normalisation
from .problem import Problem

__all__ = ["image_problem", "visibility_problem"]


def image_problem(
    data: np.ndarray,
    valid: np.ndarray,
    noise_sigma: float = 0.0,
    *,
    normalisation: Normalisation | None = None,
    reference: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> Problem:
    """Inpainting problem of an image ``(H, W)`` whose pixels ``valid`` (bool ``(H, W)``) were measured.

    The operator is a :class:`~ambient_imaging.operators.PixelMask` with noise ``noise_sigma``
    (file units); invalid pixels (NaN, flagged) are zero in ``y``.
    """
    from ambient_imaging.operators import PixelMask

    img = np.asarray(data, dtype=np.float32)
    ok = np.asarray(valid, dtype=bool)
    if img.ndim != 2 or ok.shape != img.shape:
        raise ValueError(f"image_problem: need an (H, W) image and a mask of its shape, got {img.shape}, {ok.shape}")
    if not ok.any():
        raise ValueError("image_problem: no valid pixel")
    op = PixelMask(torch.from_numpy(ok.copy())[None, None], noise_sigma=float(noise_sigma))
    y = op.restrict(torch.from_numpy(np.where(ok, img, 0.0).astype(np.float32))[None, None])
    ref = None if reference is None else torch.from_numpy(np.asarray(reference, dtype=np.float32))[None, None]
    info = {"shape": img.shape, "missing_fraction": float(1.0 - ok.mean()), "noise_sigma": float(noise_sigma),
            "notes": []}
    info.update(meta or {})
    return Problem(y, op, normalisation or Normalisation("measurement"), ref, info, kind="image")


def visibility_problem(
    obs: Any,
    npix: int,
    pixel_scale: float,
    *,
    normalisation: Normalisation | None = None,
    reference: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> Problem:
    """Imaging problem of an observation ``obs`` (:class:`~ambient_imaging.datasets.Visibilities`, or
    anything with its ``to_operator``) on an ``npix × npix`` grid of ``pixel_scale`` radians.

    The operator carries the station pairs and time stamps, so closure quantities and
    self-calibration work on it; its noise is the visibilities' σ. Default normalisation:
    ``"flux"`` (sky images in Jy/pixel divided by the total flux), as interferometric priors are trained.
    """
    if int(npix) < 8:
        raise ValueError(f"visibility_problem: npix must be >= 8, got {npix}")
    if not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"visibility_problem: pixel scale must be > 0, got {pixel_scale}")
    y, op = obs.to_operator((int(npix), int(npix)), pixel_scale=float(pixel_scale))
    ref = None if reference is None else torch.from_numpy(np.asarray(reference, dtype=np.float64))[None, None]
    info = {"shape": (int(npix), int(npix)), "n_vis": int(y.shape[-1]), "pixel_scale_rad": float(pixel_scale),
            "notes": []}
    info.update(meta or {})
    return Problem(y, op, normalisation or Normalisation("flux"), ref, info, kind="visibilities")
