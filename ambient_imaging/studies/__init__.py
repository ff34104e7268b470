"""End-to-end studies: train several priors, sample them, and measure them the same way.

* :func:`run_memorization_study` — does training on corrupted data reduce memorisation
  of the training set, and what does it cost in quality? (Daras et al. 2023, Sec. 5.2;
  Daras et al. 2024 for the noisy-data variant). See ``docs/memorization.md``.
"""

from .levels import StudyLevel, study_levels
from .memorization import run_memorization_study
from .report import benchmark_rows, format_table, markdown_table

__all__ = ["run_memorization_study", "StudyLevel", "study_levels", "format_table", "benchmark_rows",
           "markdown_table"]
