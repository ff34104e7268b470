"""ISMRMRD header of a fastMRI file: parse (matrix sizes, FOV, encoding limits) and write a minimal one."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from .layout import open_fastmri

__all__ = ["parse_ismrmrd_header", "minimal_ismrmrd_header", "read_fastmri_header", "recon_size"]


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
    with open_fastmri(path) as f:
        xml = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
    try:
        return parse_ismrmrd_header(xml)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err



def recon_size(header: dict[str, Any]) -> tuple[int, int] | None:
    """``(h, w)`` of the header's ``reconSpace`` matrix (x along the readout H, y along W), or ``None``."""
    rec = header.get("recon_matrix")
    if rec is None or rec[0] is None or rec[1] is None:
        return None
    return int(rec[0]), int(rec[1])
