"""Writing reconstructions: one NetCDF layout, fastMRI HDF5, FITS sky images, metrics JSON, figures.

NetCDF: :func:`ambient_imaging.datasets.reconstruction_dataset` (dims ``(sample, slice, y, x)``;
complex arrays as ``<name>_real`` / ``<name>_imag`` so any NetCDF tool reads them) with
``mean``, ``std``, ``samples``, ``zero_filled`` and, when scored, ``reference``.
Every file is written atomically (:mod:`ambient_imaging.io`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import atomic_write, atomic_write_text

from .run import Result

__all__ = ["write_volume", "write_metrics", "write_figure", "png_grid", "OUTPUT_SUFFIXES", "json_safe"]

#: output kinds by suffix
OUTPUT_SUFFIXES = (".nc", ".h5", ".hdf5", ".fits", ".fit")


def json_safe(v: Any) -> Any:
    """``v`` with NaN/Inf as ``None`` and numpy scalars as Python numbers (valid JSON)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return json_safe(v.item())
    return v


def write_metrics(path: str | Path, summary: dict[str, Any]) -> Path:
    """``summary`` as indented JSON (NaN → null), atomically."""
    return atomic_write_text(path, json.dumps(json_safe(summary), indent=2))


def write_volume(path: str | Path, results: list[Result], attrs: dict[str, Any] | None = None) -> Path:
    """The reconstructions of the slices of one file: NetCDF (``.nc``) or fastMRI layout (``.h5``)."""
    from ambient_imaging.datasets.outputs import reconstruction_dataset, save_fastmri_reconstruction, save_netcdf

    path = Path(path)
    if not results:
        raise ValueError(f"{path}: nothing to write")
    mean = np.stack([r.mean[0].cpu().numpy() for r in results])
    std = np.stack([r.std[0].cpu().numpy() for r in results])
    meta = {k: v for k, v in (attrs or {}).items() if v is not None}
    if path.suffix.lower() in (".h5", ".hdf5"):
        return save_fastmri_reconstruction(path, np.abs(mean).astype(np.float32), std=std, attrs=meta)
    k = min(r.samples.shape[0] for r in results)
    samples = np.stack([r.samples[:k, 0].cpu().numpy() for r in results], axis=1)  # (K, S, H, W)
    refs = [r.problem.reference for r in results]
    reference = np.stack([t[0, 0].cpu().numpy() for t in refs]) if all(t is not None for t in refs) else None
    extra = {"zero_filled": np.stack([r.zero_filled[0].cpu().numpy() for r in results])}
    ds = reconstruction_dataset(samples, mean, std, reference=reference, extra=extra,
                                slices=json.dumps([r.problem.meta.get("slice", i) for i, r in enumerate(results)]),
                                **{key: (json.dumps(json_safe(v)) if isinstance(v, (dict, list)) else v)
                                   for key, v in meta.items()})
    return save_netcdf(ds, path)


def png_grid(images: np.ndarray, path: str | Path, titles: list[str] | None = None) -> Path:
    """Save ``(N, H, W)`` or ``(N, 3, H, W)`` images as one PNG grid (Agg backend), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + (0.3 if titles else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        im = images[i]
        if im.ndim == 3 and im.shape[0] == 3:
            ax.imshow(np.clip(np.moveaxis(im, 0, -1), 0, 1))
        else:
            ax.imshow(im if im.ndim == 2 else im[0], cmap="gray")
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)


def write_figure(path: str | Path, result: Result) -> Path:
    """Reference (when known) | zero-filled | mean | std of one result."""
    panels, titles = [], []
    if result.problem.reference is not None:
        panels.append(result.problem.reference[0, 0].abs().cpu().numpy())
        titles.append("reference")
    panels += [result.zero_filled[0].abs().cpu().numpy(), result.mean[0].abs().cpu().numpy(),
               result.std[0].cpu().numpy()]
    titles += ["zero-filled", f"{result.method} mean", f"{result.method} std"]
    return png_grid(np.stack(panels), path, titles)
