"""Labelled reconstruction outputs: an xarray Dataset (NetCDF) and fastMRI leaderboard-layout HDF5.

Complex data: NetCDF has no complex type, so complex samples/mean are stored as two real
variables ``<name>_real`` and ``<name>_imag`` (attribute ``complex = 1`` on the Dataset);
:func:`load_reconstruction` (or :func:`load_netcdf` + :func:`to_complex`) rebuilds them.
This keeps the files readable by any NetCDF tool (no ``invalid_netcdf``) and round-trips exactly.
"""

from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from torch import Tensor

from ambient_imaging.io import atomic_path

if TYPE_CHECKING:  # xarray is imported on use: `import ambient_imaging.datasets` stays light
    import xarray as xr

__all__ = [
    "reconstruction_dataset",
    "save_netcdf",
    "load_netcdf",
    "load_reconstruction",
    "to_complex",
    "save_fastmri_reconstruction",
]

_DIMS = ("sample", "slice", "y", "x")


def _np(a: Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)


def reconstruction_dataset(
    samples: Tensor | np.ndarray,
    mean: Tensor | np.ndarray | None = None,
    std: Tensor | np.ndarray | None = None,
    *,
    reference: Tensor | np.ndarray | None = None,
    pixel_spacing: tuple[float, float] | float | None = None,
    pixel_spacing_mm: tuple[float, float] | float | None = None,
    wcs: Any = None,
    extra: dict[str, Tensor | np.ndarray] | None = None,
    **meta: Any,
) -> xr.Dataset:
    """Posterior samples and their statistics as an ``xarray.Dataset`` with dims ``(sample, slice, y, x)``.

    Args:
        samples: ``(K, S, H, W)`` real or complex.
        mean: ``(S, H, W)`` (defaults to the sample mean). std: ``(S, H, W)`` real (defaults to the
            sample std of the magnitude for complex samples, of the values otherwise; 0 for K = 1).
        reference: optional ``(S, H, W)`` ground truth (real or complex), stored like ``mean``.
        pixel_spacing (alias ``pixel_spacing_mm``): ``(dy, dx)`` in mm (or one float): adds
            ``y_mm`` / ``x_mm`` coordinates centred on the image.
        wcs: an ``astropy.wcs.WCS`` for sky images: its header is stored as the ``wcs`` attribute.
        extra: more ``(S, H, W)`` images stored like ``mean`` (e.g. ``zero_filled``, ``mask``).
        meta: provenance attributes (``command``, ``prior``, ``sampler``, ``steps``, ...);
            ``tool_version`` and ``date`` are filled in.
    """
    import xarray as xr

    from ambient_imaging import __version__

    if pixel_spacing is None:
        pixel_spacing = pixel_spacing_mm
    s = _np(samples)
    if s.ndim != 4:
        raise ValueError(f"reconstruction_dataset: samples must be (K, S, H, W), got shape {s.shape}")
    k, n_sl, h, w = s.shape
    is_c = np.iscomplexobj(s)
    m = s.mean(axis=0) if mean is None else _np(mean)
    if std is None:
        sd = (np.abs(s).std(axis=0) if is_c else s.std(axis=0)) if k > 1 else np.zeros((n_sl, h, w), np.float32)
    else:
        sd = _np(std)
    for name, arr in (("mean", m), ("std", sd)):
        if arr.shape != (n_sl, h, w):
            raise ValueError(f"reconstruction_dataset: {name} must be (S, H, W)=({n_sl}, {h}, {w}), got {arr.shape}")
    if np.iscomplexobj(sd):
        raise TypeError("reconstruction_dataset: std must be real")
    data_vars: dict[str, Any] = {}
    arrays = [("samples", s, _DIMS), ("mean", m, _DIMS[1:])]
    if reference is not None:
        ref = _np(reference)
        if ref.shape != (n_sl, h, w):
            raise ValueError(f"reconstruction_dataset: reference must be (S, H, W)=({n_sl}, {h}, {w}), got {ref.shape}")
        arrays.append(("reference", ref, _DIMS[1:]))
    for name, val in (extra or {}).items():
        arr = _np(val)
        if arr.shape != (n_sl, h, w):
            raise ValueError(f"reconstruction_dataset: {name} must be (S, H, W)=({n_sl}, {h}, {w}), got {arr.shape}")
        arrays.append((name, arr, _DIMS[1:]))
    for name, arr, dims in arrays:
        if np.iscomplexobj(arr):
            data_vars[f"{name}_real"] = (dims, arr.real.copy())
            data_vars[f"{name}_imag"] = (dims, arr.imag.copy())
        else:
            data_vars[name] = (dims, arr)
    data_vars["std"] = (_DIMS[1:], sd)
    coords: dict[str, Any] = {"sample": np.arange(k), "slice": np.arange(n_sl), "y": np.arange(h), "x": np.arange(w)}
    if pixel_spacing is not None:
        dy, dx = (pixel_spacing, pixel_spacing) if np.isscalar(pixel_spacing) else pixel_spacing
        coords["y_mm"] = ("y", (np.arange(h) - (h - 1) / 2) * float(dy))
        coords["x_mm"] = ("x", (np.arange(w) - (w - 1) / 2) * float(dx))
    attrs: dict[str, Any] = {
        "tool": "ambient-imaging",
        "tool_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "complex": int(any(np.iscomplexobj(a) for _, a, _ in arrays)),
    }
    if wcs is not None:
        attrs["wcs"] = wcs.to_header_string() if hasattr(wcs, "to_header_string") else str(wcs)
    for key, val in meta.items():
        attrs[key] = val if isinstance(val, (str, int, float, np.number)) else str(val)
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    for c in ("y_mm", "x_mm"):
        if c in ds.coords:
            ds[c].attrs["units"] = "mm"
    return ds


