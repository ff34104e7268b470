"""Per-sample measurement normalisation (moved to :mod:`ambient_imaging.problems.normalisation`).

Kept so that ``from ambient_imaging.datasets.normalize import measurement_scale`` goes on working.
"""

from ambient_imaging.problems.normalisation import measurement_scale

__all__ = ["measurement_scale"]
