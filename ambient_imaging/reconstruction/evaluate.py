"""Aggregate reconstruction metrics into a table (``ambient-imaging evaluate``) and draw unconditional samples."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import atomic_write

from .methods import POSTERIOR
from .outputs import png_grid

__all__ = ["collect_metrics", "write_csv", "comparison_figure", "TABLE_COLUMNS", "sample_to_file"]

#: the columns ``evaluate`` prints, in order (those present)
TABLE_COLUMNS = ("result", "method", "slices", "psnr", "ssim", "nmse", "psnr_zero_filled", "chi2_red", "seconds")


def collect_metrics(folder: str | Path) -> list[dict[str, Any]]:
    """One row per ``*.metrics.json`` under ``folder``: mean of each number over its slices, plus the
    per-volume metrics as ``volume_<key>``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of results")
    files = sorted(folder.rglob("*.metrics.json"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.metrics.json files (run `ambient-imaging reconstruct` first)")
    rows = []
    for path in files:
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        slices = d.get("slices", [])
        row: dict[str, Any] = {"result": str(path.relative_to(folder)).removesuffix(".metrics.json"),
                               "file": d.get("file", ""), "method": d.get("method", ""), "slices": len(slices)}
        keys = dict.fromkeys(k for s in slices for k, v in s.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "slice")
        for key in keys:
            vals = [s[key] for s in slices if isinstance(s.get(key), (int, float))]
            if vals:
                row[key] = float(np.mean(vals))
        for key, v in (d.get("volume") or {}).items():
            row[f"volume_{key}"] = v
        rows.append(row)
    return rows


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV (all keys), atomically."""
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(p: Path) -> None:
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    return atomic_write(path, write, suffix=".csv")


def comparison_figure(folder: str | Path, path: str | Path) -> Path | None:
    """Reference, zero-filled, L1, posterior mean and std of the first slice found in the NetCDF results."""
    from ambient_imaging.datasets.outputs import load_reconstruction

    panels: dict[str, np.ndarray] = {}
    for nc in sorted(Path(folder).rglob("*.nc")):
        try:
            ds = load_reconstruction(nc)
        except (OSError, ValueError, KeyError):
            continue
        method = str(ds.attrs.get("method", nc.stem))
        if "reference" in ds and "reference" not in panels:
            panels["reference"] = np.abs(ds["reference"].values[0])
        if "zero_filled" in ds and "zero-filled" not in panels:
            panels["zero-filled"] = np.abs(ds["zero_filled"].values[0])
        if "mean" in ds and ds["mean"].ndim == 3:
            if method == "l1-wavelet":
                panels.setdefault("l1-wavelet", np.abs(ds["mean"].values[0]))
            elif method in POSTERIOR:
                panels.setdefault(f"{method} mean", np.abs(ds["mean"].values[0]))
                panels.setdefault(f"{method} std", np.asarray(ds["std"].values[0]))
    if not panels:
        return None
    order = ["reference", "zero-filled", "l1-wavelet"]
    names = [n for n in order if n in panels] + [n for n in panels if n not in order]
    names = [n for n in names if panels[n].shape == panels[names[0]].shape]
    return png_grid(np.stack([panels[n] for n in names]), path, names)


def sample_to_file(prior: Any, n: int, sampler: Any, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """``n`` unconditional samples of ``prior`` written to NetCDF ``out`` (+ a PNG grid next to it)."""
    import torch

    from ambient_imaging.datasets.outputs import reconstruction_dataset, save_netcdf
    from ambient_imaging.sampling import sample

    if int(n) < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    out = Path(out)
    dev = next(iter(prior.denoiser.parameters()), torch.empty(0)).device
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    rec = sample(prior, int(n), sampler, generator=gen)
    x = rec.samples[:, 0].detach().cpu().numpy()  # (n, C, H, W)
    ds = reconstruction_dataset(x, prior=str(prior.run_dir),  # channels as the slice dimension
                                sampler=type(sampler).__name__, nfe=rec.nfe, seed=int(seed),
                                seconds=float(rec.info["seconds"]))
    save_netcdf(ds, out)
    vis = np.abs(x) if np.iscomplexobj(x) else x
    png_grid(vis if vis.shape[1] == 3 else vis[:, 0], out.with_suffix(".png"))
    return {"n": int(n), "sampler": type(sampler).__name__, "nfe": rec.nfe, "seconds": rec.info["seconds"],
            "out": str(out)}
