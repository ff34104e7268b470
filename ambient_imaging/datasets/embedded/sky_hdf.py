"""Embedded ``sky-hdf``: Hubble eXtreme Deep Field patches as corrupted FITS images and simulated visibilities.

Source: ``skimage.data.hubble_deep_field()`` — despite the name, the Hubble eXtreme Deep Field
(XDF, HubbleSite release 2012-37a; NASA, public domain), 872x1000 RGB, bundled with scikit-image.

Build (deterministic in ``seed``):

1. luminance (``skimage.color.rgb2gray``), float in ``[0, 1]``;
2. a TAN WCS centred on the XDF/HUDF pointing RA 03h32m38.5s, Dec −27°47′29″ (J2000), with an
   **assumed** 0.14″/pixel (the JPEG's scale is not stated; the XDF spans ≈ 2.3′ × 2.0′, which
   1000 × 872 pixels at 0.14″ reproduce), north up, east left;
3. patches ``p × p`` at random positions; rows below 80% of the height are the held-out region
   (no train/held-out overlap);
4. per patch: a bad-pixel mask (dust at ``dust`` fraction, 1-3 cosmic-ray-like streaks, 0-1 box)
   and Gaussian noise ``σ = noise_sigma`` on valid pixels; bad pixels are 0 in the data and 0 in
   the ``MASK`` HDU (1 = valid); ``NOISE`` header card = σ;
5. for the first ``n_vis_patches`` patches of each split and each array in ``arrays``:
   visibilities of the clean patch under an Earth-rotation track of the real layout
   (``load_array`` + ``earth_rotation_uv``, source at Dec −27.8°, hour angles ±3 h) with thermal
   noise. The optical field (9″ for 64 pixels) is far smaller than either VLA's synthesised beam,
   so the radio pixel scale is **decoupled** from the WCS: it is the Nyquist scale of the coverage,
   ``Δ = 1/(2 max|u|,|v|)``, i.e. the patch is treated as a radio sky exactly as large as the
   array resolves. Each visibility has noise std ``vis_noise · Σx`` per real/imaginary part.
   Orientation: the :class:`~ambient_imaging.operators.Interferometer` image has ``+l`` (east) along
   ``+column``, the FITS patch has east to the left, so the observed sky is ``patch[:, ::-1]``
   (flip a reconstruction's last axis to compare it with the FITS patch).

Layout written under ``out_dir``: ``train/*.fits``, ``heldout/*.fits`` (observed), ``heldout_clean.npy``
(clean held-out patches for metrics), ``uv/<array>/<split>/*.uvfits`` and ``build.json``.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.wcs import WCS
from tqdm.auto import tqdm

from ambient_imaging.io import atomic_path

from ..fits import write_fits_image

__all__ = ["build_sky_hdf", "xdf_image", "xdf_wcs", "corrupt_patch"]

RA_DEG = (3 + 32 / 60 + 38.5 / 3600) * 15.0  # 03h32m38.5s
DEC_DEG = -(27 + 47 / 60 + 29 / 3600)  # −27°47′29″
PIXEL_ARCSEC = 0.14  # assumption, see module docstring
SIZES = {
    "default": {"n_train": 288, "n_heldout": 32, "n_vis": 32},
    "small": {"n_train": 24, "n_heldout": 8, "n_vis": 4},
}


def xdf_image() -> np.ndarray:
    """The XDF luminance image, float64 ``(872, 1000)`` in ``[0, 1]``."""
    from skimage import color, data

    return color.rgb2gray(data.hubble_deep_field()).astype(np.float64)


def xdf_wcs(shape: tuple[int, int]) -> WCS:
    """TAN WCS of the whole image (assumed 0.14″/pixel, north up, east left)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA_DEG, DEC_DEG]
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    w.wcs.cdelt = [-PIXEL_ARCSEC / 3600.0, PIXEL_ARCSEC / 3600.0]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def corrupt_patch(
    clean: np.ndarray, rng: np.random.Generator, dust: float, noise_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Bad-pixel mask (dust, 1-3 streaks, 0-1 box; ``True`` = valid) and the noisy, masked patch."""
    h, w = clean.shape
    mask = rng.random((h, w)) >= dust
    for _ in range(int(rng.integers(1, 4))):  # cosmic-ray-like streak: a short, thin line at a random angle
        length, ang = rng.uniform(0.15, 0.5) * max(h, w), rng.uniform(0, np.pi)
        r0, c0 = rng.uniform(0, h), rng.uniform(0, w)
        t = np.linspace(0, length, int(length * 2) + 2)
        rr = np.clip(np.round(r0 + t * np.sin(ang)).astype(int), 0, h - 1)
        cc = np.clip(np.round(c0 + t * np.cos(ang)).astype(int), 0, w - 1)
        mask[rr, cc] = False
    if rng.random() < 0.5:  # a dead box (bad column segment / saturated region)
        bh, bw = int(rng.integers(2, max(3, h // 8))), int(rng.integers(2, max(3, w // 8)))
        r, c = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        mask[r : r + bh, c : c + bw] = False
    y = np.where(mask, clean + noise_sigma * rng.standard_normal((h, w)), 0.0)
    return mask, y


def _array_coverages(arrays: Sequence[str], n_times: int, frequency_hz: float) -> dict[str, Any]:
    """Each array's ``(layout, coverage)`` for an Earth-rotation track of the field (hour angles ±3 h)."""
    coverages: dict[str, Any] = {}
    if arrays:
        from ambient_imaging.operators import earth_rotation_uv, load_array

        for name in arrays:
            layout = load_array(name)
            cov = earth_rotation_uv(layout, DEC_DEG, (-3.0, 3.0), n_times=n_times, frequency_hz=frequency_hz)
            if cov.n_vis == 0:
                raise ValueError(f"sky-hdf: array {name!r} never sees Dec {DEC_DEG:.1f} above its elevation limit")
            coverages[name] = (layout, cov)
    return coverages


def _write_patch_visibilities(
    out: Path,
    clean: np.ndarray,
    split: str,
    k: int,
    name: str,
    coverages: dict[str, Any],
    seed: int,
    vis_noise: float,
) -> list[str]:
    """Simulate and write one clean patch's visibilities for every array; returns the files' relative paths."""
    from ..uvfits import simulate_observation, write_uvfits

    p = clean.shape[0]
    written = []
    for aname, (layout, cov) in coverages.items():
        g = torch.Generator().manual_seed(seed * 7919 + zlib.crc32(f"{split}/{k}/{aname}".encode()))
        sigma = vis_noise * float(clean.sum())
        # the operator's +l (east) runs along +column; the FITS patch has east to the left
        sky = clean[:, ::-1].copy()
        vis = simulate_observation(sky, cov.nyquist_pixel_scale(), cov, sigma, generator=g,
                                   source=f"XDF-{name}", ra_deg=RA_DEG, layout=layout)  # fmt: skip
        write_uvfits(out / "uv" / aname / split / f"{name}.uvfits", vis, telescope=aname.upper(),
                     history=(f"pixel_scale_rad={cov.nyquist_pixel_scale():.6e}",
                              f"image_shape={p}x{p}", "operator image = FITS patch[:, ::-1]",
                              "sky-hdf simulated"))  # fmt: skip
        written.append(f"uv/{aname}/{split}/{name}.uvfits")
    return written


def _visibility_summary(
    coverages: dict[str, Any], frequency_hz: float, patches_per_split: int, vis_noise: float
) -> dict[str, Any]:
    """The ``build.json`` entry describing each array's simulated visibilities."""
    return {
        a: {
            "n_vis": int(cov.n_vis),
            "pixel_scale_rad": cov.nyquist_pixel_scale(),
            "frequency_hz": frequency_hz,
            "patches_per_split": patches_per_split,
            "noise_per_component": f"{vis_noise} * sum(patch)",
            "operator_image": "FITS patch[:, ::-1] (+l = east along +column)",
        }
        for a, (_, cov) in coverages.items()
    }


def build_sky_hdf(
    out_dir: str | os.PathLike,
    size: str = "default",
    seed: int = 0,
    progress: bool = True,
    arrays: Sequence[str] = ("vla_d", "vla_a"),
    patch_size: int = 64,
    dust: float = 0.1,
    noise_sigma: float = 0.02,
    vis_noise: float = 0.01,
    frequency_hz: float = 1.4e9,
    n_times: int = 16,
) -> dict[str, Any]:
    """Build the ``sky-hdf`` set in ``out_dir`` (see the module docstring); returns the ``build.json`` summary."""
    if size not in SIZES:
        raise ValueError(f"sky-hdf: size must be one of {sorted(SIZES)}, got {size!r}")
    if not 0.0 <= dust < 1.0:
        raise ValueError(f"sky-hdf: dust must be in [0, 1), got {dust}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    cfg = SIZES[size]
    img = xdf_image()
    h, w = img.shape
    p = int(patch_size)
    if not 8 <= p <= min(h, w) // 4:
        raise ValueError(f"sky-hdf: patch_size must be in [8, {min(h, w) // 4}], got {patch_size}")
    wcs = xdf_wcs(img.shape)
    rng = np.random.default_rng(seed)
    split_row = int(0.8 * h)
    regions = {"train": (0, split_row - p), "heldout": (split_row, h - p)}
    origins = {
        s: np.stack([rng.integers(lo, hi + 1, cfg[f"n_{s}"]), rng.integers(0, w - p + 1, cfg[f"n_{s}"])], 1)
        for s, (lo, hi) in regions.items()
    }
    coverages = _array_coverages(arrays, n_times, frequency_hz)
    total = sum(len(o) for o in origins.values())
    bar = tqdm(total=total, desc="sky-hdf", disable=not progress, unit="patch")
    heldout_clean = []
    n_vis_files = 0
    written = ["heldout_clean.npy"]
    for split, orig in origins.items():
        for k, (r, c) in enumerate(orig):
            clean = img[r : r + p, c : c + p]
            mask, y = corrupt_patch(clean, rng, dust, noise_sigma)
            name = f"{split}_{k:04d}"
            written.append(f"{split}/{name}.fits")
            write_fits_image(
                out / split / f"{name}.fits",
                y.astype(np.float32),
                wcs=wcs[r : r + p, c : c + p],
                provenance={"dataset": "sky-hdf", "seed": seed, "row0": int(r), "col0": int(c)},
                history=["skimage.data.hubble_deep_field() luminance; synthetic mask and noise"],
                extra={"MASK": mask},
                unit="arbitrary",
                noise_sigma=noise_sigma,
            )
            if split == "heldout":
                heldout_clean.append(clean.astype(np.float32))
            if k < cfg["n_vis"]:
                uv_files = _write_patch_visibilities(out, clean, split, k, name, coverages, seed, vis_noise)
                written.extend(uv_files)
                n_vis_files += len(uv_files)
            bar.update(1)
    bar.close()
    with atomic_path(out / "heldout_clean.npy", suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.stack(heldout_clean))
    summary = {
        "dataset": "sky-hdf",
        "source": "skimage.data.hubble_deep_field() (Hubble eXtreme Deep Field, NASA, public domain)",
        "size": size,
        "seed": seed,
        "patch_size": p,
        "n_train": int(len(origins["train"])),
        "n_heldout": int(len(origins["heldout"])),
        "dust": dust,
        "noise_sigma": noise_sigma,
        "wcs": {"ra_deg": RA_DEG, "dec_deg": DEC_DEG, "pixel_arcsec_assumed": PIXEL_ARCSEC},
        "visibilities": _visibility_summary(coverages, frequency_hz, int(cfg["n_vis"]), vis_noise),
        "n_uvfits": n_vis_files,
        "files": sorted(written),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    with atomic_path(out / "build.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary
