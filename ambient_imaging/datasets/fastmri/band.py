"""The acquired phase-encode band: zero padding of fastMRI k-space (header limits, detection, user override).

Padding is outside the sampling, never missed lines: see docs/mri.md, "Zero padding".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ambient_imaging.problems import derive_line_mask

from .header import parse_ismrmrd_header
from .layout import check_layout, open_fastmri, read_fastmri_slice

__all__ = ["AcquiredBand", "BAND_SOURCES", "acquired_band", "band_from_header", "detect_padding", "parse_padding"]

BAND_SOURCES = ("header", "detected", "user", "none")


@dataclass(frozen=True)
class AcquiredBand:
    """The acquired phase-encode columns ``[lo, hi)`` of a ``W``-column k-space; the rest is zero padding.

    ``source``: ``"header"`` (``encodingLimits``, fastMRI's rule), ``"detected"`` (all-zero column
    bands at the edges of otherwise fully sampled k-space), ``"user"`` (``padding=(left, right)``) or
    ``"none"`` (no padding: the whole width). ``note``: a one-line message for the user (set when the
    band was detected or a header was ignored), else ``""``.
    """

    lo: int
    hi: int
    width: int
    source: str
    note: str = ""

    @property
    def padding(self) -> tuple[int, int]:
        """Zero-padding columns ``(left, right)``."""
        return self.lo, self.width - self.hi

    @property
    def columns(self) -> int:
        """Number of acquired columns ``hi − lo``."""
        return self.hi - self.lo

    @property
    def bounds(self) -> tuple[int, int]:
        """``(lo, hi)``: what ``MaskSpec.sample(..., band=)`` and :func:`~ambient_imaging.operators.apply_band` take."""
        return self.lo, self.hi

    def column_mask(self) -> np.ndarray:
        """``(W,)`` bool, True inside the band."""
        m = np.zeros(self.width, dtype=bool)
        m[self.lo : self.hi] = True
        return m


def band_from_header(header: dict[str, Any], width: int) -> tuple[int, int] | None:
    """Acquired columns ``(lo, hi)`` from a parsed header, fastMRI's rule (``mri_data._retrieve_metadata``).

    ``padding_left = enc_y // 2 − center`` and ``padding_right = padding_left + maximum + 1`` from
    ``encodingLimits/kspace_encoding_step_1`` and the encoded matrix ``y`` (``width`` when absent);
    ``lo = padding_left``, ``hi = padding_right`` (clipped to ``[0, width]``). ``None`` without limits
    or when they give no column.
    """
    step1 = header.get("kspace_encoding_step_1")
    if step1 is None:
        return None
    _minimum, maximum, center = step1
    enc = header.get("encoded_matrix")
    enc_y = int(enc[1]) if enc is not None and enc[1] is not None else int(width)
    left = enc_y // 2 - int(center)
    right = left + int(maximum) + 1
    lo, hi = max(0, left), min(int(width), right)
    return (lo, hi) if lo < hi else None


def detect_padding(lines: np.ndarray) -> tuple[int, int] | None:
    """Zero-padding bands of a ``(W,)`` "column holds data" vector: ``(lo, hi)`` or ``None``.

    Padding is recognised only when the columns between the first and last non-zero column are
    *all* non-zero (an otherwise fully sampled k-space) and at least one edge column is zero. An
    undersampled k-space (a gap inside) returns ``None``: its zero edge columns may be unsampled lines.
    """
    lines = np.asarray(lines, dtype=bool).reshape(-1)
    nz = np.flatnonzero(lines)
    if nz.size == 0:
        return None
    lo, hi = int(nz[0]), int(nz[-1]) + 1
    if (lo == 0 and hi == lines.size) or not lines[lo:hi].all():
        return None
    return lo, hi


def parse_padding(value: str | Sequence[int] | None) -> str | tuple[int, int]:
    """The ``--padding`` option: ``"auto"`` (default, also for ``None``), ``"none"``, or ``"LEFT,RIGHT"``
    zero-padding column counts (also a 2-sequence) → ``"auto"`` | ``"none"`` | ``(left, right)``."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("auto", "none"):
            return v
        parts = v.replace(" ", "").split(",")
        try:
            left, right = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"padding must be 'auto', 'none' or 'LEFT,RIGHT' column counts, got {value!r}") from None
    else:
        if len(value) != 2:
            raise ValueError(f"padding must be (left, right) column counts, got {value!r}")
        left, right = (int(v) for v in value)
    if left < 0 or right < 0:
        raise ValueError(f"padding column counts must be >= 0, got {left},{right}")
    return left, right


