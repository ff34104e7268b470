"""Content checks of measurement files that a user should hear about before using them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["nonfinite_kspace"]


#: at most this many slices are scanned by :func:`nonfinite_kspace` (evenly spaced, first and last included)
MAX_SCANNED_SLICES = 256


def nonfinite_kspace(path: str | os.PathLike, dataset: str = "kspace",
                     max_slices: int = MAX_SCANNED_SLICES) -> dict[str, Any]:
    """Count NaN and Inf entries (complex: either part) of an HDF5 file's ``kspace``, slice by slice.

    A file of more than ``max_slices`` slices is sampled (evenly spaced slices): a file claiming 10⁹
    slices is not scanned for hours. Returns ``{"nan": N, "inf": M, "slices": [indices of affected
    slices], "checked": number of slices scanned, "total": number of slices}``.

    Raises:
        ValueError: the file is not HDF5 or holds no ``dataset`` (naming the file).
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err
    with f:
        if dataset not in f:
            raise ValueError(f"{path}: no {dataset!r} dataset")
        d = f[dataset]
        if not isinstance(d, h5py.Dataset):
            raise ValueError(f"{path}: {dataset!r} is a {type(d).__name__.lower()}, not a dataset")
        from ambient_imaging.limits import array_bytes, check_memory

        check_memory(array_bytes(d.shape[1:] if d.ndim >= 3 else d.shape, d.dtype.itemsize),
                     f"one {dataset} slice {tuple(d.shape[1:])}", str(path), "this file is too large for this machine")
        n_nan = n_inf = 0
        bad: list[int] = []
        total = int(d.shape[0]) if d.ndim >= 3 else 1
        picks = np.unique(np.linspace(0, total - 1, min(total, max(1, int(max_slices)))).round().astype(np.int64))
        for i in (int(v) for v in picks):
            a = np.asarray(d[i] if d.ndim >= 3 else d[()])
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            if nan or inf:
                bad.append(i)
            n_nan, n_inf = n_nan + nan, n_inf + inf
    return {"nan": n_nan, "inf": n_inf, "slices": bad, "checked": int(len(picks)), "total": total}
