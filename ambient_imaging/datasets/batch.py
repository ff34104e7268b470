"""The unit of data that flows from files to losses and samplers.

A :class:`MeasurementBatch` holds what an instrument produced — measurements
``y`` and the operator ``A`` with ``y = A x + ε`` — and nothing else that
training may use. Clean images, when a dataset has them (simulations,
evaluation sets), travel in ``reference`` and are for evaluation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator, stack

__all__ = ["MeasurementBatch", "collate_measurements"]


@dataclass
class MeasurementBatch:
    """Measurements, their operator, and bookkeeping.

    Attributes:
        y: measurements, batched (layout given by ``op``).
        op: the forward operator (batched to match ``y``), noise included.
        scale: per-sample normalisation ``s`` (shape ``(B,)``): ``y`` has already
            been divided by ``s`` (and ``op.noise_sigma`` with it), so images
            are at the scale the prior is trained at; multiply outputs by ``s``
            to return to the file's units.
        meta: one dict per sample (file, slice, ...).
        reference: clean images for evaluation only (``None`` for real data).
    """

    y: Tensor
    op: LinearOperator
    scale: Tensor
    meta: list[dict[str, Any]] = field(default_factory=list)
    reference: Tensor | None = None

    def __len__(self) -> int:
        return self.y.shape[0]

    def to(self, device: torch.device | str) -> MeasurementBatch:
        """Move tensors and operator to ``device``."""
        ref = self.reference.to(device) if self.reference is not None else None
        return MeasurementBatch(self.y.to(device), self.op.to(device), self.scale.to(device), self.meta, ref)


def collate_measurements(items: list[dict[str, Any]]) -> MeasurementBatch:
    """DataLoader ``collate_fn`` for dataset items.

    Each item is a dict with keys ``"y"`` (one sample, no batch dim),
    ``"operator"`` (batch of 1), optional ``"scale"`` (float, default 1),
    ``"meta"`` (dict) and ``"reference"`` (clean image, evaluation only).
    """
    if not items:
        raise ValueError("collate_measurements: empty batch")
    y = torch.stack([it["y"] for it in items])
    op = stack([it["operator"] for it in items])
    scale = torch.tensor([float(it.get("scale", 1.0)) for it in items], dtype=torch.float64)
    meta = [dict(it.get("meta", {})) for it in items]
    refs = [it.get("reference") for it in items]
    ref = torch.stack(refs) if all(r is not None for r in refs) else None
    return MeasurementBatch(y=y, op=op, scale=scale, meta=meta, reference=ref)
