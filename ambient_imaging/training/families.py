"""The operator families a run can train on, as objects: what training needs to know about each.

``TrainConfig.operator`` and ``TrainingData.family`` name a family; :func:`family_of` turns the
name into a :class:`Family`, and the trainer asks it instead of comparing names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ambient_imaging.operators.domains import KSPACE_DOMAIN, NO_MASK_DOMAIN, PIXEL_DOMAIN, MaskDomain

__all__ = ["Family", "FAMILIES", "family_of"]


@dataclass(frozen=True)
class Family:
    """One operator family.

    Attributes:
        name: ``mask``, ``noise``, ``mri`` or ``interferometry``.
        image_noise_factor: measurement noise std → std per real image channel (orthonormal
            operators: 1 for real data, 1/√2 for complex k-space; 0: no simple relation).
        has_rows: its operators have rows to subsample (ambient training).
        line_rows: the rows are k-space lines: ambient training draws Ã over a range of
            accelerations and protected centre widths.
        records_corruption: the prior records the synthetic corruption fraction.
        domain: where its mask channels mark data (for the network's σ → ∞ treatment).
    """

    name: str
    image_noise_factor: float
    has_rows: bool = True
    line_rows: bool = False
    records_corruption: bool = False
    domain: MaskDomain = NO_MASK_DOMAIN

    def mask_domain(self, mask_channels: int, image_channels: int) -> MaskDomain:
        """The network's mask domain for data of this family (plain EDM when the channels do not fit)."""
        counts = self.domain.channel_counts(image_channels)
        return self.domain if counts is not None and mask_channels in counts else NO_MASK_DOMAIN


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("mask", 1.0, records_corruption=True, domain=PIXEL_DOMAIN),
        Family("noise", 1.0, has_rows=False),
        Family("mri", 1.0 / math.sqrt(2.0), line_rows=True, domain=KSPACE_DOMAIN),
        # gridded-uv masks use another FFT convention than the network's k-space domain: plain EDM
        Family("interferometry", 0.0),
    )
}


def family_of(name: str) -> Family:
    """The :class:`Family` called ``name`` (clear error for unknown names)."""
    if name not in FAMILIES:
        raise ValueError(f"unknown operator family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]
