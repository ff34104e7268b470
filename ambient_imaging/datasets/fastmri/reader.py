"""Whole-file reading: a small file into memory (:func:`read_fastmri`) and a file's summary (:func:`fastmri_info`)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.problems import acs_from_lines

from .band import acquired_band
from .header import parse_ismrmrd_header, recon_size
from .layout import check_layout, open_fastmri, plain_attr, read_fastmri_slice

__all__ = ["read_fastmri", "fastmri_info"]


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
    with open_fastmri(path) as f:
        s, nc, h, w, single = check_layout(f, path)
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
        attrs = {a: plain_attr(v) for a, v in f.attrs.items()}
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
    st = path.stat()
    pad = padding if padding is None or isinstance(padding, str) else tuple(int(p) for p in padding)
    # one read per file version: a mixed training set asks twice (its mix, then its clean items)
    info = copy.deepcopy(_fastmri_info(str(path.resolve()), st.st_mtime_ns, st.st_size, pad))
    info["file"] = str(path)
    return info


@lru_cache(maxsize=4096)
def _fastmri_info(name: str, _mtime_ns: int, _size: int, padding: str | tuple[int, ...] | None) -> dict[str, Any]:
    path = Path(name)
    with open_fastmri(path) as f:
        s, nc, h, w, single = check_layout(f, path)
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
            "attrs": {k: plain_attr(v) for k, v in f.attrs.items()},
        }
    return info