def to_complex(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Variable ``name`` (``samples`` / ``mean``), rebuilt as complex if stored as real/imag parts."""
    if name in ds:
        return ds[name]
    if f"{name}_real" in ds and f"{name}_imag" in ds:
        return ds[f"{name}_real"] + 1j * ds[f"{name}_imag"]
    raise KeyError(f"dataset has no variable {name!r}")


def save_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to NetCDF-4 (h5netcdf engine) atomically."""
    path = Path(path)
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_netcdf(path: str | Path) -> xr.Dataset:
    """Load a file written by :func:`save_netcdf` into memory (the file is closed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def load_reconstruction(path: str | Path) -> xr.Dataset:
    """Load a reconstruction NetCDF file with complex variables reassembled.

    ``samples``/``mean``/``reference`` stored as ``<name>_real`` + ``<name>_imag`` come back as
    one complex variable ``<name>``; everything else (``std``, coordinates, attributes) as stored.
    """
    ds = load_netcdf(path)
    for name in sorted({str(v)[: -len("_real")] for v in ds.data_vars if str(v).endswith("_real")}):
        if f"{name}_imag" in ds:
            z = to_complex(ds, name)
            z.attrs = dict(ds[f"{name}_real"].attrs)
            ds = ds.drop_vars([f"{name}_real", f"{name}_imag"]).assign({name: z})
    return ds


def save_fastmri_reconstruction(
    path: str | Path,
    magnitude: Tensor | np.ndarray,
    std: Tensor | np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """fastMRI leaderboard layout: a ``reconstruction`` dataset ``(S, H, W)`` float32 (atomic).

    ``std`` (optional, same shape) is stored as ``reconstruction_std``; ``attrs`` go on the root.
    """
    mag = _np(magnitude)
    if np.iscomplexobj(mag):
        raise TypeError("save_fastmri_reconstruction: magnitude must be real (take abs() first)")
    if mag.ndim != 3:
        raise ValueError(f"save_fastmri_reconstruction: magnitude must be (S, H, W), got {mag.shape}")
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=mag.astype(np.float32))
        if std is not None:
            sd = _np(std)
            if sd.shape != mag.shape:
                raise ValueError(f"save_fastmri_reconstruction: std shape {sd.shape} != magnitude shape {mag.shape}")
            f.create_dataset("reconstruction_std", data=sd.astype(np.float32))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (str, int, float, np.number)) else str(v)
    return path

