"""fastMRI-challenge scoring (Zbontar et al. 2018; ``fastmri/evaluate.py``), per slice and per volume.

The target is the file's ``reconstruction_rss`` (or the RSS of its fully sampled coil images), centre
cropped to the header's ``reconSpace`` (:func:`ambient_imaging.datasets.fastmri_reference`); the
reconstruction is the magnitude image cropped the same way. For one volume ``(S, h, w)``:

* ``data_range = gt.max()`` over the whole volume;
* ``ssim``: scikit-image ``structural_similarity`` per slice (7×7 uniform window, K1 = 0.01,
  K2 = 0.03, sample covariance: scikit-image's defaults, as fastMRI calls it) with the volume's
  ``data_range``, averaged over slices;
* ``nmse = ‖gt − pred‖² / ‖gt‖²`` over the volume; ``psnr`` = scikit-image
  ``peak_signal_noise_ratio`` over the volume with the volume's ``data_range``.

Per-slice values use the same volume ``data_range`` (so their SSIM average is the volume SSIM);
over several volumes fastMRI reports the mean (and ±2 standard deviations) of the per-volume values:
:func:`summarize_volumes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .image import center_crop, to_magnitude

__all__ = ["fastmri_volume_metrics", "fastmri_slice_metrics", "fastmri_scores", "summarize_volumes"]


def _volumes(gt: Any, pred: Any, crop: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = to_magnitude(gt), to_magnitude(pred)
    if gt.ndim == 2:
        gt = gt[None]
    if pred.ndim == 2:
        pred = pred[None]
    if gt.ndim != 3 or pred.ndim != 3:
        raise ValueError(f"fastMRI metrics: need (slices, H, W) volumes, got {gt.shape} and {pred.shape}")
    gt, pred = center_crop(gt, crop), center_crop(pred, crop)
    if gt.shape != pred.shape:
        raise ValueError(f"fastMRI metrics: reference shape {gt.shape} != reconstruction shape {pred.shape}")
    if not (np.isfinite(gt).all() and np.isfinite(pred).all()):
        raise ValueError("fastMRI metrics: NaN or Inf in the reference or the reconstruction")
    return gt, pred


def _psnr(gt: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    if np.array_equal(gt, pred):
        return math.inf
    from skimage.metrics import peak_signal_noise_ratio  # on use: it imports scipy.stats (~1 s of CLI start-up)

    return float(peak_signal_noise_ratio(gt, pred, data_range=data_range))


def _ssim(gt: np.ndarray, pred: np.ndarray, data_range: float) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(gt, pred, data_range=data_range))


def _nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    den = float(np.linalg.norm(gt) ** 2)
    return float(np.linalg.norm(gt - pred) ** 2 / den) if den > 0 else math.inf


def fastmri_slice_metrics(gt: Any, pred: Any, crop: tuple[int, int] | None = None,
                          data_range: float | None = None) -> list[dict[str, float]]:
    """``[{"slice", "nmse", "psnr", "ssim"}, ...]`` per slice of a volume, all with the *volume's* maximum
    as data range (``data_range`` overrides it, e.g. for slices scored apart from their volume)."""
    gt, pred = _volumes(gt, pred, crop)
    dr = float(gt.max()) if data_range is None else float(data_range)
    return [
        {"slice": i, "nmse": _nmse(g, p), "psnr": _psnr(g, p, dr),
         "ssim": _ssim(g, p, dr)}
        for i, (g, p) in enumerate(zip(gt, pred))
    ]


def fastmri_volume_metrics(gt: Any, pred: Any, crop: tuple[int, int] | None = None,
                           data_range: float | None = None) -> dict[str, float]:
    """``{"nmse", "psnr", "ssim"}`` of one volume exactly as fastMRI's ``evaluate.py`` computes them."""
    gt, pred = _volumes(gt, pred, crop)
    dr = float(gt.max()) if data_range is None else float(data_range)
    ssim = float(np.mean([_ssim(g, p, dr) for g, p in zip(gt, pred)]))
    return {"nmse": _nmse(gt, pred), "psnr": _psnr(gt, pred, dr), "ssim": ssim}


def fastmri_scores(gt: Any, pred: Any, crop: tuple[int, int] | None = None,
                   data_range: float | None = None) -> dict[str, Any]:
    """Everything for a metrics JSON: ``{"volume": {...}, "slices": [...], "data_range", "crop", "shape",
    "convention"}`` (volume = fastMRI ``evaluate.py``; slices with the volume's data range)."""
    g, p = _volumes(gt, pred, crop)
    dr = float(g.max()) if data_range is None else float(data_range)
    return {
        "convention": "fastMRI evaluate.py: SSIM 7x7 per slice with the volume max as data range, averaged; "
                      "NMSE and PSNR over the volume",
        "volume": fastmri_volume_metrics(g, p, data_range=dr),
        "slices": fastmri_slice_metrics(g, p, data_range=dr),
        "data_range": dr,
        "crop": None if crop is None else [int(crop[0]), int(crop[1])],
        "shape": [int(v) for v in g.shape],
    }


def summarize_volumes(volumes: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of per-volume metrics (fastMRI prints ``mean +/- 2·std``):
    ``{"nmse": {"mean", "std", "n"}, ...}`` for every key present in all volumes."""
    if not volumes:
        raise ValueError("summarize_volumes: no volumes")
    keys = [k for k in volumes[0] if all(k in v for v in volumes) and isinstance(volumes[0][k], (int, float))]
    out = {}
    for k in keys:
        vals = np.asarray([float(v[k]) for v in volumes])
        out[k] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                  "n": int(vals.size)}
    return out
