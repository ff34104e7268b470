"""``Problem``: measurements, their operator (with protected rows), normalisation, reference, metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from ambient_imaging.operators import LinearOperator

from .normalisation import Normalisation

__all__ = ["Problem"]


@dataclass
class Problem:
    """One inverse problem ``y = A x + ε`` as read from a file.

    Attributes:
        y: measurements ``(1, ...)`` in the file's units.
        op: the operator (batch 1) with its noise level and protected rows (MRI: the ACS lines),
            which every further subsampling (ambient training, A-DPS) keeps.
        normalisation: how the data are brought to O(1) (the data's own rule; a prior's stored
            rule takes precedence at reconstruction).
        reference: the ground-truth image ``(1, C, H, W)`` in file units when the file has one
            (fully sampled MRI, a simulation); used for scoring only, never for training.
        meta: what was decided about the data (acceleration, ACS width, noise, notes, ...).
        kind: ``"mri"``, ``"image"`` or ``"visibilities"``.
        extras: other reference-like images (e.g. ``"rss"``).
    """

    y: Tensor
    op: LinearOperator
    normalisation: Normalisation
    reference: Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    kind: str = "mri"
    extras: dict[str, Tensor] = field(default_factory=dict)

    def normalised(self) -> tuple[Tensor, LinearOperator, float]:
        """``(y, op, scale)`` in the data normalisation's units (what a training item holds)."""
        norm = self.normalisation.resolve(self.y, self.op)
        y, op = norm.to_prior(self.y, self.op)
        return y, op, float(norm.scales(1)[0])

    def training_item(self) -> dict[str, Any]:
        """``{"y", "operator", "scale", "meta"}`` for :func:`~ambient_imaging.datasets.collate_measurements`
        (never the reference: training sees measurements only)."""
        y, op, scale = self.normalised()
        return {"y": y[0], "operator": op, "scale": scale, "meta": dict(self.meta)}
