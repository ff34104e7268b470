"""Atomic file writes, shared by every layer (datasets, training, reconstruction, CLI).

One implementation: write into a temporary file in the destination folder, then
``os.replace`` it onto the target. Nothing half-written is ever left under the
target's name; on any error (or Ctrl-C) the temporary file is removed. Leftover
temporaries of a killed process (``.NAME.*.tmp``-style names) are removed by
:func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "atomic_write_text", "remove_stale_temporaries"]

#: marker in the names of temporaries written by :func:`atomic_path`
TMP_MARK = ".~tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary lives in the same folder (so ``os.replace`` is atomic) and is named
    ``.NAME<TMP_MARK>XXXX<suffix>``; ``suffix`` (default ``path``'s own) keeps writers that
    look at the extension (h5py, astropy, xarray) happy.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], object], suffix: str | None = None) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically; returns ``path``.

    If ``writer`` raises, ``path`` is untouched (an older version stays intact).
    """
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename (small pointer
    and config files must survive a power cut, not only a killed process)."""

    def write(p: Path) -> None:
        with open(p, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = 0.0) -> list[Path]:
    """Delete temporaries left by killed atomic writes in ``folder`` (not recursive); returns them.

    Only files whose names carry :data:`TMP_MARK` are touched, and only those last modified more
    than ``older_than_s`` seconds ago (a concurrent writer's fresh temporary is left alone).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, gone = time.time(), []
    for p in folder.iterdir():
        if p.name.startswith(".") and TMP_MARK in p.name and p.is_file():
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime >= older_than_s:
                    p.unlink()
                    gone.append(p)
    return gone
