"""Aggregate reconstruction metrics into a table (``ambient-imaging evaluate``) and draw unconditional samples."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import atomic_write
from ambient_imaging.sampling import METHODS

from .outputs import png_grid

__all__ = ["collect_metrics", "write_csv", "comparison_figure", "TABLE_COLUMNS", "sample_to_file"]

#: the columns ``evaluate`` prints, in order (those present); visibility results add their closure χ²'s and
#: ring metrics (the posterior's diameter spread), which say more than the complex-visibility ``chi2_red``
TABLE_COLUMNS = ("result", "method", "slices", "psnr", "ssim", "nmse", "psnr_zero_filled", "coverage_raw", "coverage",
                 "chi2_cphase", "chi2_logcamp", "chi2_logcamp_rice", "ring_diameter_uas", "ring_diameter_uas_std",
                 "ring_depth", "ring_radial_scatter", "chi2_red", "seconds")


def _read_metrics(path: Path) -> dict[str, Any]:
    """One ``*.metrics.json`` as a dict, or a ``ValueError`` naming the file and what is wrong."""
    from ambient_imaging.limits import shown

    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{shown(path)}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{shown(path)}: not valid JSON ({err})") from err
    except OSError as err:
        raise ValueError(f"{shown(path)}: cannot read it ({err.strerror or err})") from err
    if not isinstance(d, dict):
        raise ValueError(f"{shown(path)}: expected a JSON object, got {type(d).__name__}")
    slices = d.get("slices", [])
    if not isinstance(slices, list) or not all(isinstance(s, dict) for s in slices):
        raise ValueError(f"{shown(path)}: field 'slices' must be a list of objects")
    if not isinstance(d.get("volume") or {}, dict):
        raise ValueError(f"{shown(path)}: field 'volume' must be an object")
    return d


def collect_metrics(folder: str | Path, skipped: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """One row per ``*.metrics.json`` under ``folder``: mean of each number over its slices, plus the
    per-volume metrics as ``volume_<key>``.

    A malformed file is skipped with a ``RuntimeWarning`` naming it (and appended to ``skipped`` as
    ``(file, reason)`` when a list is given); a folder without one valid file raises ``ValueError``.
    """
    import warnings

    from ambient_imaging.limits import shown

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{shown(folder)}: not a folder of results")
    files = sorted(folder.rglob("*.metrics.json"))
    if not files:
        raise FileNotFoundError(f"{shown(folder)}: no *.metrics.json files (run `ambient-imaging reconstruct` first)")
    rows, bad = [], []
    for path in files:
        try:
            d = _read_metrics(path)
        except ValueError as err:
            warnings.warn(f"skipping {err}", RuntimeWarning, stacklevel=2)
            bad.append((shown(path), str(err)))
            continue
        slices = d.get("slices", [])
        row: dict[str, Any] = {"result": shown(path.relative_to(folder)).removesuffix(".metrics.json"),
                               "file": d.get("file", ""), "method": d.get("method", ""), "slices": len(slices)}
        keys = dict.fromkeys(k for s in slices for k, v in s.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "slice")
        for key in keys:
            vals = [s[key] for s in slices if isinstance(s.get(key), (int, float)) and not isinstance(s[key], bool)]
            if vals:
                row[key] = float(np.mean(vals))
        for key, v in (d.get("volume") or {}).items():
            row[f"volume_{key}"] = v
        rows.append(row)
    if skipped is not None:
        skipped.extend(bad)
    if not rows:
        raise ValueError(f"{shown(folder)}: none of its {len(files)} *.metrics.json files can be read "
                         f"(first: {bad[0][1]})")
    return rows


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV (all keys), atomically; ``path`` is checked first (not a folder, a writable place)."""
    from ambient_imaging.paths import check_output_file

    check_output_file(path, flag="--out", suffixes=(".csv",))
    from .outputs import _text

    rows = [{k: _text(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def write(p: Path) -> None:
        with open(p, "w", newline="", encoding="utf-8") as fh:
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
            cls = METHODS.get(method)  # the registry says what a method is
            if cls is not None and not cls.needs_prior and cls.is_fit:
                panels.setdefault(method, np.abs(ds["mean"].values[0]))
            elif cls is not None and cls.needs_prior:
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
    from ambient_imaging.limits import array_bytes, check_count, check_memory, check_seed
    from ambient_imaging.sampling import sample

    n, seed = check_count("--n", n), check_seed(seed)
    c, h, w = (int(v) for v in prior.image_shape)
    per = array_bytes((c * (2 if prior.is_complex else 1), h, w), 4)
    check_memory(per * n * 12, f"{n} samples of {c}x{h}x{w}", f"--n {n}", "draw fewer (several files with "
                 "other --seed values add up to the same)")
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
