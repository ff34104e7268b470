"""BART's ``.cfl``/``.hdr`` file pair (complex float32, column-major), for cross-checks against BART.

``write_cfl(stem, arr)`` writes ``stem.hdr`` (the dimensions) and ``stem.cfl`` (the data in Fortran
order); ``read_cfl(stem)`` reads them back, padded to 5 dimensions ``(x, y, z, coil, maps)`` (BART
writes up to 16, trailing ones 1). One reader and writer, used by the BART tests and benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_cfl", "read_cfl"]


def write_cfl(stem: str | Path, arr: np.ndarray) -> None:
    """``stem.hdr`` + ``stem.cfl`` holding ``arr`` as complex64 in BART's (column-major) layout."""
    stem = Path(stem)
    stem.with_suffix(".hdr").write_text("# Dimensions\n" + " ".join(str(d) for d in arr.shape) + "\n")
    np.asarray(arr, dtype=np.complex64).ravel(order="F").tofile(stem.with_suffix(".cfl"))


def read_cfl(stem: str | Path, ndim: int = 5) -> np.ndarray:
    """The array of ``stem.hdr`` + ``stem.cfl``, with its first ``ndim`` dimensions (missing ones 1)."""
    stem = Path(stem)
    try:
        dims = [int(d) for d in stem.with_suffix(".hdr").read_text().splitlines()[1].split()]
    except (OSError, IndexError, ValueError) as err:
        raise ValueError(f"{stem.with_suffix('.hdr')}: not a BART header ({err})") from err
    dims = (dims + [1] * ndim)[:ndim]
    return np.fromfile(stem.with_suffix(".cfl"), dtype=np.complex64).reshape(dims, order="F")
