"""Embedded ``eht-crescents``: synthetic black-hole-like sky images for training a VLBI sky prior.

Everything is computed from formulas and one picture that scikit-image ships (its Hubble eXtreme
Deep Field, ``skimage.data.hubble_deep_field``); nothing is downloaded. Images are 64×64 over a
160 µas field (2.5 µas per pixel), in the interferometry operator's layout (east along +column,
north along +row, the phase centre at ``(32, 32)``), each normalised to a total flux of 1 (the
``"flux"`` normalisation of interferometric priors). Kinds (fractions of the set):

* ``crescent`` (70 %): a Gaussian-profile ring of diameter 20–60 µas, width (FWHM) 0.1–0.5 of the
  diameter, brightness ``1 + a cos(φ − PA)`` with asymmetry ``a`` 0–0.9 and PA uniform, centre
  offset up to 5 µas, axis ratio 0.85–1, and with probability ½ a diffuse interior floor
  (a Gaussian disc holding up to 15 % of the flux);
* ``gaussian`` (15 %): one or two elliptical Gaussians (FWHM 10–60 µas) — sources that are not rings,
  so that the prior does not force a ring onto every data set;
* ``hdf`` (15 %): a patch of the Hubble XDF picture (luminance, background subtracted), resampled
  to 64×64 — clumpy, irregular structure.

``train.npy`` (float32 ``(N, 64, 64)``) is what ``ambient-imaging train --operator interferometry``
observes: the trainer simulates sparse visibilities of each image (``build.json`` records the pixel
scale it must use) and the network never sees the images themselves. ``heldout.npy`` is for
evaluation only. The card is ``datasets/eht-crescents.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import atomic_path

__all__ = ["build_eht_crescents", "crescent_set", "SIZES", "FOV_UAS", "NPIX"]

#: (train, held-out) images per size preset
SIZES = {"default": (4000, 200), "small": (200, 20)}
FOV_UAS = 160.0
NPIX = 64
UAS = math.pi / 180 / 3600e6
#: k: the total of a training image in prior units (``ambient-imaging train`` reads it from build.json); with
#: images of unit total flux over 4096 pixels, k = 300 gives a pixel std of ≈ 0.3 and peaks of ≈ 2 (EDM scale)
FLUX_PER_IMAGE = 300.0
#: fractions of crescents, Gaussians and HDF patches
KIND_FRACTIONS = (0.70, 0.15, 0.15)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    pix = FOV_UAS / n
    c = (np.arange(n) - n // 2) * pix
    return np.meshgrid(c, c, indexing="xy")  # x: east (columns), y: north (rows), µas


def _crescent(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, dict]:
    d = rng.uniform(20.0, 60.0)
    wf = rng.uniform(0.1, 0.5)
    asym = rng.uniform(0.0, 0.9)
    pa = rng.uniform(0.0, 360.0)
    off = rng.uniform(0.0, 5.0) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    q = rng.uniform(0.85, 1.0)
    rot = rng.uniform(0.0, np.pi)
    x, y = xx - off.real, yy - off.imag
    xr, yr = x * np.cos(rot) + y * np.sin(rot), -x * np.sin(rot) + y * np.cos(rot)
    r = np.hypot(xr, yr / q)
    sw = wf * d / (2 * math.sqrt(2 * math.log(2)))
    img = np.exp(-0.5 * ((r - d / 2) / sw) ** 2) * (1 + asym * np.cos(np.arctan2(x, y) - np.radians(pa)))
    img = np.clip(img, 0, None)
    img /= img.sum()
    floor = 0.0
    if rng.random() < 0.5:
        floor = rng.uniform(0.0, 0.15)
        disc = np.exp(-0.5 * (np.hypot(x, y) / (0.3 * d)) ** 2)
        img = (1 - floor) * img + floor * disc / disc.sum()
    return img, {"kind": "crescent", "diameter_uas": d, "width_frac": wf, "asymmetry": asym, "pa_deg": pa,
                 "floor": floor}


def _gaussians(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, dict]:
    img = np.zeros_like(xx)
    for _ in range(int(rng.integers(1, 3))):
        fw = rng.uniform(10.0, 60.0, size=2)
        s = fw / (2 * math.sqrt(2 * math.log(2)))
        c = rng.uniform(-20.0, 20.0, size=2)
        t = rng.uniform(0, np.pi)
        x, y = xx - c[0], yy - c[1]
        xr, yr = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
        img += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((xr / s[0]) ** 2 + (yr / s[1]) ** 2))
    return img / img.sum(), {"kind": "gaussian"}


def _hdf_source() -> np.ndarray:
    from skimage import color, data

    lum = color.rgb2gray(data.hubble_deep_field()).astype(np.float64)
    return np.clip(lum - np.median(lum), 0, None)


def _hdf_patch(rng: np.random.Generator, hdf: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
    from skimage.transform import resize

    for _ in range(50):
        size = int(rng.integers(40, 160))
        r0 = int(rng.integers(0, hdf.shape[0] - size))
        c0 = int(rng.integers(0, hdf.shape[1] - size))
        patch = hdf[r0 : r0 + size, c0 : c0 + size]
        if patch.sum() > 0.02 * size * size:  # something in it
            break
    img = resize(patch, (n, n), anti_aliasing=True)
    # taper to the field: VLBI images of compact sources hold no flux at the edge
    xx, yy = _grid(n)
    img = np.clip(img, 0, None) * np.exp(-0.5 * (np.hypot(xx, yy) / 40.0) ** 4)
    return img / max(img.sum(), 1e-12), {"kind": "hdf", "patch": [r0, c0, size]}


def crescent_set(n_images: int, seed: int = 0, n: int = NPIX) -> tuple[np.ndarray, list[dict]]:
    """``n_images`` sky images float32 ``(N, n, n)`` (each summing to 1) and their parameters."""
    rng = np.random.default_rng(seed)
    xx, yy = _grid(n)
    hdf = None
    out = np.empty((n_images, n, n), np.float32)
    params: list[dict] = []
    kinds = rng.choice(3, size=n_images, p=KIND_FRACTIONS)
    for i, k in enumerate(kinds):
        if k == 0:
            img, p = _crescent(rng, xx, yy)
        elif k == 1:
            img, p = _gaussians(rng, xx, yy)
        else:
            hdf = _hdf_source() if hdf is None else hdf
            img, p = _hdf_patch(rng, hdf, n)
        out[i] = img
        params.append(p)
    return out, params


def build_eht_crescents(out_dir: str | os.PathLike, size: str = "default", seed: int = 0,
                        progress: bool = True) -> dict[str, Any]:
    """Write ``train.npy``, ``heldout.npy``, ``params.json`` and ``build.json`` to ``out_dir``."""
    if size not in SIZES:
        raise ValueError(f"eht-crescents: size must be one of {sorted(SIZES)}, got {size!r}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_held = SIZES[size]
    train, p_train = crescent_set(n_train, seed)
    held, p_held = crescent_set(n_held, seed + 1_000_003)
    for name, arr in (("train.npy", train), ("heldout.npy", held)):
        with atomic_path(out / name, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    with atomic_path(out / "params.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps({"train": p_train, "heldout": p_held}, default=float))
    kinds = {k: sum(p["kind"] == k for p in p_train) for k in ("crescent", "gaussian", "hdf")}
    summary = {
        "dataset": "eht-crescents",
        "source": "synthetic crescents and Gaussians; patches of skimage.data.hubble_deep_field()",
        "size": size, "seed": seed, "image_shape": [1, NPIX, NPIX], "fov_uas": FOV_UAS,
        "pixel_scale_rad": FOV_UAS / NPIX * UAS,
        "flux_per_image": FLUX_PER_IMAGE, "layout": "operator (east along +column, north along +row)",
        "units": "each image sums to 1 (total flux)", "n_train": int(n_train), "n_heldout": int(n_held),
        "train_kinds": kinds, "files": ["train.npy", "heldout.npy", "params.json"],
    }
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    with atomic_path(out / "build.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    if progress:
        print(f"eht-crescents: {n_train} train + {n_held} held-out {NPIX}x{NPIX} sky images ({kinds}) -> {out}")
    return summary
