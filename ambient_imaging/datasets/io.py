"""Folder scans and cache fingerprints for the dataset readers (atomic writes: :mod:`ambient_imaging.io`)."""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["expand_paths", "is_sidecar", "scan_files", "is_writable_dir", "file_fingerprint", "check_same_layout"]

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


def is_sidecar(path: str | Path) -> bool:
    """Whether ``path`` is one of our own side files, not data: ESPIRiT coil-map caches (``*.maps.h5``),
    hidden files (atomic-write temporaries, lock files), reconstruction metrics (``*.metrics.json``)."""
    name = Path(path).name
    return name.startswith(".") or name.endswith(".maps.h5") or name.endswith(".metrics.json")


def expand_paths(paths: str | Path | Sequence[str | Path], suffixes: tuple[str, ...] = (".h5", ".hdf5")) -> list[Path]:
    """Files named by ``paths``: a file, a folder (its files with ``suffixes``, sorted, recursive) or a glob.

    A name that exists is taken literally (``scan[1].h5`` is that file, not a glob); only a name
    that does not exist and holds ``*``, ``?`` or ``[`` is expanded as a glob. Our own side files
    (:func:`is_sidecar`: ``*.maps.h5`` coil-map caches, hidden files) are left out of folder and
    glob scans; a file named explicitly is always returned.

    Raises:
        FileNotFoundError: a name that matches nothing.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        s = str(p)
        path = Path(s)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
            out.extend(f for f in found if not is_sidecar(f) and not any(
                part.startswith(".") for part in f.relative_to(path).parts))
        elif path.is_file():
            out.append(path)
        elif any(ch in s for ch in "*?["):
            hits = sorted(Path(h) for h in glob.glob(s, recursive=True))
            if not hits:
                raise FileNotFoundError(f"no files match {s!r} (and no file has that name)")
            out.extend(h for h in hits if h.is_file() and not is_sidecar(h))
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


def check_same_layout(files: Sequence[str | Path], flag: str = "--data", what: str = "training") -> tuple[int, ...]:
    """The one k-space layout ``(coils, H, W)`` that every fastMRI file of ``files`` shares, read from the
    files' headers (no k-space is read); a ``ValueError`` naming the odd files otherwise.

    Training stacks slices into batches, so a folder mixing matrix sizes or coil counts would fail in
    batch collation after the data were loaded; this says which files differ, before any work.
    """
    from collections import Counter

    from ambient_imaging.limits import shown

    from .fastmri.layout import check_layout, open_fastmri

    shapes: dict[str, tuple[int, ...]] = {}
    for p in files:
        with open_fastmri(Path(p)) as f:
            _, nc, h, w, _ = check_layout(f, Path(p))
        shapes[str(p)] = (nc, h, w)
    if not shapes:
        raise ValueError(f"{flag}: no files")
    common, n_common = Counter(shapes.values()).most_common(1)[0]
    odd = [(p, sh) for p, sh in shapes.items() if sh != common]
    if odd:
        listed = ", ".join(f"{shown(Path(p).name)} {sh[0]} coils {sh[1]}x{sh[2]}" for p, sh in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        raise ValueError(
            f"{flag}: {what} needs one matrix size and coil count, but {len(odd)} of {len(shapes)} files differ from "
            f"the {n_common} with {common[0]} coils {common[1]}x{common[2]}: {listed}{more}; move them to a folder "
            "of their own")
    return common
