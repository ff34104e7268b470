"""``Normalisation``: how measurements are brought to a prior's units, and back — in one place.

A prior is trained on images of scale O(1); files come in their own units (raw scanner
k-space, Jy/pixel, 0..255 pixels). The rule that maps one to the other is decided when the
training data are built, stored with the prior as a structured record (:meth:`to_dict`), and
applied and undone by the same object at reconstruction. ``x_prior = (x_file − offset) / scale``.

Kinds:

* ``"identity"`` — no change.
* ``"affine"`` — fixed ``scale`` and ``offset`` (image sets: ``[0, 1] → [-1, 1]`` is
  ``scale = offset = 0.5``; FITS sets map their range to ``[-1, 1]``).
* ``"measurement"`` — per measurement, ``scale`` = :func:`measurement_scale` (the
  ``percentile`` of a low-resolution image; for MRI only the ACS lines, so the scale does not
  change with the acceleration or the mask).
* ``"peak"`` — per measurement, the peak of the dirty image (legacy sky priors).
* ``"flux"`` — per measurement, the total flux (zero-spacing estimate) of visibilities: prior
  images are in Jy/pixel divided by the total flux.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

__all__ = ["Normalisation", "measurement_scale", "KINDS"]

KINDS = ("identity", "affine", "measurement", "peak", "flux")
_PER_MEASUREMENT = ("measurement", "peak", "flux")


def measurement_scale(y: Tensor, op: LinearOperator, percentile: float = 99.0) -> Tensor:
    """Per-sample scale ``s`` (shape ``(B,)``, float64): the ``percentile`` of a low-resolution image magnitude.

    * :class:`~ambient_imaging.operators.MultiCoilMRI` with ACS: ``|A_acs^H y|`` where ``A_acs``
      keeps only the ACS rows (``op.default_keep()``); without ACS, all measured rows.
    * Operators with an image-shaped ``mask`` (e.g. ``PixelMask``): ``|A^H y|`` over pixels where
      the mask is set.
    * Anything else: ``|A^H y|`` over the whole image.

    Why: the scale must be a property of the object, not of how it was measured. The ACS lines
    are sampled whatever the acceleration, so their image (and its percentile) is the same at
    R = 4, R = 8 or with another random mask; unmeasured zeros must not pull the statistic down
    as the corruption grows. A zero scale (empty measurements) is replaced by 1 with a warning.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"measurement_scale: y must be a torch.Tensor, got {type(y).__name__}")
    if not 0.0 < float(percentile) <= 100.0:
        raise ValueError(f"measurement_scale: percentile must be in (0, 100], got {percentile}")
    from ambient_imaging.operators import MultiCoilMRI

    q = float(percentile) / 100.0
    support: Tensor | None = None
    with torch.no_grad():
        if isinstance(op, MultiCoilMRI):
            keep = op.default_keep()
            lowres = op.with_rows(keep) if keep is not None else op
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


