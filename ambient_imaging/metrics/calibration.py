"""Calibration of posterior samples: does the uncertainty cover the truth?"""

from __future__ import annotations

import numpy as np

from .image import to_magnitude

__all__ = ["coverage", "interval_coverage", "z_scores"]


def _samples(samples, reference) -> tuple[np.ndarray, np.ndarray]:
    s, r = to_magnitude(samples), to_magnitude(reference)
    if s.shape[1:] != r.shape:
        raise ValueError(f"coverage: samples {s.shape} must be (K, *reference.shape) with reference {r.shape}")
    if s.shape[0] < 2:
        raise ValueError("coverage: need at least 2 samples")
    return s, r


def coverage(samples, reference, k: float = 2.0) -> float:
    """Fraction of pixels with ``|reference − mean| ≤ k · std`` (samples ``(K, ...)``).

    For a calibrated Gaussian posterior, ``k = 2`` gives ≈ 0.954. Works on
    magnitudes (complex inputs are converted with ``abs``).
    """
    s, r = _samples(samples, reference)
    mean, std = s.mean(0), s.std(0, ddof=1)
    return float(np.mean(np.abs(r - mean) <= k * std))


def interval_coverage(samples, reference, level: float = 0.9) -> float:
    """Fraction of pixels inside the central empirical ``level`` interval of the samples."""
    if not 0 < level < 1:
        raise ValueError(f"interval_coverage: level must be in (0, 1), got {level}")
    s, r = _samples(samples, reference)
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(np.mean((r >= lo) & (r <= hi)))


def z_scores(samples, reference) -> np.ndarray:
    """Pixelwise ``(reference − mean)/std`` (std floored at 1e-12); ~N(0,1) when calibrated."""
    s, r = _samples(samples, reference)
    return (r - s.mean(0)) / np.maximum(s.std(0, ddof=1), 1e-12)
