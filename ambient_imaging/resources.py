"""Locate the data that ships with ambient-imaging.

The repository's top-level ``operators/`` folder (instrument definitions as
plain data: array layouts, sampling presets) and ``datasets/`` folder
(dataset cards) are installed as the data-only packages
``ambient_imaging._instruments`` and ``ambient_imaging._cards`` (see
setup.py). In a source checkout or an editable install they are read from the
repository directly.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["instrument_path", "card_path"]

_REPO = Path(__file__).resolve().parent.parent


def _locate(package: str, folder: str, parts: tuple[str, ...]) -> Path:
    local = _REPO / folder
    if local.is_dir():
        path = local.joinpath(*parts)
    else:
        try:
            path = Path(str(importlib.resources.files(package).joinpath(*parts)))
        except ModuleNotFoundError:  # pragma: no cover - broken install
            path = local.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"ambient-imaging data file not found: {path} (is the package installed fully?)")
    return path


def instrument_path(*parts: str) -> Path:
    """Path of a file under the top-level ``operators/`` folder, e.g. ``instrument_path("arrays", "vla_a.txt")``."""
    return _locate("ambient_imaging._instruments", "operators", parts)


def card_path(*parts: str) -> Path:
    """Path of a dataset card under the top-level ``datasets/`` folder."""
    return _locate("ambient_imaging._cards", "datasets", parts)
