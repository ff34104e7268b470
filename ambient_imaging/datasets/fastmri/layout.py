"""The fastMRI HDF5 layout: open a file, validate ``kspace``/``mask`` shapes, read one slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ambient_imaging.problems import derive_line_mask

__all__ = ["open_fastmri", "check_layout", "read_fastmri_slice", "plain_attr"]


def open_fastmri(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable HDF5 file (truncated or another format?): {err}") from err


def check_layout(f: h5py.File, path: Path) -> tuple[int, int, int, int, bool]:
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
    from ambient_imaging.limits import array_bytes, check_memory, shown

    check_memory(4 * array_bytes((nc, h, w), 8), f"one k-space slice ({nc} coils, {h}x{w}) and its working copies",
                 shown(path), "this file's matrix is too large for this machine")
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
    f = open_fastmri(path) if f is None else f
    try:
        s, nc, h, w, single = check_layout(f, path)
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



def plain_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
