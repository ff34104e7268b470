"""Scoring reference and crop, fastMRI's way: ``reconstruction_rss`` (or RSS / SENSE-1) on the ``reconSpace`` crop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_imaging.metrics.image import center_crop

from .band import acquired_band
from .header import parse_ismrmrd_header, recon_size
from .layout import check_layout, open_fastmri, read_fastmri_slice
from .maps import load_or_compute_maps

__all__ = ["center_crop", "scoring_crop", "fastmri_reference"]

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
    with open_fastmri(path) as f:
        s, nc, h, w, single = check_layout(f, path)
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
