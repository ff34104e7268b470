"""Per-sample measurement normalisation so that images reach the prior at scale ``O(1)``.

Why this statistic: the scale must be a property of the *object*, not of how it was
measured. For MRI we use only the auto-calibration (ACS) lines, which every Cartesian
pattern samples fully at the k-space centre whatever the acceleration, so the low-resolution
image ``A_acs^H y`` — and its 99th magnitude percentile — is the same at R = 4, R = 8 or with
another random mask (for the same ACS width; a stored mask whose random lines touch the centre
block widens the detected ACS a little); a prior trained on R = 4 data sees the same image scale at R = 8 and on
another scanner whose raw units differ. Aliasing from the undersampled outer lines would
otherwise inflate or deflate the estimate with R. The 99th percentile (not the maximum) is
robust to a few bright voxels/noise spikes. Other operators use ``|A^H y|`` over the measured
support (the pixels a mask actually observes), for the same reason: unmeasured zeros must not
pull the statistic down as the corruption grows.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

__all__ = ["measurement_scale"]


def measurement_scale(y: Tensor, op: LinearOperator, percentile: float = 99.0) -> Tensor:
    """Per-sample scale ``s`` (shape ``(B,)``, float64): the ``percentile`` of a low-resolution image magnitude.

    * :class:`~ambient_imaging.operators.MultiCoilMRI` with ACS: ``|A_acs^H y|`` where ``A_acs``
      keeps only the ACS rows (``op.default_keep()``); without ACS, all measured rows.
    * Operators with an image-shaped ``mask`` (e.g. ``PixelMask``): ``|A^H y|`` over pixels where
      the mask is set.
    * Anything else: ``|A^H y|`` over the whole image.

    Divide ``y`` (and ``noise_sigma``) by ``s`` to train/sample, multiply reconstructions back by it.
    A zero scale (empty measurements) is replaced by 1 with a warning.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"measurement_scale: y must be a torch.Tensor, got {type(y).__name__}")
    if not 0.0 < float(percentile) <= 100.0:
        raise ValueError(f"measurement_scale: percentile must be in (0, 100], got {percentile}")
    from ambient_imaging.operators import MultiCoilMRI

    q = float(percentile) / 100.0
    support: Tensor | None = None
    if isinstance(op, MultiCoilMRI):
        keep = op.default_keep()
        lowres = op._with_rows(keep) if keep is not None else op
        img = lowres.adjoint(y)
    else:
        img = op.adjoint(y)
        m = getattr(op, "mask", None)
        if isinstance(m, Tensor) and m.ndim == img.ndim and m.shape[-2:] == img.shape[-2:]:
            support = m.bool().expand_as(img) if m.shape != img.shape else m.bool()
    mag = img.abs().to(torch.float64)
    b = mag.shape[0]
    flat = mag.reshape(b, -1)
    sup = None if support is None else support.reshape(support.shape[0], -1).expand(b, -1)
    out = torch.empty(b, dtype=torch.float64, device=mag.device)
    for i in range(b):
        v = flat[i] if sup is None else flat[i][sup[i]]
        out[i] = torch.quantile(v, q) if v.numel() else 0.0
    bad = ~(out > 0) | ~torch.isfinite(out)
    if bool(bad.any()):
        warnings.warn(
            f"measurement_scale: {int(bad.sum())} sample(s) have a zero or non-finite image scale "
            "(empty measurements?); using scale 1 for them",
            RuntimeWarning,
            stacklevel=2,
        )
        out = torch.where(bad, torch.ones_like(out), out)
    return out
