"""The reconstruction layer: problems in, reconstructions, metrics and files out.

Between the CLI and :mod:`ambient_imaging.sampling` (sigpy keeps this layer in ``mri/app.py``):

* from :mod:`ambient_imaging.problems` (shared with training): :class:`MaskSpec`,
  :class:`Normalisation`, :class:`Problem`, :func:`mri_problem`, :func:`image_problem`,
  :func:`visibility_problem`;
* :func:`reconstruct` (one problem → :class:`Result`: samples, mean, std, scores, checks);
* :func:`make_method` (the registry's methods by name, :data:`ambient_imaging.sampling.METHODS`) and
  :func:`default_method` / :func:`default_method_name` (a prior's default);
* :func:`reconstruct_path` with :class:`ReconstructOptions` (files and folders → outputs);
* writers (:func:`write_volume`, :func:`write_metrics`) and :func:`collect_metrics` (``evaluate``).
"""

from ambient_imaging.problems import (
    MaskSpec,
    Normalisation,
    Problem,
    image_problem,
    mri_problem,
    visibility_problem,
)
from ambient_imaging.sampling.rml import LOGCAMP_NOISE_RULES  # --logcamp-noise's choices, for the CLI

from .app import ReconstructOptions, input_kind, mask_spec_for, parse_angle, parse_slices, reconstruct_path
from .evaluate import collect_metrics, comparison_figure, sample_to_file, write_csv
from .methods import (
    CLASSICAL,
    POSTERIOR,
    UNCONDITIONAL,
    default_method,
    default_method_name,
    make_method,
    make_unconditional,
)
from .outputs import write_figure, write_metrics, write_volume
from .run import ReconstructionFailed, Result, reconstruct, score

__all__ = [
    "MaskSpec",
    "Normalisation",
    "Problem",
    "mri_problem",
    "image_problem",
    "visibility_problem",
    "reconstruct",
    "Result",
    "ReconstructionFailed",
    "score",
    "make_method",
    "make_unconditional",
    "default_method",
    "default_method_name",
    "POSTERIOR",
    "CLASSICAL",
    "UNCONDITIONAL",
    "LOGCAMP_NOISE_RULES",
    "ReconstructOptions",
    "reconstruct_path",
    "input_kind",
    "mask_spec_for",
    "parse_slices",
    "parse_angle",
    "write_volume",
    "write_metrics",
    "write_figure",
    "collect_metrics",
    "write_csv",
    "comparison_figure",
    "sample_to_file",
]
