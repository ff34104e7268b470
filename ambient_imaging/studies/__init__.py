"""End-to-end studies: train several priors, sample them, and measure them the same way.

* :func:`run_memorization_study` — does training on corrupted data reduce memorisation
  of the training set, and what does it cost in quality? (Daras et al. 2023, Sec. 5.2;
  Daras et al. 2024 for the noisy-data variant). See ``docs/memorization.md``.
"""

from .memorization import StudyLevel, format_table, run_memorization_study, study_levels

__all__ = ["run_memorization_study", "StudyLevel", "study_levels", "format_table"]
