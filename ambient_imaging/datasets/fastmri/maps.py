"""ESPIRiT sensitivity maps cached in a sidecar ``<name>.maps.h5`` (validated by the source's size, mtime, shape)."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ambient_imaging.io import atomic_path
from ambient_imaging.limits import shown
from ambient_imaging.problems import acs_from_lines, calibration_width, estimate_coil_maps

from ..io import file_fingerprint, is_writable_dir, scan_files
from .layout import check_layout, open_fastmri, read_fastmri_slice

__all__ = ["maps_cache_path", "cache_valid", "load_or_compute_maps", "prepare_folder"]


def maps_cache_path(path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Sidecar ``<name>.maps.h5`` next to ``path``; under ``cache_dir`` (or when the folder is read-only,
    ``~/.cache/ambient-imaging/maps``) with a hash of the absolute path in the name."""
    path = Path(path)
    if cache_dir is None and is_writable_dir(path.parent):
        return path.with_name(path.stem + ".maps.h5")
    root = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "ambient-imaging" / "maps"
    tag = hashlib.sha1(os.fsencode(path.resolve())).hexdigest()[:12]  # any file name, UTF-8 or not
    return root / f"{path.stem}-{tag}.maps.h5"


def cache_valid(cache: Path, source: Path, shape: tuple[int, ...], calib: int | None = None, map_sets: int = 1) -> bool:
    """Whether ``cache`` holds maps of ``source`` as it is now (size, mtime, k-space shape, calibration, sets)."""
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
                and int(a.get("map_sets", 1)) == int(map_sets)
            )
    except OSError:
        return False


def _estimate_file(path: Path, f: h5py.File, acs_lines: int | None, map_sets: int) -> np.ndarray:
    s, nc, h, w, _single = check_layout(f, path)
    out = np.empty((s, nc, h, w) if map_sets == 1 else (s, map_sets, nc, h, w), dtype=np.complex64)
    for i in range(s):
        sl = read_fastmri_slice(path, i, f)
        lines = sl["mask"] if sl["mask"].ndim == 1 else sl["mask"].all(axis=0)
        acs = acs_from_lines(lines)
        cap = min(24, h) if acs_lines is None else int(acs_lines)
        if calibration_width(acs, cap) < 6:
            raise ValueError(
                f"{path}: slice {i}: ESPIRiT needs at least 6 centred calibration lines; the slice has "
                f"{int(acs.sum())} contiguous ACS lines and the calibration width asked for is {cap}"
            )
        out[i] = estimate_coil_maps(sl["kspace"], acs, cap, where=f"{path}: slice {i}", sets=map_sets)
    return out


def load_or_compute_maps(
    path: str | Path,
    cache_dir: str | Path | None = None,
    acs_lines: int | None = None,
    compute: bool = True,
    show_pbar: bool = False,
    *,
    f: h5py.File | None = None,
    map_sets: int = 1,
) -> np.ndarray:
    """ESPIRiT maps ``(slices, Nc, H, W)`` complex64 (``map_sets`` M > 1: ``(slices, M, Nc, H, W)``) for a
    multi-coil file, from the cache or computed.

    The cache is reused only if the source's size, mtime and k-space shape (and the calibration
    asked for and M) match; otherwise the maps are recomputed from the ACS of every slice
    (calibration width = the ACS width, capped at 24, or ``acs_lines``) and written atomically.
    With ``compute=False`` a missing/stale cache is an error. ``f``: an open handle of ``path``.
    """
    path = Path(path)
    cache = maps_cache_path(path, cache_dir)
    fh = open_fastmri(path) if f is None else f
    try:
        shape = tuple(int(v) for v in fh["kspace"].shape)
        if cache_valid(cache, path, shape, acs_lines, map_sets):
            with h5py.File(cache, "r") as c:
                return np.asarray(c["maps"][()], dtype=np.complex64)
        if not compute:
            raise FileNotFoundError(
                f"{path}: no valid sensitivity-map cache at {cache}; run `ambient-imaging data prepare {path.parent}`"
            )
        out = _estimate_file(path, fh, acs_lines, int(map_sets))
    finally:
        if f is None:
            fh.close()
    size, mtime = file_fingerprint(path)
    try:
        with atomic_path(cache, suffix=".h5") as tmp, h5py.File(tmp, "w") as c:
            c.create_dataset("maps", data=out, chunks=(1, *out.shape[1:]))
            c.attrs.update({"source": shown(path.resolve()), "source_size": size, "source_mtime_ns": mtime,
                            "kspace_shape": np.asarray(shape, dtype=np.int64),
                            "calib_request": -1 if acs_lines is None else int(acs_lines),
                            "map_sets": int(map_sets)})
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

    from ambient_imaging.limits import check_workers

    workers = check_workers(workers)  # 1 <= workers <= CPUs, before any file is read

    def layout(p: Path) -> tuple[bool, tuple[int, ...]]:
        with open_fastmri(p) as f:
            single = check_layout(f, p)[4]
            return single, tuple(int(v) for v in f["kspace"].shape)

    found, skipped = scan_files(paths, layout, strict=strict)
    todo, cached, single = [], 0, 0
    for p, (sc, shape) in found:
        if sc:
            single += 1
        elif cache_valid(maps_cache_path(p, cache_dir), p, shape, acs_lines):
            cached += 1
        else:
            todo.append(p)
    bar = tqdm(total=len(todo), desc="ESPIRiT maps", unit="file", disable=not todo)
    failed: list[tuple[str, str]] = []

    def done(p: Path, why: str | None) -> None:  # a file that fails is skipped (strict: stops the run)
        bar.update()
        if why is not None:
            if strict:
                raise ValueError(why)
            warnings.warn(f"skipping {why}", RuntimeWarning, stacklevel=3)
            failed.append((str(p), why.removeprefix(f"{p}: ")))

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as ex:
            for p, why in zip(todo, ex.map(_prepare_one, todo, [cache_dir] * len(todo), [acs_lines] * len(todo))):
                done(p, why)
    else:
        for p in todo:
            done(p, _prepare_one(p, cache_dir, acs_lines))
    bar.close()
    return {"files": len(found) + len(skipped), "computed": len(todo) - len(failed), "cached": cached,
            "single_coil": single, "skipped": skipped + failed}


def _prepare_one(path: Path, cache_dir: str | Path | None, acs_lines: int | None = None) -> str | None:
    """Compute one file's maps; ``None``, or why it failed (a message naming the file)."""
    try:
        load_or_compute_maps(path, cache_dir=cache_dir, acs_lines=acs_lines)
    except (ValueError, TypeError, OSError, IndexError, np.linalg.LinAlgError) as err:
        text = str(err)
        return text if str(path) in text else f"{path}: {text}"
    return None