def acquired_band(
    path: str | Path,
    padding: str | Sequence[int] | None = "auto",
    *,
    kspace: np.ndarray | None = None,
    header: dict[str, Any] | None = None,
    f: h5py.File | None = None,
    min_band_fraction: float = 0.5,
) -> AcquiredBand:
    """The acquired phase-encode band of a fastMRI-layout file.

    Args:
        path: the file (named in messages; read unless ``kspace``/``header`` are given).
        padding: ``"auto"`` — ``encodingLimits`` from the header (fastMRI's rule, see
            :func:`band_from_header`) when present and consistent with the data (no signal outside
            the band); otherwise all-zero columns at the edges of an otherwise fully sampled slice
            (:func:`detect_padding`, reported in ``note``); otherwise the full width.
            ``"none"`` — the full width. ``(left, right)`` or ``"LEFT,RIGHT"`` — that many padding columns.
        kspace: a slice ``(Nc, H, W)`` (or ``(H, W)``) to check/detect with (default: the middle slice).
        header: the parsed header (default: read from the file).
        f: an open handle of ``path`` (not closed).
        min_band_fraction: detection only: a band narrower than this fraction of ``W`` is taken as
            undersampling (e.g. a centre-only mask), not padding. A stored mask that is not all ones
            also rules detection out (its zero edge columns are unsampled lines); only the header or
            ``padding=(left, right)`` can then declare padding.
    """
    path = Path(path)
    pad = parse_padding(padding)
    own = f is None and (kspace is None or header is None)
    fh = open_fastmri(path) if own else f
    try:
        if fh is not None:
            s, nc, h, w, single = check_layout(fh, path)
        else:
            w = int(np.asarray(kspace).shape[-1])
        if pad == "none":
            return AcquiredBand(0, w, w, "none")
        if isinstance(pad, tuple):
            left, right = pad
            if left + right >= w:
                raise ValueError(f"{path}: padding {left},{right} leaves no column of the {w}")
            return AcquiredBand(left, w - right, w, "user")
        if header is None:
            xml = fh["ismrmrd_header"][()] if "ismrmrd_header" in fh else None
            try:
                header = parse_ismrmrd_header(xml)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
        stored = None
        if kspace is None:
            sl = read_fastmri_slice(path, s // 2, fh)
            kspace, stored = sl["kspace"], (sl["mask"] if sl["mask_stored"] else None)
        data = derive_line_mask(np.asarray(kspace))
        if stored is not None:
            data = data & (stored if stored.ndim == 1 else stored.any(axis=0))
    finally:
        if own and fh is not None:
            fh.close()
    note = ""
    hb = band_from_header(header, w)
    if hb is not None:
        lo, hi = hb
        if not data[:lo].any() and not data[hi:].any():
            return AcquiredBand(lo, hi, w, "header")
        note = (f"{path.name}: the header's encoding limits give columns {lo}..{hi - 1} but columns outside "
                "hold data; header padding ignored")
    det = detect_padding(data)
    if det is not None and stored is not None and not bool(np.all(stored)):
        det = None  # a stored undersampling mask: its zero edge columns are unsampled lines, not padding
    if det is not None and (det[1] - det[0]) < min_band_fraction * w:
        note = (note + "; " if note else "") + (
            f"{path.name}: only columns {det[0]}..{det[1] - 1} hold data (under {min_band_fraction:.0%} of the "
            f"{w}): treated as undersampled, not as zero padding; use --padding LEFT,RIGHT if it is padding")
        det = None
    if det is not None:
        lo, hi = det
        msg = (f"{path.name}: no usable encoding limits in the header; columns 0..{lo - 1} and {hi}..{w - 1} are "
               f"all zero around a fully sampled band: treated as zero padding ({lo} left, {w - hi} right); "
               "override with --padding none or LEFT,RIGHT")
        return AcquiredBand(lo, hi, w, "detected", (note + "; " if note else "") + msg)
    return AcquiredBand(0, w, w, "none", note)
