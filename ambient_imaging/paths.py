"""Checks of output paths made before any work: right kind, writable, not one of the inputs.

Every command that writes (``train``, ``reconstruct``, ``data build``) calls one of these
before it reads or computes anything, so that a typo or a wrong flag fails in a second
with one line naming the path, never after hours of work and never by overwriting an input:

* :func:`check_output_dir` — a folder output (a training run, a folder of reconstructions);
* :func:`check_output_file` — a single-file output (``reconstruct --out rec.nc``);
* :func:`overlaps` — whether two paths are the same or one lies inside the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_output_dir", "check_output_file", "overlaps", "nearest_existing"]


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself if it exists, else its closest existing ancestor."""
    p = Path(os.path.abspath(os.fspath(path)))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def overlaps(inner: str | os.PathLike, outer: str | os.PathLike) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it (symlinks resolved; either may not exist yet)."""
    a, b = _real(inner), _real(outer)
    return a == b or a.is_relative_to(b)


def _check_writable(path: Path, flag: str) -> None:
    base = nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{flag} {path}: {base} is a file, so no folder can be created there")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "folder" if base == Path(os.path.abspath(path)) else f"folder {base} (where it would be created)"
        raise ValueError(f"{flag} {path}: the {what} is not writable (permission denied)")


def _inputs(inputs: Iterable[str | os.PathLike | None]) -> list[Path]:
    return [Path(p) for p in inputs if p is not None and str(p) and Path(p).exists()]


def check_output_dir(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    flag: str = "--out",
) -> Path:
    """Raise one clear ``ValueError`` unless ``out`` can be a (new or existing) output folder.

    Refused: an existing file; a folder that cannot be created or written; a folder that is one
    of ``inputs`` or lies inside one (``--out`` inside ``--data`` would mix outputs into the
    data, and ``--overwrite`` could delete them). Inputs that do not exist (e.g. an embedded
    dataset name such as ``faces``) are ignored. Returns ``Path(out)``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {out} is an existing file; this output is a folder: give a folder name")
    for inp in _inputs(inputs):
        if overlaps(out, inp):
            where = "is" if _real(out) == _real(inp) else "lies inside"
            raise ValueError(f"{flag} {out} {where} the input {inp}; write the output somewhere else")
    _check_writable(out, flag)
    return out


def check_output_file(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    flag: str = "--out",
    suffixes: tuple[str, ...] | None = None,
) -> Path:
    """Raise one clear ``ValueError`` unless ``out`` can be written as a single file.

    Refused: an existing folder; a name whose folder cannot be created or written; the same
    file as one of ``inputs`` (also through links) or a file inside an input folder; a suffix
    not in ``suffixes`` (when given). Returns ``Path(out)``.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{flag} {out} is an existing folder; this output is a single file: give a file name")
    if suffixes is not None and out.suffix.lower() not in suffixes:
        raise ValueError(f"{flag} {out}: unsupported output type {out.suffix!r}; use one of {', '.join(suffixes)}")
    for inp in _inputs(inputs):
        same = out.exists() and os.path.samefile(out, inp)
        if same or overlaps(out, inp):
            where = "is" if same or _real(out) == _real(inp) else "lies inside"
            raise ValueError(f"{flag} {out} {where} the input {inp}; refusing to overwrite the data")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"{flag} {out}: the file exists and is not writable (permission denied)")
    _check_writable(out.parent if str(out.parent) else Path("."), flag)
    return out
