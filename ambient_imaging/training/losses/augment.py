"""Augmentation that acts on the measurements and the operator together (exact for image-space operators)."""

from __future__ import annotations

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.operators import dihedral

__all__ = ["augment"]


def augment(
    batch: MeasurementBatch,
    generator: torch.Generator | None = None,
    rotations: bool = True,
    flips: bool = True,
) -> MeasurementBatch:
    """Random flips / 90° rotations applied to ``y`` AND the operator together (per sample).

    For image-space operators ``A(T x) = T(A x)`` holds exactly with the transformed mask, so
    the augmented pair is a valid measurement of the transformed image (no unmeasured pixel
    leaks). 90° rotations need square images (otherwise only 180° is used). ``batch.reference``
    (evaluation only) is transformed alike; ``meta[i]["augment"]`` records the group element.
    Raises NotImplementedError for operators where this is not exact (MRI, interferometry).
    """
    b, h, w = batch.y.shape[0], batch.y.shape[-2], batch.y.shape[-1]
    rots = ([0, 1, 2, 3] if h == w else [0, 2]) if rotations else [0]
    allowed = [r + 4 * f for f in ([0, 1] if flips else [0]) for r in rots]
    pick = torch.randint(len(allowed), (b,), generator=generator, device=batch.y.device).tolist()
    ks = [allowed[p] for p in pick]
    op = batch.op.transformed(ks)
    y = torch.stack([dihedral(batch.y[i], k) for i, k in enumerate(ks)])
    ref = batch.reference
    if isinstance(ref, Tensor):
        ref = torch.stack([dihedral(ref[i], k) for i, k in enumerate(ks)])
    meta = [dict(batch.meta[i] if i < len(batch.meta) else {}, augment=k) for i, k in enumerate(ks)]
    return MeasurementBatch(y, op, batch.scale, meta, ref)
