"""Folder scans and cache fingerprints for the dataset readers (atomic writes: :mod:`ambient_imaging.io`)."""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["expand_paths", "scan_files", "is_writable_dir", "file_fingerprint"]

T = TypeVar("T")


def scan_files(
    paths: str | Path | Sequence[str | Path],
    check: Callable[[Path], T],
    strict: bool = False,
    suffixes: tuple[str, ...] = (".h5", ".hdf5"),
) -> tuple[list[tuple[Path, T]], list[tuple[str, str]]]:
    """Run ``check(file)`` on every file named by ``paths`` (see :func:`expand_paths`).

    A file whose ``check`` raises ``ValueError``/``TypeError``/``OSError`` is skipped with a
    ``RuntimeWarning`` naming it and the reason (``strict=True``: the error propagates).
    Returns ``([(file, check result), ...], [(skipped file, reason), ...])``.
    """
    ok: list[tuple[Path, T]] = []
    skipped: list[tuple[str, str]] = []
    for p in expand_paths(paths, suffixes):
        try:
            ok.append((p, check(p)))
        except (ValueError, TypeError, OSError) as err:
            if strict:
                raise
            warnings.warn(f"skipping {p}: {err}", RuntimeWarning, stacklevel=2)
            skipped.append((str(p), str(err)))
    return ok, skipped


def expand_paths(paths: str | Path | Sequence[str | Path], suffixes: tuple[str, ...] = (".h5", ".hdf5")) -> list[Path]:
    """Files named by ``paths``: a file, a folder (its files with ``suffixes``, sorted, recursive) or a glob.

    Coil-map cache sidecars (``*.maps.h5``) and hidden files are left out of folder and glob scans.

    Raises:
        FileNotFoundError: a name that matches nothing.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        s = str(p)
        if any(ch in s for ch in "*?["):
            hits = sorted(Path(h) for h in glob.glob(s, recursive=True))
            if not hits:
                raise FileNotFoundError(f"no files match {s!r}")
            out.extend(h for h in hits if h.is_file() and not h.name.endswith(".maps.h5"))
        elif Path(s).is_dir():
            found = sorted(
                f for f in Path(s).rglob("*") if f.is_file() and f.suffix in suffixes and not f.name.startswith(".")
            )
            out.extend(f for f in found if not f.name.endswith(".maps.h5"))
        elif Path(s).is_file():
            out.append(Path(s))
        else:
            raise FileNotFoundError(f"{s}: no such file or folder")
    return out


def is_writable_dir(folder: str | Path) -> bool:
    """Whether new files can be created in ``folder``."""
    return os.access(folder, os.W_OK | os.X_OK)


def file_fingerprint(path: str | Path) -> tuple[int, int]:
    """``(size in bytes, mtime in ns)``: cheap identity of a file's content for cache validation."""
    st = os.stat(path)
    return int(st.st_size), int(st.st_mtime_ns)
