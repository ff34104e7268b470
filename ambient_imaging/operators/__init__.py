"""Forward operators: ``y = A x + ε`` for every instrument family.

See :mod:`ambient_imaging.operators.base` for the contract.
"""

from .base import (
    ComposedOperator,
    LinearOperator,
    ScaledOperator,
    SubsamplingOperator,
    real_inner,
    stack,
)
from .pixels import GaussianNoise, PixelMask, box_mask, dust_mask

__all__ = [
    "LinearOperator",
    "SubsamplingOperator",
    "ComposedOperator",
    "ScaledOperator",
    "stack",
    "real_inner",
    "PixelMask",
    "GaussianNoise",
    "dust_mask",
    "box_mask",
]
