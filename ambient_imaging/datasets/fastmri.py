"""fastMRI-layout HDF5: reader (a streaming torch Dataset), writer, retrospective undersampling, ESPIRiT cache.

File layout (as distributed by fastMRI):

* ``kspace``: ``(slices, coils, H, W)`` complex64 (single-coil: ``(slices, H, W)``); phase
  encodes are the columns (``W``).
* ``mask`` (optional): ``(W,)`` sampled columns, ``(H, W)``, or per slice ``(slices, W)`` /
  ``(slices, H, W)``. Without it the mask is derived from which columns hold non-zero data.
* ``reconstruction_rss`` / ``reconstruction_esc`` (optional): ``(slices, h, w)`` references.
* ``ismrmrd_header``: ISMRMRD XML (encoded/recon matrix and FOV), and attributes
  (``acquisition``, ``max``, ``norm``, ``patient_id``, ...).

Sensitivity maps are estimated by ESPIRiT from the ACS on first use and cached in a sidecar
``<name>.maps.h5`` next to the data (or under ``cache_dir`` when the folder is read-only),
validated by the source file's size, mtime and k-space shape.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ambient_imaging.io import atomic_path
from ambient_imaging.metrics.image import center_crop
from ambient_imaging.problems import (
    MaskSpec,
    Normalisation,
    Problem,
    acs_from_lines,
    calibration_width,
    derive_line_mask,
    estimate_coil_maps,
    estimate_noise_sigma,
    mri_problem,
)

from .io import file_fingerprint, is_writable_dir, scan_files

__all__ = [
    "FastMRISlices",
    "AcquiredBand",
    "acquired_band",
    "band_from_header",
    "detect_padding",
    "parse_padding",
    "recon_size",
    "center_crop",
    "scoring_crop",
    "fastmri_reference",
    "parse_ismrmrd_header",
    "read_fastmri_header",
    "read_fastmri",
    "estimate_noise_sigma",
    "minimal_ismrmrd_header",
    "fastmri_info",
    "read_fastmri_slice",
    "write_fastmri",
    "undersample_file",
    "prepare_folder",
    "load_or_compute_maps",
    "maps_cache_path",
    "derive_line_mask",
    "acs_from_lines",
]

_MAX_OPEN = 8  # open HDF5 handles kept per worker process


# ---------------------------------------------------------------------------------------------
# ISMRMRD header
# ---------------------------------------------------------------------------------------------
def parse_ismrmrd_header(xml: str | bytes | None) -> dict[str, Any]:
    """Encoded/recon matrix sizes and FOV (mm) from an ISMRMRD XML header.

    Namespaces are ignored and missing fields are ``None``. Returns a dict with keys
    ``encoded_matrix``, ``recon_matrix`` (``(x, y, z)`` ints), ``encoded_fov_mm``,
    ``recon_fov_mm`` (``(x, y, z)`` floats), ``encoding_limits`` (``{name: (minimum, maximum,
    center)}`` for every ``encodingLimits`` child) and ``kspace_encoding_step_1`` (its
    ``(minimum, maximum, center)`` when complete, else ``None``: the phase-encode limits that
    give fastMRI's zero padding, see :func:`band_from_header`).
    """
    out: dict[str, Any] = {"encoded_matrix": None, "recon_matrix": None, "encoded_fov_mm": None, "recon_fov_mm": None,
                           "encoding_limits": {}, "kspace_encoding_step_1": None}
    if xml is None:
        return out
    if isinstance(xml, (bytes, np.bytes_)):
        xml = bytes(xml).decode("utf-8", errors="replace")
    try:
        root = ET.fromstring(str(xml).strip())
    except ET.ParseError as err:
        raise ValueError(f"ismrmrd_header is not valid XML ({err})") from err

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def child(node: ET.Element | None, name: str) -> ET.Element | None:
        if node is None:
            return None
        for c in node:
            if local(c.tag) == name:
                return c
        return None

    def triple(node: ET.Element | None, cast: type) -> tuple | None:
        if node is None:
            return None
        vals = []
        for k in ("x", "y", "z"):
            c = child(node, k)
            try:
                vals.append(cast(float(c.text)) if c is not None and c.text else None)
            except ValueError:
                vals.append(None)
        return tuple(vals)

    enc = child(root, "encoding")
    for space in ("encoded", "recon"):
        sp = child(enc, f"{space}Space")
        out[f"{space}_matrix"] = triple(child(sp, "matrixSize"), int)
        out[f"{space}_fov_mm"] = triple(child(sp, "fieldOfView_mm"), float)
    limits: dict[str, tuple[int | None, int | None, int | None]] = {}
    for lim in child(enc, "encodingLimits") if child(enc, "encodingLimits") is not None else []:
        vals = []
        for k in ("minimum", "maximum", "center"):
            c = child(lim, k)
            try:
                vals.append(int(float(c.text)) if c is not None and c.text else None)
            except ValueError:
                vals.append(None)
        limits[local(lim.tag)] = tuple(vals)  # type: ignore[assignment]
    out["encoding_limits"] = limits
    step1 = limits.get("kspace_encoding_step_1")
    out["kspace_encoding_step_1"] = step1 if step1 is not None and None not in step1 else None
    return out


def minimal_ismrmrd_header(
    shape: tuple[int, int],
    fov_mm: tuple[float, float] | None = None,
    *,
    recon_matrix: tuple[int, int] | None = None,
    recon_fov_mm: tuple[float, float] | None = None,
    padding: tuple[int, int] | None = None,
    encoding_limits: tuple[int, int, int] | None = None,
) -> str:
    """A minimal valid ISMRMRD header for k-space of shape ``(H, W)`` (readout x = H, phase y = W).

    Args:
        fov_mm: encoded field of view ``(x, y)`` in mm (default: the matrix size).
        recon_matrix / recon_fov_mm: ``reconSpace`` (default: the encoded ones). fastMRI knee files:
            encoded 640×368 (2× readout oversampling), recon 320×320.
        padding: zero-padding columns ``(left, right)`` of the phase-encode axis; written as
            ``encodingLimits/kspace_encoding_step_1`` so that fastMRI's rule gives them back
            (``center = W//2 − left``, ``maximum = W − right − left − 1``, ``minimum = 0``).
        encoding_limits: ``(minimum, maximum, center)`` of ``kspace_encoding_step_1`` written as given
            (excludes ``padding``). Without either, no ``encodingLimits`` element is written.
    """
    h, w = int(shape[0]), int(shape[1])
    fx, fy = fov_mm if fov_mm is not None else (float(h), float(w))
    rh, rw = (int(recon_matrix[0]), int(recon_matrix[1])) if recon_matrix is not None else (h, w)
    rfx, rfy = recon_fov_mm if recon_fov_mm is not None else ((fx * rh / h, fy * rw / w) if recon_matrix else (fx, fy))
    if padding is not None and encoding_limits is not None:
        raise ValueError("minimal_ismrmrd_header: give padding or encoding_limits, not both")
    if padding is not None:
        left, right = (int(v) for v in padding)
        if left < 0 or right < 0 or left + right >= w or left > w // 2:
            raise ValueError(f"minimal_ismrmrd_header: padding {padding} does not fit {w} columns around W//2")
        encoding_limits = (0, w - right - left - 1, w // 2 - left)

    def space(name: str, mh: int, mw: int, f1: float, f2: float) -> str:
        return (
            f"<{name}><matrixSize><x>{mh}</x><y>{mw}</y><z>1</z></matrixSize>"
            f"<fieldOfView_mm><x>{f1}</x><y>{f2}</y><z>1.0</z></fieldOfView_mm></{name}>"
        )

    limits = ""
    if encoding_limits is not None:
        lo, hi, c = (int(v) for v in encoding_limits)

        def lim(name: str, a: int, b: int, cc: int) -> str:
            return f"<{name}><minimum>{a}</minimum><maximum>{b}</maximum><center>{cc}</center></{name}>"

        limits = (
            "<encodingLimits>" + lim("kspace_encoding_step_1", lo, hi, c) + lim("kspace_encoding_step_2", 0, 0, 0)
            + lim("slice", 0, 0, 0) + "</encodingLimits>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        f"<encoding>{space('encodedSpace', h, w, fx, fy)}{space('reconSpace', rh, rw, rfx, rfy)}{limits}"
        "<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )


def read_fastmri_header(path: str | Path) -> dict[str, Any]:
    """Parse the ``ismrmrd_header`` of a fastMRI file (see :func:`parse_ismrmrd_header`); all ``None`` if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _open(path) as f:
        xml = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
    try:
        return parse_ismrmrd_header(xml)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


# ---------------------------------------------------------------------------------------------
# acquired band (zero padding of the phase-encode axis) and the reconstruction crop
# ---------------------------------------------------------------------------------------------
_BAND_SOURCES = ("header", "detected", "user", "none")


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
    fh = _open(path) if own else f
    try:
        if fh is not None:
            s, nc, h, w, single = _check_layout(fh, path)
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


def recon_size(header: dict[str, Any]) -> tuple[int, int] | None:
    """``(h, w)`` of the header's ``reconSpace`` matrix (x along the readout H, y along W), or ``None``."""
    rec = header.get("recon_matrix")
    if rec is None or rec[0] is None or rec[1] is None:
        return None
    return int(rec[0]), int(rec[1])


# center_crop: ambient_imaging.metrics.center_crop (fastMRI semantics), re-exported here


def scoring_crop(header: dict[str, Any], shape: tuple[int, int], crop: str | Sequence[int] | None = "auto"
                 ) -> tuple[int, int] | None:
    """The crop to score on: ``"auto"`` — the header's ``reconSpace`` when it is no larger than ``shape``
    (fastMRI: 320×320 of a 640×368 k-space), else ``None``; ``None``/``"none"`` — no crop; ``(h, w)``,
    ``"H,W"`` or ``"N"`` — that size (must fit ``shape``)."""
    if crop is None or (isinstance(crop, str) and crop.strip().lower() == "none"):
        return None
    if isinstance(crop, str) and crop.strip().lower() == "auto":
        rs = recon_size(header)
        if rs is None or rs[0] > shape[0] or rs[1] > shape[1]:
            return None
        return None if tuple(rs) == tuple(shape) else rs
    if isinstance(crop, str):
        parts = crop.replace("x", ",").split(",")
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"crop must be 'auto', 'none', 'N' or 'H,W', got {crop!r}") from None
        crop = (vals[0], vals[0]) if len(vals) == 1 else tuple(vals)
    c = tuple(int(v) for v in crop)
    if len(c) != 2 or min(c) < 1 or c[0] > shape[0] or c[1] > shape[1]:
        raise ValueError(f"crop {crop} does not fit the {shape[0]}x{shape[1]} image")
    return c  # type: ignore[return-value]


def fastmri_reference(
    path: str | Path,
    target: str = "rss",
    crop: str | Sequence[int] | None = "auto",
    slices: Sequence[int] | None = None,
    sens_maps: np.ndarray | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The scoring reference of a file, fastMRI's way: ``{"reference": (S, h, w) float32, "source", "crop",
    "data_range", "slices"}``.

    Args:
        target: ``"rss"`` — ``reconstruction_rss`` when the file has it (fastMRI's target), else the
            root-sum-of-squares of the fully sampled coil images ``|F⁻¹ k_c|``; ``"sense1"`` — the
            magnitude of the coil-combined image ``|Σ_c conj(S_c) F⁻¹ k_c|`` with ESPIRiT maps
            (``sens_maps`` ``(S, Nc, H, W)`` or the file's cache, :func:`load_or_compute_maps`).
        crop: see :func:`scoring_crop` (``"auto"``: ``reconSpace``, e.g. 320×320 of 640×368 k-space).
            ``reconstruction_rss`` is already at that size; it is only cropped further if asked.
        slices: slice indices (default all).

    ``data_range`` is the maximum over the returned slices (fastMRI's ``gt.max()`` for the volume).
    Needs fully sampled k-space inside the acquired band when the reference is computed from it.
    """
    from ambient_imaging.operators import ifft2c, rss

    if target not in ("rss", "sense1"):
        raise ValueError(f"fastmri_reference: target must be 'rss' or 'sense1', got {target!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _open(path) as f:
        s, nc, h, w, single = _check_layout(f, path)
        idx = list(range(s)) if slices is None else [int(i) for i in slices]
        if any(not 0 <= i < s for i in idx):
            raise IndexError(f"{path}: slices {idx} out of range (file has {s})")
        xml = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
        try:
            header = parse_ismrmrd_header(xml)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        c = scoring_crop(header, (h, w), crop)
        if target == "rss" and "reconstruction_rss" in f:
            ref = np.asarray(f["reconstruction_rss"][idx], dtype=np.float32)
            source = "reconstruction_rss"
            if c is not None and tuple(ref.shape[-2:]) != tuple(c):
                ref = center_crop(ref, c)
            c = tuple(int(v) for v in ref.shape[-2:])
        else:
            band = acquired_band(path, "auto", f=f)
            out = []
            maps = None
            if target == "sense1" and not single:
                maps = sens_maps if sens_maps is not None else load_or_compute_maps(path, cache_dir)
            for i in idx:
                sl = read_fastmri_slice(path, i, f)
                m = sl["mask"] if sl["mask"].ndim == 1 else sl["mask"].all(axis=0)
                if not m[band.lo : band.hi].all():
                    raise ValueError(f"{path}: slice {i} is undersampled inside the acquired band "
                                     f"(columns {band.lo}..{band.hi - 1}); the {target} reference needs full k-space")
                coil = ifft2c(torch.from_numpy(sl["kspace"]))
                if target == "rss":
                    img = rss(coil, dim=0)
                else:
                    img = coil[0].abs() if maps is None else (torch.from_numpy(maps[i]).conj() * coil).sum(0).abs()
                out.append(img.numpy().astype(np.float32))
            ref = np.stack(out)
            source = "rss of the fully sampled coil images" if target == "rss" else "|SENSE-1| (ESPIRiT maps)"
            if c is not None:
                ref = center_crop(ref, c)
    return {"reference": np.ascontiguousarray(ref), "source": source, "crop": c, "data_range": float(ref.max()),
            "slices": idx}


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------
# derive_line_mask, acs_from_lines, estimate_noise_sigma: ambient_imaging.problems (shared with reconstruction)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable HDF5 file (truncated or another format?): {err}") from err


def _check_layout(f: h5py.File, path: Path) -> tuple[int, int, int, int, bool]:
    """Validate ``kspace`` (and ``mask``) without reading k-space; returns ``(S, Nc, H, W, single_coil)``."""
    if "kspace" not in f:
        raise ValueError(f"{path}: no 'kspace' dataset (found: {sorted(f.keys())})")
    ks = f["kspace"]
    if not isinstance(ks, h5py.Dataset):
        raise ValueError(f"{path}: 'kspace' is not a dataset")
    if ks.dtype.kind != "c":
        raise ValueError(f"{path}: 'kspace' must be complex (complex64), got dtype {ks.dtype}")
    if ks.ndim == 3:
        s, h, w = ks.shape
        nc, single = 1, True
    elif ks.ndim == 4:
        s, nc, h, w = ks.shape
        single = False
    else:
        raise ValueError(
            f"{path}: 'kspace' must have shape (slices, coils, H, W) or (slices, H, W), got {tuple(ks.shape)}"
        )
    if min(s, nc, h, w) < 1:
        raise ValueError(f"{path}: 'kspace' is empty, shape {tuple(ks.shape)}")
    if "mask" in f:
        m = f["mask"]
        if m.shape[-1] != w:
            raise ValueError(f"{path}: 'mask' width {m.shape[-1]} does not match the k-space width {w}")
        if m.ndim == 2 and m.shape not in ((h, w), (s, w)):
            raise ValueError(f"{path}: 'mask' shape {tuple(m.shape)} is neither (H, W)=({h}, {w}) nor (slices, W)")
        if m.ndim == 3 and m.shape != (s, h, w):
            raise ValueError(f"{path}: 'mask' shape {tuple(m.shape)} does not match k-space (slices, H, W)")
        if m.ndim not in (1, 2, 3):
            raise ValueError(f"{path}: 'mask' must be (W,), (H, W) or per slice, got {tuple(m.shape)}")
    return s, nc, h, w, single


def _read_mask(f: h5py.File, s_idx: int, n_slices: int, h: int, w: int) -> np.ndarray | None:
    """The stored mask for slice ``s_idx`` as ``(W,)`` or ``(H, W)`` bool, or ``None``."""
    if "mask" not in f:
        return None
    m = f["mask"]
    if m.ndim == 1 or (m.ndim == 2 and m.shape == (h, w)):  # shared by all slices ((H, W) wins if ambiguous)
        arr = m[()]
    else:  # per slice: (slices, W) or (slices, H, W)
        arr = m[s_idx]
    arr = np.asarray(arr) != 0
    if arr.ndim == 2 and np.all(arr == arr[:1]):
        arr = arr[0]
    return arr


def read_fastmri_slice(path: str | Path, index: int, f: h5py.File | None = None) -> dict[str, Any]:
    """Read one slice: ``{"kspace": (Nc, H, W) complex64, "mask": (W,) or (H, W) bool, "mask_stored": bool}``.

    Raises ``ValueError`` naming the file for a bad layout or NaN/Inf values in this slice.
    """
    path = Path(path)
    own = f is None
    f = _open(path) if f is None else f
    try:
        s, nc, h, w, single = _check_layout(f, path)
        if not 0 <= index < s:
            raise IndexError(f"{path}: slice {index} out of range (file has {s})")
        k = np.asarray(f["kspace"][index], dtype=np.complex64)
        if single:
            k = k[None]
        if not np.isfinite(k.view(np.float32)).all():
            raise ValueError(f"{path}: k-space slice {index} holds NaN or Inf values")
        mask = _read_mask(f, index, s, h, w)
        stored = mask is not None
        if mask is None:
            mask = derive_line_mask(k)
        return {"kspace": k, "mask": mask, "mask_stored": stored}
    finally:
        if own:
            f.close()


def read_fastmri(path: str | Path, padding: str | Sequence[int] | None = "auto") -> dict[str, Any]:
    """Read a whole (small) file into memory, validated like :func:`read_fastmri_slice`.

    Returns ``{"kspace": (S, Nc, H, W) complex64 (single-coil: Nc = 1), "mask": the stored mask
    (bool, as stored) or None, "lines": (S, W) bool sampled columns per slice (stored mask, else
    non-zero columns; never the zero-padding columns), "band": :class:`AcquiredBand` (``padding``:
    see :func:`acquired_band`), "fully_sampled": (S,) bool (every column of the band sampled),
    "acceleration": (S,) float over the band, "attrs": dict, "header": parsed ISMRMRD header}``.
    For large files use :class:`FastMRISlices`, which streams slices.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _open(path) as f:
        s, nc, h, w, single = _check_layout(f, path)
        xml = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
        try:
            header = parse_ismrmrd_header(xml)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        band = acquired_band(path, padding, f=f, header=header)
        inside = band.column_mask()
        k = np.empty((s, nc, h, w), dtype=np.complex64)
        lines = np.empty((s, w), dtype=bool)
        fully = np.empty(s, dtype=bool)
        accel = np.empty(s, dtype=np.float64)
        for i in range(s):
            sl = read_fastmri_slice(path, i, f)
            k[i] = sl["kspace"]
            m = np.broadcast_to(sl["mask"], (h, w)) & inside[None]
            lines[i] = m.any(axis=0)
            inb = m[:, band.lo : band.hi]
            fully[i] = bool(inb.all())
            accel[i] = inb.size / max(int(inb.sum()), 1)
        mask = (np.asarray(f["mask"][()]) != 0) if "mask" in f else None
        attrs = {a: _plain(v) for a, v in f.attrs.items()}
    return {"kspace": k, "mask": mask, "lines": lines, "band": band, "fully_sampled": fully,
            "acceleration": accel, "attrs": attrs, "header": header}


def fastmri_info(path: str | Path, padding: str | Sequence[int] | None = "auto") -> dict[str, Any]:
    """Summary of a file (reads one slice for the mask): shape, coils, slices, mask, acceleration, header, attrs.

    The zero-padding columns (see :func:`acquired_band`) are outside the sampling: ``sampled_fraction``
    and ``acceleration`` are over the acquired band, and ``fully_sampled`` means every column of the
    band holds data. Also: ``band`` ``(lo, hi)``, ``padding`` ``(left, right)``, ``padding_source``,
    ``padding_note``, ``recon_size`` (``reconSpace``) and ``readout_oversampling`` (``H / recon h``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _open(path) as f:
        s, nc, h, w, single = _check_layout(f, path)
        sl = read_fastmri_slice(path, s // 2, f)
        hdr = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
        try:
            header = parse_ismrmrd_header(hdr)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        band = acquired_band(path, padding, f=f, header=header)
        full = np.broadcast_to(sl["mask"], (h, w)) & band.column_mask()[None]
        lines = full.any(axis=0)
        inb = full[:, band.lo : band.hi]
        frac = float(inb.mean())
        rs = recon_size(header)
        info = {
            "file": str(path),
            "kspace_shape": tuple(int(v) for v in f["kspace"].shape),
            "slices": s,
            "coils": nc,
            "single_coil": single,
            "matrix": (h, w),
            "mask_stored": sl["mask_stored"],
            "sampled_fraction": frac,
            "acceleration": (1.0 / frac) if frac > 0 else float("inf"),
            "fully_sampled": bool(inb.all()),
            "band": band.bounds,
            "padding": band.padding,
            "padding_source": band.source,
            "padding_note": band.note,
            "recon_size": rs,
            "readout_oversampling": (h / rs[0]) if rs else None,
            "acs_lines": int(acs_from_lines(lines).sum()),
            "header": header,
            "datasets": sorted(f.keys()),
            "attrs": {k: _plain(v) for k, v in f.attrs.items()},
        }
    return info


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def write_fastmri(
    path: str | Path,
    kspace: np.ndarray | Tensor,
    mask: np.ndarray | Tensor | None = None,
    reconstruction_rss: np.ndarray | Tensor | None = None,
    header_xml: str | bool | None = None,
    attrs: dict[str, Any] | None = None,
    fov_mm: tuple[float, float] | None = None,
    compression: str | None = None,
    *,
    padding: tuple[int, int] | None = None,
    recon_matrix: tuple[int, int] | None = None,
) -> Path:
    """Write a fastMRI-layout file atomically.

    Args:
        kspace: ``(slices, coils, H, W)`` or single-coil ``(slices, H, W)`` complex.
        mask: ``(W,)`` columns, ``(H, W)``, or per slice; stored as ``float32`` 0/1 like fastMRI.
        reconstruction_rss: optional ``(slices, h, w)`` reference magnitude.
        header_xml: ISMRMRD XML; a minimal one (matrix ``H × W``, ``fov_mm``, and ``padding`` /
            ``recon_matrix`` as :func:`minimal_ismrmrd_header` writes them) is generated if ``None``;
            ``False`` writes no ``ismrmrd_header`` (a header-less file).
        padding: zero-padding columns ``(left, right)`` written as ``encodingLimits`` (fastMRI's rule).
        recon_matrix: ``reconSpace`` matrix ``(h, w)`` (fastMRI knee: ``(320, 320)``).
        attrs: extra root attributes; ``acquisition`` defaults to ``"unknown"`` and ``max`` /
            ``norm`` are computed from ``reconstruction_rss`` when given.
        compression: HDF5 filter for ``kspace`` (e.g. ``"gzip"``; fastMRI files use none). Zeroed
            (unsampled) columns of undersampled k-space compress to almost nothing.
    """
    k = kspace.detach().cpu().numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    if not np.iscomplexobj(k):
        raise TypeError(f"write_fastmri: kspace must be complex, got {k.dtype}")
    if k.ndim not in (3, 4):
        raise ValueError(f"write_fastmri: kspace must be (slices, coils, H, W) or (slices, H, W), got {k.shape}")
    h, w = k.shape[-2:]
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64), chunks=(1, *k.shape[1:]), compression=compression)
        if mask is not None:
            m = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
            if m.shape[-1] != w:
                raise ValueError(f"write_fastmri: mask width {m.shape[-1]} does not match the k-space width {w}")
            f.create_dataset("mask", data=(m != 0).astype(np.float32))
        if reconstruction_rss is not None:
            r = reconstruction_rss
            r = np.asarray(r.detach().cpu().numpy() if isinstance(r, Tensor) else r, dtype=np.float32)
            f.create_dataset("reconstruction_rss", data=r)
            f.attrs["max"] = float(r.max())
            f.attrs["norm"] = float(np.linalg.norm(r))
        if header_xml is not False:
            xml = header_xml if isinstance(header_xml, str) and header_xml else minimal_ismrmrd_header(
                (h, w), fov_mm, padding=padding, recon_matrix=recon_matrix)
            f.create_dataset("ismrmrd_header", data=np.bytes_(xml))
        f.attrs["acquisition"] = "unknown"
        for key, val in (attrs or {}).items():
            f.attrs[key] = val
    return path


def undersample_file(
    src: str | Path,
    dst: str | Path,
    acceleration: float,
    center_fraction: float = 0.08,
    kind: str = "random",
    seed: int = 0,
    same_mask: bool = True,
    padding: str | Sequence[int] | None = "auto",
) -> dict[str, Any]:
    """Retrospectively undersample a fully sampled fastMRI file into ``dst`` (atomic).

    One 1-D mask (``same_mask``) or one per slice is drawn with :func:`~ambient_imaging.operators.mri_mask`
    (lines = columns) over the full width and zeroed outside the acquired band (``padding``, see
    :func:`acquired_band`; fastMRI's ``apply_mask(padding=...)``); unsampled k-space is zeroed and the
    mask is stored. References (``reconstruction_rss``) and the header are copied. Returns
    ``{"acceleration": achieved R over the band, "sampled_fraction", "band": (lo, hi), ...}``.
    """
    from ambient_imaging.operators import apply_band, mri_mask

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"undersample_file: destination {dst} is the source file")
    with _open(src) as f:
        s, nc, h, w, single = _check_layout(f, src)
        k = np.asarray(f["kspace"][()], dtype=np.complex64)
        if not np.isfinite(k.view(np.float32)).all():
            raise ValueError(f"{src}: k-space holds NaN or Inf values")
        rss_ref = f["reconstruction_rss"][()] if "reconstruction_rss" in f else None
        hdr = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
        attrs = {a: f.attrs[a] for a in f.attrs if a not in ("max", "norm")}
        band = acquired_band(src, padding, f=f, kspace=k[s // 2])
    g = torch.Generator().manual_seed(int(seed))
    masks, _ = mri_mask((h, w), acceleration, center_fraction=center_fraction, kind=kind, batch=1 if same_mask else s,
                        generator=g)
    m = apply_band(masks, band.bounds).numpy()
    lines = m[:, 0, :] if np.all(m == m[:, :1, :]) else None
    kview = k if not single else k[:, None]
    if lines is not None:
        kview *= (lines[:, None, None, :] if not same_mask else lines[0][None, None, None, :])
        stored = lines[0] if same_mask else lines
    else:
        kview *= m[:, None] if not same_mask else m[0][None, None]
        stored = m[0] if same_mask else m
    write_fastmri(dst, k, mask=stored, reconstruction_rss=rss_ref,
                  header_xml=None if hdr is None else bytes(hdr).decode("utf-8", "replace"),
                  attrs={**attrs, "acceleration": float(acceleration), "mask_kind": kind, "mask_seed": int(seed)})
    frac = float(np.mean(np.asarray(stored)[..., band.lo : band.hi]))
    return {"file": str(dst), "acceleration": 1.0 / frac, "sampled_fraction": frac, "band": band.bounds,
            "padding_source": band.source}


# ---------------------------------------------------------------------------------------------
# ESPIRiT maps cache
# ---------------------------------------------------------------------------------------------
def maps_cache_path(path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Sidecar ``<name>.maps.h5`` next to ``path``; under ``cache_dir`` (or when the folder is read-only,
    ``~/.cache/ambient-imaging/maps``) with a hash of the absolute path in the name."""
    path = Path(path)
    if cache_dir is None and is_writable_dir(path.parent):
        return path.with_name(path.stem + ".maps.h5")
    root = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "ambient-imaging" / "maps"
    tag = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return root / f"{path.stem}-{tag}.maps.h5"


def _cache_valid(cache: Path, source: Path, shape: tuple[int, ...], calib: int | None = None) -> bool:
    if not cache.is_file():
        return False
    size, mtime = file_fingerprint(source)
    try:
        with h5py.File(cache, "r") as c:
            a = c.attrs
            return (
                "maps" in c
                and int(a.get("source_size", -1)) == size
                and int(a.get("source_mtime_ns", -1)) == mtime
                and tuple(int(v) for v in a.get("kspace_shape", ())) == tuple(shape)
                and int(a.get("calib_request", -1)) == (-1 if calib is None else int(calib))
            )
    except OSError:
        return False


def load_or_compute_maps(
    path: str | Path,
    cache_dir: str | Path | None = None,
    acs_lines: int | None = None,
    compute: bool = True,
    show_pbar: bool = False,
) -> np.ndarray:
    """ESPIRiT maps ``(slices, Nc, H, W)`` complex64 for a multi-coil file, from the cache or computed.

    The cache is reused only if the source's size, mtime and k-space shape match; otherwise the
    maps are recomputed from the ACS of every slice (calibration width = the ACS width, capped at 24,
    or ``acs_lines``) and written atomically. With ``compute=False`` a missing/stale cache is an error.
    """
    path = Path(path)
    cache = maps_cache_path(path, cache_dir)
    with _open(path) as f:
        s, nc, h, w, single = _check_layout(f, path)
        shape = tuple(int(v) for v in f["kspace"].shape)
        if _cache_valid(cache, path, shape, acs_lines):
            with h5py.File(cache, "r") as c:
                return np.asarray(c["maps"][()], dtype=np.complex64)
        if not compute:
            raise FileNotFoundError(
                f"{path}: no valid sensitivity-map cache at {cache}; run `ambient-imaging data prepare {path.parent}`"
            )
        out = np.empty((s, nc, h, w), dtype=np.complex64)
        for i in range(s):
            sl = read_fastmri_slice(path, i, f)
            lines = sl["mask"] if sl["mask"].ndim == 1 else sl["mask"].all(axis=0)
            acs = acs_from_lines(lines)
            n_acs = int(acs.sum())
            cap = min(24, h) if acs_lines is None else int(acs_lines)
            if calibration_width(acs, cap) < 6:
                raise ValueError(
                    f"{path}: slice {i}: ESPIRiT needs at least 6 centred calibration lines; the slice has {n_acs} "
                    f"contiguous ACS lines and the calibration width asked for is {cap}"
                )
            out[i] = estimate_coil_maps(sl["kspace"], acs, cap, where=f"{path}: slice {i}")
    size, mtime = file_fingerprint(path)
    try:
        with atomic_path(cache, suffix=".h5") as tmp, h5py.File(tmp, "w") as c:
            c.create_dataset("maps", data=out, chunks=(1, nc, h, w))
            c.attrs.update({"source": str(path.resolve()), "source_size": size, "source_mtime_ns": mtime,
                            "kspace_shape": np.asarray(shape, dtype=np.int64),
                            "calib_request": -1 if acs_lines is None else int(acs_lines)})
    except OSError as err:
        warnings.warn(f"{path}: could not write the sensitivity-map cache {cache} ({err}); pass cache_dir=",
                      RuntimeWarning, stacklevel=2)
    return out


def prepare_folder(
    paths: str | Path | Sequence[str | Path],
    cache_dir: str | Path | None = None,
    workers: int = 1,
    strict: bool = False,
    acs_lines: int | None = None,
) -> dict[str, Any]:
    """Compute (or validate) ESPIRiT maps for every multi-coil file, with a progress bar.

    ``acs_lines``: calibration width (default: each slice's contiguous ACS, capped at 24); use
    the value :class:`FastMRISlices` will ask for (it is part of the cache key). Broken files are
    skipped with a warning (``strict=True``: raise).

    Returns ``{"files": n, "computed": n, "cached": n, "single_coil": n, "skipped": [(file, reason), ...]}``.
    """
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    def layout(p: Path) -> tuple[bool, tuple[int, ...]]:
        with _open(p) as f:
            single = _check_layout(f, p)[4]
            return single, tuple(int(v) for v in f["kspace"].shape)

    found, skipped = scan_files(paths, layout, strict=strict)
    todo, cached, single = [], 0, 0
    for p, (sc, shape) in found:
        if sc:
            single += 1
        elif _cache_valid(maps_cache_path(p, cache_dir), p, shape, acs_lines):
            cached += 1
        else:
            todo.append(p)
    bar = tqdm(total=len(todo), desc="ESPIRiT maps", unit="file", disable=not todo)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for _ in ex.map(_prepare_one, todo, [cache_dir] * len(todo), [acs_lines] * len(todo)):
                bar.update()
    else:
        for p in todo:
            _prepare_one(p, cache_dir, acs_lines)
            bar.update()
    bar.close()
    return {"files": len(found) + len(skipped), "computed": len(todo), "cached": cached, "single_coil": single,
            "skipped": skipped}


def _prepare_one(path: Path, cache_dir: str | Path | None, acs_lines: int | None = None) -> None:
    load_or_compute_maps(path, cache_dir=cache_dir, acs_lines=acs_lines)


# ---------------------------------------------------------------------------------------------
# the Dataset
# ---------------------------------------------------------------------------------------------
class FastMRISlices(Dataset):
    """One item per k-space slice of a set of fastMRI-layout files, streamed from disk.

    Args:
        paths: a file, a folder (``*.h5`` recursively; ``*.maps.h5`` sidecars ignored), a glob, or a list.
        sens_maps: ``"espirit"`` (estimate from the ACS on first use, cache in a sidecar),
            ``"cache-only"`` (use ``data prepare`` caches; missing is an error) or ``None``
            (single-coil files only).
        cache_dir: where the maps cache lives when not next to the data.
        acs_lines: ESPIRiT calibration width (default: the file's contiguous ACS, capped at 24).
        transform: optional callable applied to each item dict.
        strict: a broken file raises instead of being skipped with a warning.
        reference: ``False``/``None`` (default: training never sees clean data); ``True``: add
            ``item["reference"]``, the coil-combined complex image ``Σ_c conj(S_c)·F^{-1}k_c``
            (``(1, H, W)`` complex, divided by the scale; needs a fully sampled slice, e.g. with
            ``acceleration``); ``"rss"``: ``(1, h, w)`` real from ``reconstruction_rss`` or, for a
            fully sampled slice, the RSS of its coil images.
        mask_spec: retrospective undersampling of *fully sampled* slices
            (:class:`~ambient_imaging.problems.MaskSpec`; slices that are already undersampled keep
            their own mask). One mask per slice, ``mask_spec.sample(shape, key="<file name>:<slice>")``:
            the same every epoch, in every worker, and the same rule ``reconstruct`` uses. ESPIRiT
            then calibrates on the mask's centre lines (what the undersampled acquisition has).
        acceleration, center_fraction, mask_kind, mask_seed: shorthand for
            ``mask_spec=MaskSpec(mask_kind, acceleration, center_fraction=..., seed=mask_seed)``.
        noise_sigma: k-space noise std in file units (divided by the scale like ``y``), or
            ``"estimate"``: a robust (MAD) estimate from the outermost 1/16 of readout rows of
            the sampled columns — an over-estimate when those rows still hold signal — or
            ``"auto"`` (default): the file's ``attrs["noise_sigma"]`` when it has one (the embedded
            sets do), else the estimate. ``0`` treats the data as noiseless.
        percentile: percentile for :func:`~ambient_imaging.datasets.normalize.measurement_scale`.
        padding: zero-padding of the phase-encode axis, per file (:func:`acquired_band`):
            ``"auto"`` (header ``encodingLimits``, else detected edge bands of zero columns),
            ``"none"`` or ``(left, right)``. Padding columns are outside the sampling: never in the
            operator's mask (so never rows that ambient subsampling drops or the loss scores), not
            counted as missed lines ("fully sampled" = every column of the band), and excluded from
            the acceleration; retrospective masks are drawn over the full width and zeroed outside
            the band, as fastMRI does. :meth:`padding_notes` lists the files whose padding was detected.

    Items are built by :func:`~ambient_imaging.problems.mri_problem` (the builder reconstruction uses):
    ``{"y": (Nc, H, W) complex64 k-space / scale, "operator": MultiCoilMRI (batch 1, ACS = the
    contiguous fully sampled centre block of columns), "scale": float, "meta": {...}}``.

    Construction reads only shapes; files are opened lazily in ``__getitem__`` by each worker
    process (a small per-pid handle cache, never shared across ``fork``); the index is two
    compact integer arrays, so memory does not grow with the number of files beyond their paths.
    """

    @property
    def normalisation(self) -> Normalisation:
        """How ``y`` is normalised (stored with a trained prior)."""
        return Normalisation("measurement", percentile=self.percentile)

    @property
    def scale_rule(self) -> str:
        """:meth:`Normalisation.describe` of :attr:`normalisation`."""
        return self.normalisation.describe()

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        sens_maps: str | None = "espirit",
        cache_dir: str | Path | None = None,
        acs_lines: int | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        strict: bool = False,
        reference: str | None = None,
        noise_sigma: float | str = "auto",
        percentile: float = 99.0,
        acceleration: float | None = None,
        center_fraction: float | None = None,
        mask_kind: str = "random",
        mask_seed: int = 0,
        mask_spec: MaskSpec | None = None,
        padding: str | Sequence[int] | None = "auto",
    ):
        self.padding = parse_padding(padding)
        if sens_maps not in ("espirit", "cache-only", None):
            raise ValueError(f"FastMRISlices: sens_maps must be 'espirit', 'cache-only' or None, got {sens_maps!r}")
        if reference not in (None, False, True, "rss"):
            raise ValueError(f"FastMRISlices: reference must be True, False or 'rss', got {reference!r}")
        if acceleration is not None and not float(acceleration) >= 1.0:
            raise ValueError(f"FastMRISlices: acceleration must be >= 1, got {acceleration}")
        if mask_spec is None and acceleration is not None:
            mask_spec = MaskSpec(mask_kind, float(acceleration), center_fraction=center_fraction, seed=int(mask_seed))
        self.mask_spec = mask_spec
        if not (noise_sigma in ("estimate", "auto") or isinstance(noise_sigma, (int, float))):
            raise ValueError(f"FastMRISlices: noise_sigma must be a float, 'auto' or 'estimate', got {noise_sigma!r}")
        self.sens_maps, self.cache_dir, self.acs_lines = sens_maps, cache_dir, acs_lines
        self.transform, self.reference = transform, (None if reference is False else reference)
        self.noise_sigma, self.percentile = noise_sigma, percentile

        def n_slices(p: Path) -> int:
            with _open(p) as f:
                s, nc, h, w, single = _check_layout(f, p)
            if nc > 1 and sens_maps is None:
                raise ValueError(f"{p}: multi-coil k-space needs sens_maps='espirit' or 'cache-only'")
            return s

        found, self.skipped = scan_files(paths, n_slices, strict=strict)
        files, counts = [str(p) for p, _ in found], [c for _, c in found]
        if not files:
            raise ValueError(f"FastMRISlices: no readable fastMRI files in {paths!r}")
        self.files = files
        self._file_idx = np.repeat(np.arange(len(files), dtype=np.int32), counts)
        self._slice_idx = np.concatenate([np.arange(c, dtype=np.int32) for c in counts])
        self._handles: dict[int, dict[int, h5py.File]] = {}
        self._maps: dict[int, tuple[tuple[int, int | None], np.ndarray]] = {}  # pid -> ((file, calib), maps)
        # per-file acquired band, compact (lo, hi, W, source code; lo = -1: not read yet), notes only when set
        self._band_arr = np.full((len(files), 4), -1, dtype=np.int32)
        self._band_notes: dict[int, str] = {}

    def __len__(self) -> int:
        return int(self._file_idx.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_maps"] = {}, {}
        return state

    def _file(self, fi: int) -> h5py.File:
        pid = os.getpid()
        cache = self._handles.setdefault(pid, {})
        for other in [p for p in self._handles if p != pid]:
            self._handles.pop(other)  # inherited over fork: drop (never use or close another process's handle)
        if fi not in cache:
            if len(cache) >= _MAX_OPEN:
                cache.pop(next(iter(cache))).close()
            cache[fi] = _open(Path(self.files[fi]))
        return cache[fi]

    def band(self, file_index: int) -> AcquiredBand:
        """The acquired band of ``self.files[file_index]`` (computed once: the header, or one slice read)."""
        fi = int(file_index)
        lo, hi, w, src = (int(v) for v in self._band_arr[fi])
        if lo < 0:
            b = acquired_band(self.files[fi], self.padding, f=self._file(fi))
            self._band_arr[fi] = (b.lo, b.hi, b.width, _BAND_SOURCES.index(b.source))
            if b.note:
                self._band_notes[fi] = b.note
            return b
        return AcquiredBand(lo, hi, w, _BAND_SOURCES[src], self._band_notes.get(fi, ""))

    def padding_notes(self) -> list[str]:
        """One line per file whose padding was detected or whose header limits were ignored (reads every file)."""
        return [b.note for b in (self.band(i) for i in range(len(self.files))) if b.note]

    def close(self) -> None:
        """Close this process's open files."""
        for f in self._handles.pop(os.getpid(), {}).values():
            f.close()

    def open_handles(self) -> int:
        """Number of HDF5 files this process holds open (bounded by a small constant)."""
        return len(self._handles.get(os.getpid(), {}))

    def _coil_maps(self, fi: int, s: int, w: int, fully_sampled: bool = False) -> np.ndarray:
        pid = os.getpid()
        hit = self._maps.get(pid)
        calib = self.acs_lines
        if calib is None and fully_sampled and self.mask_spec is not None:
            calib = min(24, self.mask_spec.center_width(w))  # calibrate on what the undersampled data will hold
        if hit is None or hit[0] != (fi, calib):
            maps = load_or_compute_maps(self.files[fi], self.cache_dir, calib, compute=self.sens_maps == "espirit")
            self._maps = {pid: ((fi, calib), maps)}
            hit = self._maps[pid]
        return hit[1][s]

    def _noise_sigma(self, fi: int) -> float | None:
        """File ``fi``'s k-space noise std in file units (``None``: estimate it from the slice)."""
        if self.noise_sigma == "estimate":
            return None
        if self.noise_sigma == "auto":
            v = self._file(fi).attrs.get("noise_sigma")
            try:
                v = float(np.asarray(v).reshape(-1)[0]) if v is not None else None
            except (TypeError, ValueError, IndexError):
                v = None
            return v if v is not None and np.isfinite(v) and v >= 0 else None
        return float(self.noise_sigma)

    def problem(self, index: int, reference: bool = False) -> Problem:
        """The :class:`~ambient_imaging.problems.Problem` of item ``index`` (file units), built by
        :func:`~ambient_imaging.problems.mri_problem` — the builder ``reconstruct`` uses."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"FastMRISlices: index {index} out of range ({len(self)} slices)")
        index = index % len(self)
        fi, s = int(self._file_idx[index]), int(self._slice_idx[index])
        path = Path(self.files[fi])
        sl = read_fastmri_slice(path, s, self._file(fi))
        k = sl["kspace"]
        band = self.band(fi)
        fully = bool(np.all(sl["mask"][..., band.lo : band.hi]))
        maps = None if k.shape[0] == 1 else self._coil_maps(fi, s, k.shape[-1], fully)
        sigma = self._noise_sigma(fi)
        return mri_problem(k, stored_mask=sl["mask"] if sl["mask_stored"] else None, mask_spec=self.mask_spec,
                           key=f"{path.name}:{s}", band=band.bounds, maps=maps, noise_sigma=sigma,
                           reference=reference,
                           normalisation=self.normalisation, where=f"{path}: slice {s}",
                           meta={"file": str(path), "slice": s})

    def __getitem__(self, index: int) -> dict[str, Any]:
        prob = self.problem(index, reference=self.reference is not None)
        item = prob.training_item()
        scale = item["scale"]
        if self.reference is True:
            if prob.reference is None:
                raise ValueError(f"{prob.meta['file']}: slice {prob.meta['slice']} is undersampled; "
                                 "reference=True needs fully sampled k-space")
            item["reference"] = prob.reference[0].to(torch.complex64) / scale
        elif self.reference == "rss":
            f = self._file(int(self._file_idx[index % len(self)]))
            if "reconstruction_rss" in f:
                ref = torch.from_numpy(np.asarray(f["reconstruction_rss"][prob.meta["slice"]], dtype=np.float32))[None]
            elif "rss" in prob.extras:
                ref = prob.extras["rss"][0].float()
            else:
                raise ValueError(f"{prob.meta['file']}: reference='rss' needs 'reconstruction_rss' or a fully "
                                 "sampled file")
            item["reference"] = ref / scale
        return self.transform(item) if self.transform is not None else item