@dataclass
class Normalisation:
    """``x_prior = (x_file − offset) / scale`` (see the module doc for the kinds).

    Per-measurement kinds (``measurement``, ``peak``, ``flux``) compute ``scale`` from the data
    with :meth:`resolve`; a resolved object holds a ``(B,)`` tensor of scales.
    """

    kind: str = "identity"
    scale: float | Tensor | None = None
    offset: float = 0.0
    percentile: float = 99.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Normalisation: unknown kind {self.kind!r}; valid kinds are {', '.join(KINDS)}")
        if self.kind == "identity":
            self.scale, self.offset = 1.0 if self.scale is None else self.scale, float(self.offset)
        if self.kind == "affine" and not isinstance(self.scale, Tensor):
            if self.scale is None or not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
                raise ValueError(f"Normalisation('affine'): scale must be a positive number, got {self.scale}")
        if not math.isfinite(float(self.offset)):
            raise ValueError(f"Normalisation: offset must be finite, got {self.offset}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def unit_range(cls) -> Normalisation:
        """Images in ``[0, 1]`` mapped to ``[-1, 1]`` (``x' = 2x − 1``)."""
        return cls("affine", 0.5, 0.5)

    @classmethod
    def from_range(cls, lo: float, hi: float) -> Normalisation:
        """The affine map of ``[lo, hi]`` onto ``[-1, 1]``."""
        half = max(float(hi) - float(lo), 1e-12) / 2.0
        return cls("affine", half, (float(hi) + float(lo)) / 2.0)

    # ------------------------------------------------------------------ data-dependent scale
    @property
    def resolved(self) -> bool:
        return self.scale is not None

    def resolve(self, y: Tensor, op: LinearOperator) -> Normalisation:
        """A copy with the scale of each of the ``B`` measurements ``y`` filled in (``(B,)`` float64)."""
        b = y.shape[0]
        if self.kind in ("identity", "affine"):
            return self  # a fixed scale: nothing to compute
        if self.kind == "measurement":
            s = measurement_scale(y, op, self.percentile).cpu()
        elif self.kind == "peak":
            with torch.no_grad():
                s = op.measurements_to_image(y).abs().reshape(b, -1).amax(1).to("cpu", torch.float64)
        else:  # flux
            from ambient_imaging.interferometry.flux import estimate_total_flux

            s = torch.as_tensor(estimate_total_flux(y, op), dtype=torch.float64).reshape(-1).cpu()
        bad = ~(s > 0) | ~torch.isfinite(s)
        if bool(bad.any()):
            warnings.warn(f"Normalisation({self.kind!r}): {int(bad.sum())} measurement(s) have no usable scale "
                          "(empty or all-zero data?); using 1", RuntimeWarning, stacklevel=2)
            s = torch.where(bad, torch.ones_like(s), s)
        return dataclasses.replace(self, scale=s.expand(b).clone() if s.numel() == 1 else s)

    def scales(self, b: int) -> Tensor:
        """The ``(B,)`` float64 scales (a fixed scale repeated; a resolved per-measurement one as is)."""
        if self.scale is None:
            raise ValueError(f"Normalisation({self.kind!r}) is not resolved: call .resolve(y, op) first")
        s = torch.as_tensor(self.scale, dtype=torch.float64).reshape(-1)
        return s.expand(b) if s.numel() == 1 else s

    # ------------------------------------------------------------------ apply / undo
    def to_prior(self, y: Tensor, op: LinearOperator) -> tuple[Tensor, LinearOperator]:
        """Measurements and operator in the prior's units (noise std divided by the scale too)."""
        norm = self if self.resolved else self.resolve(y, op)
        s = norm.scales(y.shape[0]).to(y.device)
        yb = y
        if norm.offset:
            with torch.no_grad():
                ones = torch.ones_like(op.adjoint(y))
                yb = y - norm.offset * op.forward(ones)
        yp = yb / s.reshape(-1, *([1] * (y.ndim - 1))).to(yb.real.dtype)
        return op.restrict(yp), op.with_noise(factor=1.0 / s.cpu())

    def image_to_file(self, x: Tensor) -> Tensor:
        """Images ``(B, ...)`` from the prior's units back to the file's."""
        s = self.scales(x.shape[0]).to(x.device, x.real.dtype)
        out = x * s.reshape(-1, *([1] * (x.ndim - 1)))
        return out + self.offset if self.offset else out

    def image_to_prior(self, x: Tensor) -> Tensor:
        """Images ``(B, ...)`` from file units to the prior's (e.g. a reference, for scoring in prior units)."""
        s = self.scales(x.shape[0]).to(x.device, x.real.dtype)
        xb = x - self.offset if self.offset else x
        return xb / s.reshape(-1, *([1] * (x.ndim - 1)))

    def to_file(self, rec: Any) -> Any:
        """A :class:`~ambient_imaging.sampling.Reconstruction` (samples ``(B, K, ...)``) in file units."""
        out = rec.scaled(self.scales(rec.samples.shape[0]))
        if self.offset:
            out.samples = out.samples + self.offset
        return out

    # ------------------------------------------------------------------ records
    def to_dict(self) -> dict[str, Any]:
        """What is stored with a prior: the rule, never a data-dependent scale."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "affine":
            d.update(scale=float(self.scale), offset=float(self.offset))
        if self.kind == "measurement":
            d["percentile"] = float(self.percentile)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or "kind" not in d:
            raise ValueError(f"Normalisation: not a normalisation record: {d!r}")
        kind = str(d["kind"])
        if kind in _PER_MEASUREMENT:
            return cls(kind, None, 0.0, float(d.get("percentile", 99.0)))
        return cls(kind, float(d.get("scale", 1.0)), float(d.get("offset", 0.0)))

    @classmethod
    def from_rule(cls, rule: str) -> Normalisation:
        """The structured rule of a prior written before normalisations were records (its English sentence).

        Raises ``ValueError`` for a sentence it cannot read (never a silent identity).
        """
        text = str(rule)
        flat = text.replace(" ", "")
        if "[-1,1]" in flat and ("2x-1" in flat or "[0,1]" in flat):
            return cls.unit_range()
        m = re.search(r"x'\s*=\s*\(x\s*-\s*([-+0-9.eE]+)\)\s*/\s*([-+0-9.eE]+)", text)
        if m:
            return cls("affine", float(m.group(2)), float(m.group(1)))
        if flat.startswith("total_flux"):
            return cls("flux")
        if "measurement_scale" in flat:
            return cls("measurement")
        if "peak" in flat:
            return cls("peak")
        if flat in ("", "none", "identity", "unknown"):
            return cls("identity")
        raise ValueError(f"cannot read the prior's normalisation rule {text!r}; retrain it with this version")

    def describe(self) -> str:
        """The rule in one sentence."""
        if self.kind == "identity":
            return "no normalisation (file units)"
        if self.kind == "affine":
            if abs(float(self.scale) - 0.5) < 1e-12 and abs(self.offset - 0.5) < 1e-12:
                return "images mapped from [0, 1] to [-1, 1] (x' = 2x - 1)"
            return f"affine x' = (x - {self.offset:.6g}) / {float(self.scale):.6g}"
        if self.kind == "measurement":
            return (f"divided by measurement_scale: the {self.percentile:g}th percentile of |A^H y| "
                    "(MRI: restricted to the ACS lines), per measurement")
        if self.kind == "peak":
            return "divided by the peak of the dirty image, per measurement"
        return "sky images in Jy/pixel divided by the total flux (zero-spacing estimate), per measurement"
