"""``MaskSpec``: the one place where "acceleration R" becomes a k-space sampling mask.

Training (retrospective undersampling of fully sampled files), the embedded data builders,
reconstruction, the quickstart, benchmarks and notebooks all draw masks through
:meth:`MaskSpec.sample`, so the masks a prior is trained on and the masks it is evaluated on
come from the same rule (an ambient prior takes the mask as an input: a mask drawn by another
rule is out of its training distribution).

The draw itself is :func:`ambient_imaging.operators.mri_mask` (fastMRI conventions, phase
encodes are the columns ``W``); ``MaskSpec`` adds what every caller needs around it:

* **the centre width** — ``center_lines`` or ``center_fraction`` as given; when neither is
  given, ``max(round(0.08·W), 8)`` lines (fastMRI's 8 % with a floor of 8 lines, enough for
  ESPIRiT calibration on small matrices), capped at ``W/R``;
* **seeding** — the mask of item ``key`` (a file name and slice, an index) is a pure function of
  ``(seed, key)``: the same spec and key give the same mask in every process, epoch and command;
* **the acquired band** — for zero-padded k-space (fastMRI ``encodingLimits``), the mask is
  drawn over the full width and the padding columns are zeroed afterwards, as fastMRI's
  ``apply_mask(..., padding)`` does; padding is never counted as missed lines.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["MaskSpec", "DEFAULT_CENTER_FRACTION", "MIN_CENTER_LINES"]

#: fastMRI's centre fraction at R = 4
DEFAULT_CENTER_FRACTION = 0.08
#: floor of the default centre width (ESPIRiT needs >= 6 calibration lines; 8 leaves a margin)
MIN_CENTER_LINES = 8


@dataclass(frozen=True)
class MaskSpec:
    """A k-space sampling protocol: kind, acceleration, centre width and seed.

    Args:
        kind: any of :data:`ambient_imaging.operators.MASK_KINDS` (``random``, ``equispaced``,
            ``variable_density``, ``poisson``, ...).
        acceleration: ``R >= 1``.
        center_lines: fully sampled centre lines (ACS). Give at most one of ``center_lines``
            and ``center_fraction``; with neither, the default rule of the module doc applies.
        center_fraction: fraction of ``W`` fully sampled at the centre (fastMRI semantics:
            ``round(fraction · W)`` lines, no floor).
        seed: base seed; each item's mask is seeded by ``(seed, key)``.
    """

    kind: str = "random"
    acceleration: float = 4.0
    center_lines: int | None = None
    center_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from ambient_imaging.operators import MASK_KINDS

        if self.kind not in MASK_KINDS:
            raise ValueError(f"MaskSpec: unknown kind {self.kind!r}; valid kinds are {', '.join(MASK_KINDS)}")
        r = float(self.acceleration)
        if not (math.isfinite(r) and r >= 1.0):
            raise ValueError(f"MaskSpec: acceleration must be a number >= 1, got {self.acceleration}")
        object.__setattr__(self, "acceleration", r)
        if self.center_lines is not None and self.center_fraction is not None:
            raise ValueError("MaskSpec: give center_lines or center_fraction, not both")
        if self.center_lines is not None:
            if int(self.center_lines) != self.center_lines or int(self.center_lines) < 1:
                raise ValueError(
                    f"MaskSpec: center_lines must be an integer >= 1, got {self.center_lines} "
                    "(coil maps are calibrated from the centre lines of the measured data)"
                )
            object.__setattr__(self, "center_lines", int(self.center_lines))
        if self.center_fraction is not None:
            f = float(self.center_fraction)
            if not (math.isfinite(f) and 0.0 < f <= 1.0):
                raise ValueError(f"MaskSpec: center_fraction must be in (0, 1], got {self.center_fraction}")
            object.__setattr__(self, "center_fraction", f)
        object.__setattr__(self, "seed", int(self.seed))

    # ------------------------------------------------------------------ rules
    def center_width(self, width: int) -> int:
        """Number of fully sampled centre lines for k-space ``width`` columns."""
        w = int(width)
        if self.center_lines is not None:
            c = self.center_lines
        elif self.center_fraction is not None:
            c = round(self.center_fraction * w)
        else:
            cap = math.floor(w / self.acceleration) if self.kind != "poisson" else w
            c = min(max(round(DEFAULT_CENTER_FRACTION * w), MIN_CENTER_LINES), cap)
        if c > w:
            raise ValueError(f"MaskSpec: {c} centre lines do not fit in {w} columns")
        return max(int(c), 1)

    def item_seed(self, key: Any = None) -> int:
        """The seed of item ``key``'s mask: ``seed`` itself for ``None``, else a CRC of ``(seed, key)``."""
        if key is None:
            return self.seed
        return zlib.crc32(f"{self.seed}:{key}".encode("utf-8", "surrogateescape"))  # keys hold file names

    # ------------------------------------------------------------------ drawing
    def sample_with_acs(
        self, shape: tuple[int, int], key: Any = None, band: tuple[int, int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(mask, acs)``: bool ``(H, W)`` k-space mask and its protected centre (``acs ⊆ mask``).

        ``band = (lo, hi)``: only columns ``lo <= j < hi`` were acquired (the rest is zero
        padding); the mask is drawn over the full width and zeroed outside the band (fastMRI).
        """
        from ambient_imaging.operators import mri_mask

        h, w = (int(s) for s in shape)
        g = torch.Generator().manual_seed(self.item_seed(key))
        mask, acs = mri_mask((h, w), self.acceleration, center_lines=self.center_width(w), kind=self.kind,
                             generator=g)
        mask, acs = mask[0], acs[0]
        if band is not None:
            lo, hi = (int(b) for b in band)
            if not 0 <= lo < hi <= w:
                raise ValueError(f"MaskSpec: acquired band {band} is not inside 0..{w}")
            outside = torch.ones(w, dtype=torch.bool)
            outside[lo:hi] = False
            mask = mask & ~outside
            acs = acs & ~outside
        return mask, acs

    def sample(self, shape: tuple[int, int], key: Any = None, band: tuple[int, int] | None = None) -> Tensor:
        """The bool ``(H, W)`` mask of item ``key`` (same spec and key: the same mask, everywhere)."""
        return self.sample_with_acs(shape, key, band)[0]

    # ------------------------------------------------------------------ records
    def replace(self, **changes: Any) -> MaskSpec:
        """A copy with some fields changed (``center_lines`` and ``center_fraction`` replace each other)."""
        if changes.get("center_lines") is not None:
            changes.setdefault("center_fraction", None)
        if changes.get("center_fraction") is not None:
            changes.setdefault("center_lines", None)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/TOML-safe; ``None`` fields left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskSpec:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"MaskSpec: unknown field(s) {sorted(extra)}")
        return cls(**d)

    def describe(self, width: int | None = None) -> str:
        """One line, e.g. ``random lines, R=4, 8 centre lines, seed 0``."""
        if width is not None:
            centre = f"{self.center_width(width)} centre lines"
        elif self.center_lines is not None:
            centre = f"{self.center_lines} centre lines"
        elif self.center_fraction is not None:
            centre = f"centre fraction {self.center_fraction:g}"
        else:
            centre = f"max(8 %·W, {MIN_CENTER_LINES}) centre lines"
        what = "Poisson-disc points" if self.kind == "poisson" else f"{self.kind} lines"
        return f"{what}, R={self.acceleration:g}, {centre}, seed {self.seed}"
