"""Embedded datasets: built offline from data shipped inside installed packages.

:data:`EMBEDDED` is a plain tuple of records; each ``builder`` imports its module only when
called, so listing the sets is cheap. Builders share the signature
``builder(out_dir, size="default"|"small", seed=0, progress=True, **options) -> dict`` (summary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedDataset", "EMBEDDED", "get_embedded", "build_embedded", "card_path"]

_CARDS = Path(__file__).resolve().parents[3] / "datasets"


@dataclass(frozen=True)
class EmbeddedDataset:
    """One embedded dataset: its name, a one-line description, the builder, and its card file name."""

    name: str
    description: str
    builder: Callable[..., dict[str, Any]]
    card: str
    default_size: str = "default"
    accepts_acceleration: bool = False


def _build_mri_brain(out_dir: str | Path, **kw: Any) -> dict[str, Any]:
    """The 64x64 axial set; with ``matrix=(H, W)`` (or ``orientations``) the set at a scan's matrix."""
    if "orientations" in kw or not isinstance(kw.get("matrix"), (int, type(None))):
        from .mri_brain_matrix import build_mri_brain_matrix

        return build_mri_brain_matrix(out_dir, **kw)
    from .mri_brain import build_mri_brain

    return build_mri_brain(out_dir, **kw)


def _build_sky_hdf(out_dir: str | Path, **kw: Any) -> dict[str, Any]:
    from .sky_hdf import build_sky_hdf

    return build_sky_hdf(out_dir, **kw)


def _build_eht_crescents(out_dir: str | Path, **kw: Any) -> dict[str, Any]:
    from .eht_crescents import build_eht_crescents

    return build_eht_crescents(out_dir, **kw)


def _build_faces(out_dir: str | Path, **kw: Any) -> dict[str, Any]:
    from .faces import build_faces

    return build_faces(out_dir, **kw)


EMBEDDED: tuple[EmbeddedDataset, ...] = (
    EmbeddedDataset(
        "mri-brain",
        "multi-coil brain k-space simulated from the MNI152 T1 template (nilearn); train undersampled, val full",
        _build_mri_brain,
        "mri-brain.md",
        accepts_acceleration=True,
    ),
    EmbeddedDataset(
        "sky-hdf",
        "radio-sky images and simulated interferometer visibilities",
        _build_sky_hdf,
        "sky-hdf.md",
    ),
    EmbeddedDataset(
        "faces",
        "25x25 LFW faces bundled with scikit-image, for mask/noise corruption studies",
        _build_faces,
        "faces.md",
    ),
    EmbeddedDataset(
        "eht-crescents",
        "64x64 black-hole-like sky images over 160 uas (crescents, Gaussians, HDF patches) for a VLBI sky prior",
        _build_eht_crescents,
        "eht-crescents.md",
    ),
)


def get_embedded(name: str) -> EmbeddedDataset:
    """The record called ``name``; ``ValueError`` listing the known names otherwise."""
    for d in EMBEDDED:
        if d.name == name:
            return d
    raise ValueError(f"unknown embedded dataset {name!r}; known: {', '.join(d.name for d in EMBEDDED)}")


def build_embedded(name: str, out_dir: str | Path, **kw: Any) -> dict[str, Any]:
    """Build the embedded dataset ``name`` into ``out_dir`` (``kw``: ``size``, ``seed``, ``progress``, ...).

    Returns the builder's summary (files, bytes, seconds, ...). ``ValueError`` listing the valid
    names for an unknown ``name``.
    """
    return get_embedded(name).builder(out_dir, **kw)


def card_path(entry: EmbeddedDataset) -> Path:
    """Path of the dataset card (``datasets/<name>.md`` at the repository root)."""
    return _CARDS / entry.card
