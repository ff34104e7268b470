"""Image quality metrics with fastMRI conventions (Zbontar et al. 2018, ``fastmri/evaluate.py``).

All functions take magnitude images (complex inputs are converted with
``abs``) as numpy arrays or torch tensors:

* ``nmse = ‖gt − pred‖² / ‖gt‖²`` over the whole volume;
* ``psnr`` with ``data_range = gt.max()`` (the volume maximum);
* ``ssim``: scikit-image ``structural_similarity`` per slice (7×7 uniform
  window) with ``data_range = gt.max()`` of the volume, averaged over slices.

Per-slice variants use the slice's own maximum. ``center_crop`` crops to
320×320 (fastMRI knee/brain convention) or any size before scoring.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["to_magnitude", "center_crop", "nmse", "psnr", "ssim", "slice_metrics", "volume_metrics"]


def to_magnitude(x) -> np.ndarray:
    """numpy float64 magnitude of an array/tensor (complex → abs)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return np.abs(x).astype(np.float64) if np.iscomplexobj(x) else x.astype(np.float64)


def center_crop(x, size: int | tuple[int, int] | None = 320):
    """Centre crop of the last two dims to ``size``, as fastMRI's ``transforms.center_crop`` (start at
    ``(n − s) // 2``). numpy arrays and torch tensors, real or complex, keep their type; a dim already
    smaller than ``size`` stays whole; ``size=None`` returns ``x`` unchanged. The one crop of the package
    (scoring, the fastMRI reference, reconstruction)."""
    if size is None:
        return x
    hh, ww = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if hh < 1 or ww < 1:
        raise ValueError(f"center_crop: size must be positive, got {size}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    hh, ww = min(hh, h), min(ww, w)
    top, left = (h - hh) // 2, (w - ww) // 2
    return x[..., top : top + hh, left : left + ww]


def _pair(gt, pred) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = to_magnitude(gt), to_magnitude(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"metrics: reference shape {gt.shape} != prediction shape {pred.shape}")
    return gt, pred


def nmse(gt, pred) -> float:
    """Normalised MSE ``‖gt − pred‖² / ‖gt‖²``."""
    gt, pred = _pair(gt, pred)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt, pred, maxval: float | None = None) -> float:
    """PSNR in dB with ``data_range = gt.max()`` (or ``maxval``)."""
    gt, pred = _pair(gt, pred)
    if np.array_equal(gt, pred):
        return math.inf
    from skimage.metrics import peak_signal_noise_ratio  # imported on use: it pulls in scipy.stats (~1 s)

    return float(peak_signal_noise_ratio(gt, pred, data_range=gt.max() if maxval is None else maxval))


def ssim(gt, pred, maxval: float | None = None) -> float:
    """Mean SSIM over slices of a ``(S, H, W)`` volume (a 2-D image is one slice).

    ``data_range = gt.max()`` over the volume (or ``maxval``), 7×7 uniform window.
    """
    gt, pred = _pair(gt, pred)
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    gt, pred = gt.reshape(-1, *gt.shape[-2:]), pred.reshape(-1, *pred.shape[-2:])
    maxval = gt.max() if maxval is None else maxval
    from skimage.metrics import structural_similarity

    vals = [structural_similarity(g, p, data_range=maxval) for g, p in zip(gt, pred)]
    return float(np.mean(vals))


def slice_metrics(gt, pred, crop: int | tuple[int, int] | None = None) -> list[dict[str, float]]:
    """NMSE/PSNR/SSIM for each slice of ``(S, H, W)`` volumes (each slice's own maximum)."""
    gt, pred = _pair(gt, pred)
    if crop is not None:
        gt, pred = center_crop(gt, crop), center_crop(pred, crop)
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    return [{"nmse": nmse(g, p), "psnr": psnr(g, p), "ssim": ssim(g, p)} for g, p in zip(gt, pred)]


def volume_metrics(gt, pred, crop: int | tuple[int, int] | None = None) -> dict[str, float]:
    """NMSE/PSNR/SSIM of a whole ``(S, H, W)`` volume (fastMRI ``evaluate.py``)."""
    gt, pred = _pair(gt, pred)
    if crop is not None:
        gt, pred = center_crop(gt, crop), center_crop(pred, crop)
    return {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred), "ssim": ssim(gt, pred)}
