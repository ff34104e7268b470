"""Metrics: image quality (fastMRI conventions), calibration, memorisation, held-out denoising error."""

from .calibration import (
    Calibration,
    conformal_scores,
    coverage,
    crps,
    interval_coverage,
    interval_width,
    spread_skill,
    uncertainty_report,
    z_scores,
)
from .denoising import SIGMA_GRID, heldout_denoising_error
from .fastmri import fastmri_scores, fastmri_slice_metrics, fastmri_volume_metrics, summarize_volumes
from .image import center_crop, nmse, psnr, slice_metrics, ssim, to_magnitude, volume_metrics
from .memorization import MemorizationReport, memorization, nearest_neighbors

__all__ = [
    "nmse",
    "psnr",
    "ssim",
    "center_crop",
    "to_magnitude",
    "slice_metrics",
    "volume_metrics",
    "fastmri_scores",
    "fastmri_volume_metrics",
    "fastmri_slice_metrics",
    "summarize_volumes",
    "coverage",
    "interval_coverage",
    "z_scores",
    "spread_skill",
    "crps",
    "interval_width",
    "conformal_scores",
    "Calibration",
    "uncertainty_report",
    "memorization",
    "nearest_neighbors",
    "MemorizationReport",
    "heldout_denoising_error",
    "SIGMA_GRID",
]
