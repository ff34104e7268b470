"""Content checks of measurement files that a user should hear about before using them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["nonfinite_kspace"]


def nonfinite_kspace(path: str | os.PathLike, dataset: str = "kspace") -> dict[str, Any]:
    """Count NaN and Inf entries (complex: either part) of an HDF5 file's ``kspace``, slice by slice.

    Returns ``{"nan": N, "inf": M, "slices": [indices of affected slices]}``.

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
        n_nan = n_inf = 0
        bad: list[int] = []
        for i in range(d.shape[0] if d.ndim >= 3 else 1):
            a = np.asarray(d[i] if d.ndim >= 3 else d[()])
            nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
            if nan or inf:
                bad.append(i)
            n_nan, n_inf = n_nan + nan, n_inf + inf
    return {"nan": n_nan, "inf": n_inf, "slices": bad}
