"""Measurement problems: the single source of masks, normalisation and problem construction.

Everything that turns data into ``(y, A)`` lives here and is shared by training
(:mod:`ambient_imaging.datasets`, :mod:`ambient_imaging.training`) and reconstruction
(:mod:`ambient_imaging.reconstruction`, which re-exports these names):

* :class:`MaskSpec` — acceleration → k-space mask (the only such rule in the package);
* :class:`Normalisation` — file units ↔ prior units, stored with every prior;
* :class:`Problem` and its builders :func:`mri_problem`, :func:`image_problem`,
  :func:`visibility_problem`.

This package depends only on :mod:`ambient_imaging.operators` (and numpy/torch), so the data
readers can use it without an import cycle.
"""

from .masks import MaskSpec
from .mri import (
    acs_from_lines,
    calibration_width,
    derive_line_mask,
    estimate_coil_maps,
    estimate_noise_sigma,
    mri_problem,
)
from .normalisation import Normalisation, measurement_scale
from .problem import Problem
from .sky import image_problem, visibility_problem

__all__ = [
    "MaskSpec",
    "Normalisation",
    "measurement_scale",
    "Problem",
    "mri_problem",
    "image_problem",
    "visibility_problem",
    "derive_line_mask",
    "acs_from_lines",
    "calibration_width",
    "estimate_coil_maps",
    "estimate_noise_sigma",
]
