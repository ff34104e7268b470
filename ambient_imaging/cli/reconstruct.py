"""``ambient-imaging sample | reconstruct | evaluate``: use a trained prior (or a classical method).

Examples::

    ambient-imaging sample --prior runs/faces --n 16 --out samples.nc
    ambient-imaging reconstruct --data file_brain.h5 --sampler l1-wavelet --acceleration 4 --out rec.nc
    ambient-imaging reconstruct --prior runs/brain --data file_brain.h5 --sampler mmps --samples 8 --out rec.h5
    ambient-imaging reconstruct --prior runs/sky --data obs.uvfits --fov 200uas --npix 64 --out sky.fits
    ambient-imaging evaluate results/ --out table.csv
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["add_parser", "parse_slices", "make_method"]

POSTERIOR = ("dps", "adps", "mmps", "onestep")
CLASSICAL = ("zero-filled", "sense", "l1-wavelet", "rml-tv")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sample``, ``reconstruct`` and ``evaluate``."""
    p = subparsers.add_parser("sample", help="draw unconditional samples from a trained prior",
                              description="Draw unconditional samples from a prior; writes NetCDF and a PNG grid.")
    p.add_argument("--prior", required=True, help="training run directory")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--out", required=True, help="output NetCDF file (.nc); a PNG grid is written next to it")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the sampler's)")
    p.add_argument("--sampler", choices=("heun", "euler", "fixed-mask", "truncated"), default=None,
                   help="default: truncated for Tweedie priors, fixed-mask for ambient inpainting priors, else heun")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_sample)

    r = subparsers.add_parser(
        "reconstruct", help="reconstruct measurements (fastMRI HDF5, UVFITS, masked FITS)",
        description=("Reconstruct measurements with a posterior sampler (needs --prior) or a classical method. "
                     "Fully sampled fastMRI files are undersampled at --acceleration and scored against the "
                     "fully sampled reference."))
    r.add_argument("--prior", default=None, help="training run directory (not needed for classical methods)")
    r.add_argument("--data", required=True, help="fastMRI .h5 file or folder, .uvfits/.uvf/.fits visibilities, "
                   "or a FITS image with masked (NaN) pixels")
    r.add_argument("--out", required=True, help="output: .nc (NetCDF), .h5 (fastMRI layout) or .fits (sky images); "
                   "a folder when --data is a folder")
    r.add_argument("--sampler", choices=POSTERIOR + CLASSICAL, default=None,
                   help="default: mmps with --prior, zero-filled without")
    r.add_argument("--samples", type=int, default=8, help="posterior samples per slice (default 8)")
    r.add_argument("--steps", type=int, default=None, help="sampler steps (default: the sampler's)")
    r.add_argument("--acceleration", type=float, default=4.0, help="undersampling of fully sampled files (default 4)")
    r.add_argument("--center-lines", type=int, default=None, help="fully sampled centre lines (default 8%% of W)")
    r.add_argument("--mask-seed", type=int, default=0, help="seed of the undersampling mask")
    r.add_argument("--slices", default=None, help="slices to reconstruct, e.g. 0,1,5-7 (default: all); for a folder, "
                   "in each file, skipping files that do not have them")
    r.add_argument("--crop", type=int, default=None, help="centre-crop to N x N before scoring (fastMRI: 320)")
    r.add_argument("--lamda", type=float, default=None, help="regularisation of l1-wavelet / sense / rml-tv")
    r.add_argument("--zeta", type=float, default=None, help="DPS/A-DPS step size (default 1.0)")
    r.add_argument("--fov", default=None, help="field of view with units (e.g. 200uas, 3arcsec) for visibilities")
    r.add_argument("--npix", type=int, default=64, help="image size for visibilities (default 64)")
    r.add_argument("--device", default=None)
    r.add_argument("--seed", type=int, default=0, help="seed of the posterior sampler")
    r.set_defaults(func=run_reconstruct)

    e = subparsers.add_parser("evaluate", help="aggregate the metrics of reconstructions into a table and figure",
                              description="Aggregate *.metrics.json files in a folder (table + CSV + figure).")
    e.add_argument("results", help="folder with reconstructions and their .metrics.json files")
    e.add_argument("--out", default=None, help="CSV table (default RESULTS/metrics.csv)")
    e.set_defaults(func=run_evaluate)


# =========================================================================== helpers
def parse_slices(spec: str | None, n: int, strict: bool = True) -> list[int]:
    """``"0,1,5-7"`` → ``[0, 1, 5, 6, 7]`` (checked against ``n`` slices); ``None`` → all.

    ``strict=False`` (a folder of files with different slice counts) drops the slices a
    file does not have instead of raising.
    """
    if spec is None:
        return list(range(n))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError as err:
            raise ValueError(f"--slices: cannot read {part!r} (use e.g. 0,1,5-7)") from err
    bad = [s for s in out if not 0 <= s < n]
    if bad and not strict:
        return [s for s in out if 0 <= s < n]
    if bad:
        raise ValueError(f"--slices: slice(s) {bad} out of range; the data has {n} slices (0-{n - 1})")
    return out


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename (nothing half-written is left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_prior(run_dir: str | None, device: torch.device):
    if run_dir is None:
        return None
    from ambient_imaging.training import load_prior

    return load_prior(run_dir, device)


def make_method(name: str, prior: Any, steps: int | None = None, lamda: float | None = None,
                zeta: float | None = None):
    """The sampler or baseline object for a CLI ``--sampler`` name."""
    from ambient_imaging import sampling as S

    kw: dict[str, Any] = {} if steps is None else {"steps": int(steps)}
    if name in POSTERIOR and prior is None:
        raise ValueError(f"--sampler {name} needs --prior RUN_DIR (a trained prior); "
                         f"classical methods ({', '.join(CLASSICAL)}) do not")
    if name == "mmps":
        return S.MMPS(**kw)
    if name == "dps":
        return S.DPS(**kw, **({} if zeta is None else {"zeta": zeta}))
    if name == "adps":
        return S.ADPS(**kw, delta=float(prior.delta) or 0.1, **({} if zeta is None else {"zeta": zeta}))
    if name == "onestep":
        return S.OneStep()
    if name == "zero-filled":
        return S.ZeroFilled()
    if name == "sense":
        return S.SENSE(lamda=0.0 if lamda is None else lamda)
    if name == "l1-wavelet":
        return S.L1Wavelet(**({} if lamda is None else {"lamda": lamda}))
    if name == "rml-tv":
        return S.RMLTV(**({} if lamda is None else {"lamda": lamda}))
    raise ValueError(f"unknown sampler {name!r}")


def _unconditional(name: str | None, steps: int | None, prior: Any):
    from ambient_imaging import sampling as S

    kw: dict[str, Any] = {} if steps is None else {"steps": int(steps)}
    if name is None:
        if prior.family == "noise" and prior.noise_sigma > 0:
            name = "truncated"
        elif prior.family == "mask" and prior.mask_channels > 0:
            name = "fixed-mask"
        else:
            name = "heun"
    if name == "heun":
        return S.EDMSampler(**kw)
    if name == "euler":
        return S.EDMSampler(heun=False, **kw)
    if name == "fixed-mask":
        if prior.mask_channels == 0:
            raise ValueError("--sampler fixed-mask needs an ambient prior with mask channels; this one has none")
        return S.FixedMaskSampler(corruption=float(prior.corruption), delta=float(prior.delta), **kw)
    if name == "truncated":
        if prior.noise_sigma <= 0:
            raise ValueError("--sampler truncated needs a prior trained on noisy data (noise_sigma > 0)")
        return S.TruncatedSampler(sigma_n=float(prior.noise_sigma), **kw)
    raise ValueError(f"unknown sampler {name!r}")


def _png_grid(images: np.ndarray, path: Path, titles: list[str] | None = None) -> None:
    """Save ``(N, H, W)`` or ``(N, 3, H, W)`` images as one PNG grid (Agg backend)."""
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
    _atomic(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def _write_netcdf(path: Path, arrays: dict[str, tuple[tuple[str, ...], np.ndarray]], attrs: dict[str, Any],
                  coords: dict[str, Any] | None = None) -> None:
    """NetCDF4 (h5netcdf; complex arrays are stored complex) written atomically."""
    import xarray as xr

    ds = xr.Dataset({k: (dims, v) for k, (dims, v) in arrays.items()}, coords=coords or {})
    ds.attrs.update({k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in attrs.items()})
    complex_ = any(np.iscomplexobj(v) for _, v in arrays.values())

    def write(p: Path) -> None:
        import warnings

        with warnings.catch_warnings():  # complex variables are an h5netcdf extension of NetCDF-4, on purpose
            warnings.filterwarnings("ignore", message="You are writing invalid netcdf features")
            ds.to_netcdf(p, engine="h5netcdf", invalid_netcdf=complex_)

    _atomic(path, write)


# =========================================================================== sample
def run_sample(args: argparse.Namespace) -> int:
    """``ambient-imaging sample``."""
    from ambient_imaging.sampling.api import sample

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    device = _device(args.device)
    prior = _load_prior(args.prior, device)
    sampler = _unconditional(args.sampler, args.steps, prior)
    sampler.progress = True
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rec = sample(prior, args.n, sampler, generator=gen)
    x = rec.samples[:, 0].detach().cpu().numpy()
    _write_netcdf(out, {"samples": (("sample", "channel", "y", "x"), x)},
                  {"prior": str(args.prior), "sampler": type(sampler).__name__, "nfe": rec.nfe,
                   "seconds": rec.info["seconds"], "seed": args.seed})
    vis = np.abs(x) if np.iscomplexobj(x) else x
    _png_grid(vis if vis.shape[1] == 3 else vis[:, 0], out.with_suffix(".png"))
    print(f"{args.n} samples ({type(sampler).__name__}, {rec.nfe} NFE, {rec.info['seconds']:.1f} s) -> {out}")
    return 0


# =========================================================================== reconstruct: MRI
def _kspace_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".h5", ".hdf5"))
        if not files:
            raise FileNotFoundError(f"{path}: no .h5 files in this folder")
        return files
    return [path]


def _read_fastmri(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """k-space ``(S, Nc, H, W)`` complex, the sampled columns per slice ``(S, W)`` when a mask is stored
    (else ``None``), and attributes (``ambient_imaging.datasets.fastmri.read_fastmri``)."""
    from ambient_imaging.datasets.fastmri import read_fastmri

    d = read_fastmri(path)
    return d["kspace"], (d["lines"] if d["mask"] is not None else None), d["attrs"]


def _line_mask(w: int, acceleration: float, center_lines: int | None, seed: int) -> np.ndarray:
    """1-D random line mask ``(W,)`` with a fully sampled centre (fastMRI RandomMaskFunc style)."""
    if acceleration < 1:
        raise ValueError(f"--acceleration must be >= 1, got {acceleration}")
    c = center_lines if center_lines is not None else max(1, round(0.08 * w))
    if not 0 < c <= w:
        raise ValueError(f"--center-lines must be in 1..{w}, got {c}")
    rng = np.random.default_rng(seed)
    p = max(0.0, (w / acceleration - c) / max(w - c, 1))
    cols = rng.random(w) < p
    c0 = (w - c + 1) // 2
    cols[c0 : c0 + c] = True
    return cols


def _acs_columns(cols: np.ndarray) -> np.ndarray:
    """The contiguous run of sampled columns around the k-space centre (the ACS lines)."""
    from ambient_imaging.datasets.fastmri import acs_from_lines

    return acs_from_lines(cols)


def _mri_mask(h: int, w: int, args: argparse.Namespace, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, W)`` line mask and its ACS lines: ``operators.mri_mask`` when available, else the same rule here."""
    try:
        from ambient_imaging.operators import mri_mask
    except ImportError:
        cols = _line_mask(w, args.acceleration, args.center_lines, args.mask_seed + index)
        return torch.from_numpy(cols)[None], torch.from_numpy(_acs_columns(cols))[None]
    if args.acceleration < 1:
        raise ValueError(f"--acceleration must be >= 1, got {args.acceleration}")
    g = torch.Generator().manual_seed(args.mask_seed + index)
    kw = {"center_lines": args.center_lines} if args.center_lines is not None else {}
    mask, acs = mri_mask((h, w), args.acceleration, kind="random", generator=g, **kw)
    return mask.any(dim=1), acs.any(dim=1)


def _coil_maps(k: torch.Tensor) -> torch.Tensor:
    """ESPIRiT maps ``(Nc, H, W)`` (``operators.espirit_maps``; sigpy directly as a fallback)."""
    try:
        from ambient_imaging.operators import espirit_maps
    except ImportError:
        import sigpy.mri as mr

        maps = mr.app.EspiritCalib(k.numpy(), calib_width=24, thresh=0.02, crop=0.95, show_pbar=False).run()
        return torch.as_tensor(np.asarray(maps)).to(torch.complex64)
    return espirit_maps(k)


def _noise_sigma(k: np.ndarray, cols: np.ndarray) -> float:
    """Noise std from the readout edges (oversampled, nearly signal-free), ``datasets.fastmri.estimate_noise_sigma``."""
    from ambient_imaging.datasets.fastmri import estimate_noise_sigma

    return estimate_noise_sigma(k, cols)


def _ifft2c(k: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def _reconstruct_mri(args: argparse.Namespace, prior: Any, method: Any, device: torch.device) -> list[dict]:
    from tqdm.auto import tqdm

    from ambient_imaging.datasets.fastmri import derive_line_mask
    from ambient_imaging.metrics import nmse, psnr, ssim
    from ambient_imaging.sampling.api import reconstruct

    try:
        from ambient_imaging.operators import MultiCoilMRI
    except ImportError:  # not exported yet
        from ambient_imaging.operators.mri import MultiCoilMRI

    data = Path(args.data)
    files = _kspace_files(data)
    out = Path(args.out)
    if len(files) > 1 and out.suffix:
        raise ValueError(f"--data {data} holds {len(files)} files: --out must be a folder, got {out}")
    results = []
    for f in files:
        target = out / f"{f.stem}.nc" if len(files) > 1 else out
        kspace, stored_mask, attrs = _read_fastmri(f)
        # a folder: each file contributes the requested slices it has
        slices = parse_slices(args.slices, kspace.shape[0], strict=len(files) == 1)
        if not slices:
            print(f"{f.name}: none of --slices {args.slices} (it has {kspace.shape[0]}); skipped", file=sys.stderr)
            continue
        means, stds, samples, refs, zfs, rows = [], [], [], [], [], []
        gen = torch.Generator(device=device).manual_seed(args.seed)
        for s in tqdm(slices, desc=f.name, leave=False):
            k = kspace[s]
            nc, h, w = k.shape
            cols = derive_line_mask(k) if stored_mask is None else stored_mask[s]
            full = stored_mask is None and cols.mean() > 0.99
            kt = torch.from_numpy(k).to(torch.complex64)
            maps = _coil_maps(kt)
            if full:
                mask, acs = _mri_mask(h, w, args, s)
                ref = (maps.conj() * _ifft2c(kt)).sum(0).abs()
                refs.append(ref.numpy())
            else:
                mask, acs = torch.from_numpy(cols)[None], torch.from_numpy(_acs_columns(cols))[None]
            sigma = _noise_sigma(k, mask[0].numpy())
            op = MultiCoilMRI(maps[None], mask, noise_sigma=sigma, acs=acs if bool(acs.any()) else None)
            y = op.restrict(kt[None])
            rec = reconstruct(y, op, prior, method, samples=args.samples, generator=gen)
            zf = reconstruct(y, op, None, _zero_filled()).mean[0, 0].abs()
            means.append(rec.mean[0, 0].detach().cpu().numpy())
            stds.append(rec.std[0, 0].detach().cpu().numpy())
            samples.append(rec.samples[0, :, 0].detach().cpu().numpy())
            zfs.append(zf.numpy())
            row = {"file": f.name, "slice": s, "method": args.sampler, "seconds": rec.info["seconds"],
                   "nfe": rec.nfe, "residual_rel": rec.info["residual_rel"][0], "chi2_red": rec.info["chi2_red"][0],
                   "acceleration": float(w / max(int(mask.sum()), 1)), "noise_sigma": sigma}
            if full:
                ref_c, est, zf_c = (_crop(a, args.crop) for a in (refs[-1], np.abs(means[-1]), zfs[-1]))
                row.update(psnr=psnr(ref_c, est), ssim=ssim(ref_c, est), nmse=nmse(ref_c, est),
                           psnr_zero_filled=psnr(ref_c, zf_c))
            rows.append(row)
        coords = {"slice": slices}
        arrays = {"mean": (("slice", "y", "x"), np.stack(means)), "std": (("slice", "y", "x"), np.stack(stds)),
                  "samples": (("slice", "sample", "y", "x"), np.stack(samples)),
                  "zero_filled": (("slice", "y", "x"), np.stack(zfs))}
        if refs and len(refs) == len(slices):
            arrays["reference"] = (("slice", "y", "x"), np.stack(refs))
        attrs_out = {"source": str(f), "method": args.sampler, "prior": str(args.prior or ""),
                     "samples_per_slice": args.samples}
        if target.suffix in (".h5", ".hdf5"):
            _write_fastmri_recon(target, np.abs(np.stack(means)).astype(np.float32), np.stack(stds), attrs_out)
        else:
            _write_netcdf(target, arrays, attrs_out, coords)
        summary: dict[str, Any] = {"file": f.name, "method": args.sampler, "slices": rows}
        if refs and len(refs) == len(slices):
            vol_ref, vol_est = _crop(np.stack(refs), args.crop), _crop(np.abs(np.stack(means)), args.crop)
            summary["volume"] = {"psnr": psnr(vol_ref, vol_est), "ssim": ssim(vol_ref, vol_est),
                                 "nmse": nmse(vol_ref, vol_est)}
        _save_json(target.with_suffix(".metrics.json"), summary)
        _figure(target.with_suffix(".png"), refs, zfs, means, stds, args.sampler)
        results.extend(rows)
    if not results:
        raise ValueError(f"--slices {args.slices}: no file in {data} has these slices")
    return results


def _crop(x: np.ndarray, size: int | None) -> np.ndarray:
    from ambient_imaging.metrics import center_crop

    return x if size is None else center_crop(x, size)


def _zero_filled():
    from ambient_imaging.sampling import ZeroFilled

    return ZeroFilled()


def _write_fastmri_recon(path: Path, recon: np.ndarray, std: np.ndarray, attrs: dict[str, Any]) -> None:
    """fastMRI reconstruction layout: ``reconstruction`` (slices, H, W) float32 (+ ``reconstruction_std``)."""
    from ambient_imaging.datasets.outputs import save_fastmri_reconstruction

    save_fastmri_reconstruction(path, recon, std=std, attrs=attrs)


def _save_json(path: Path, obj: Any) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, (np.floating, np.integer)):
            return clean(v.item())
        return v

    _atomic(path, lambda p: p.write_text(json.dumps(clean(obj), indent=2)))


def _figure(path: Path, refs, zfs, means, stds, method: str | None, index: int = 0) -> None:
    """Reference | zero-filled | reconstruction | std of one slice (Agg backend)."""
    panels, titles = [], []
    if refs:
        panels.append(np.abs(refs[index])), titles.append("reference")
    panels += [np.abs(zfs[index]), np.abs(means[index]), stds[index]]
    titles += ["zero-filled", f"{method} mean", f"{method} std"]
    _png_grid(np.stack(panels), path, titles)


# =========================================================================== reconstruct: sky
def parse_angle(text: str) -> float:
    """``"200uas"``, ``"3 arcsec"``, ``"0.5deg"`` → radians (astropy units)."""
    import re

    from astropy import units as u

    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z]+)\s*", text or "")
    if not m:
        raise ValueError(f"--fov: cannot read {text!r}; give a number with units, e.g. 200uas or 3arcsec")
    try:
        q = float(m.group(1)) * u.Unit(m.group(2))
        rad = float(q.to(u.rad).value)
    except (ValueError, u.UnitsError) as err:
        raise ValueError(f"--fov: {text!r} is not an angle ({err})") from err
    if rad <= 0:
        raise ValueError(f"--fov must be positive, got {text!r}")
    return rad


def _read_uvfits(path: Path) -> dict[str, Any]:
    """Random-groups UVFITS via :func:`ambient_imaging.datasets.read_uvfits`: Stokes-I visibilities,
    channels averaged, flagged records dropped; ``sigma`` is the operator's ``E|ε|² = σ²`` std."""
    from ambient_imaging.datasets.uvfits import read_uvfits

    obs = read_uvfits(path)
    # UVFITS weights are 1/σ² per real/imaginary part; the Interferometer's σ is that of the complex noise
    sigma = np.sqrt(2.0) * obs.sigma
    return {"uv": obs.uv, "vis": obs.vis, "sigma": sigma, "valid": np.ones(len(obs), bool), "ra": obs.ra_deg,
            "dec": obs.dec_deg, "object": obs.source, "freq": obs.ref_frequency}


def _sky_header(ra: float, dec: float, pixel_rad: float, npix: int, extra: dict[str, Any]):
    from astropy.io import fits

    hdr = fits.Header()
    deg = math.degrees(pixel_rad)
    for k, v in (("CTYPE1", "RA---SIN"), ("CTYPE2", "DEC--SIN"), ("CRVAL1", ra), ("CRVAL2", dec),
                 ("CDELT1", -deg), ("CDELT2", deg), ("CRPIX1", npix / 2 + 1), ("CRPIX2", npix / 2 + 1),
                 ("CUNIT1", "deg"), ("CUNIT2", "deg"), ("BUNIT", "JY/PIXEL")):
        hdr[k] = v
    for k, v in extra.items():
        hdr[k[:8].upper()] = v
    return hdr


def _write_sky_fits(path: Path, mean: np.ndarray, std: np.ndarray, samples: np.ndarray, header,
                    provenance: dict[str, Any] | None = None) -> None:
    """Mean (primary), STD and SAMPLES HDUs with the input's cards, its WCS and provenance (atomic)."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from ambient_imaging.datasets.fits import write_fits_image

    wcs = None
    if any(str(k).startswith("CTYPE") for k in header):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    write_fits_image(path, mean.astype(np.float32), wcs=wcs, header=header, std=std.astype(np.float32),
                     extra={"SAMPLES": samples.astype(np.float32)}, provenance=provenance)


def _sky_outputs(args, target: Path, rec, header, extra_arrays: dict | None = None) -> None:
    mean = rec.mean[0, 0].detach().cpu().numpy()
    std = rec.std[0, 0].detach().cpu().numpy()
    samples = rec.samples[0, :, 0].detach().cpu().numpy()
    if target.suffix.lower() in (".fits", ".fit"):
        _write_sky_fits(target, mean, std, samples, header,
                        {"prior": str(args.prior or ""), "sampler": args.sampler, "samples": int(samples.shape[0])})
    else:
        arrays = {"mean": (("y", "x"), mean), "std": (("y", "x"), std), "samples": (("sample", "y", "x"), samples)}
        arrays.update(extra_arrays or {})
        _write_netcdf(target, arrays, {"method": args.sampler, "prior": str(args.prior or ""),
                                       "wcs": json.dumps({k: header[k] for k in header})})


def _reconstruct_uvfits(args: argparse.Namespace, prior: Any, method: Any, device: torch.device) -> list[dict]:
    from ambient_imaging.operators import Interferometer
    from ambient_imaging.sampling import ZeroFilled
    from ambient_imaging.sampling.api import reconstruct

    data = Path(args.data)
    if args.fov is None:
        raise ValueError("--fov is required for visibilities (e.g. --fov 200uas)")
    if args.npix < 8:
        raise ValueError(f"--npix must be >= 8, got {args.npix}")
    obs = _read_uvfits(data)
    pixel = parse_angle(args.fov) / args.npix
    uv = torch.from_numpy(obs["uv"])
    valid = torch.from_numpy(obs["valid"])[None]
    sigma = torch.from_numpy(obs["sigma"])[None]
    op = Interferometer(uv, (args.npix, args.npix), pixel, noise_sigma=sigma, mask=valid)
    y = op.restrict(torch.from_numpy(obs["vis"]).to(torch.complex128)[None])
    if prior is not None:
        if prior.image_shape[1:] and tuple(prior.image_shape[1:]) != (args.npix, args.npix):
            print(f"note: the prior was trained on {prior.image_shape[1]}x{prior.image_shape[2]} images; "
                  f"imaging on {args.npix}x{args.npix}", file=sys.stderr)
        y, op = y.to(torch.complex64), op.to(dtype=torch.float32)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rec = reconstruct(y, op, prior, method, samples=args.samples, generator=gen)
    dirty = reconstruct(y, op, None, ZeroFilled())
    header = _sky_header(obs["ra"], obs["dec"], pixel, args.npix,
                         {"OBJECT": obs["object"], "METHOD": args.sampler, "CHI2RED": float(rec.info["chi2_red"][0])})
    target = Path(args.out)
    _sky_outputs(args, target, rec, header, {"dirty": (("y", "x"), dirty.mean[0, 0].cpu().numpy())})
    row = {"file": data.name, "slice": 0, "method": args.sampler, "chi2_red": rec.info["chi2_red"][0],
           "chi2_red_dirty": dirty.info["chi2_red"][0], "residual_rel": rec.info["residual_rel"][0],
           "nfe": rec.nfe, "seconds": rec.info["seconds"], "n_vis": int(valid.sum())}
    _save_json(target.with_suffix(".metrics.json"), {"file": data.name, "method": args.sampler, "slices": [row]})
    return [row]


def _reconstruct_fits_image(args: argparse.Namespace, prior: Any, method: Any, device: torch.device) -> list[dict]:
    """Inpainting of a FITS image read by :func:`ambient_imaging.datasets.read_fits_image`: NaN/Inf pixels
    and pixels flagged by a MASK (nonzero = valid) / BPM / DQ / WHT extension are missing; noise from the
    NOISE/RMS/SIGMA card, else a robust estimate."""
    from ambient_imaging.datasets.fits import read_fits_image
    from ambient_imaging.operators import PixelMask
    from ambient_imaging.sampling.api import reconstruct

    data = Path(args.data)
    im = read_fits_image(data)
    img, header, bad = im.data, im.header.copy(), ~im.mask
    mask = torch.from_numpy(im.mask.copy())[None, None]
    op = PixelMask(mask, noise_sigma=float(im.noise_sigma))
    y = op.restrict(torch.from_numpy(img)[None, None].float())
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rec = reconstruct(y, op, prior, method, samples=args.samples, generator=gen)
    target = Path(args.out)
    header["METHOD"] = args.sampler
    _sky_outputs(args, target, rec, header, {"mask": (("y", "x"), (~bad).astype(np.uint8))})
    row = {"file": data.name, "slice": 0, "method": args.sampler, "residual_rel": rec.info["residual_rel"][0],
           "chi2_red": rec.info["chi2_red"][0], "nfe": rec.nfe, "seconds": rec.info["seconds"],
           "missing_fraction": float(bad.mean())}
    _save_json(target.with_suffix(".metrics.json"), {"file": data.name, "method": args.sampler, "slices": [row]})
    return [row]


# =========================================================================== reconstruct: dispatch
def _is_random_groups(path: Path) -> bool:
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            return bool(hdul[0].header.get("GROUPS", False))
    except OSError as err:
        raise ValueError(f"{path}: cannot read as FITS ({err})") from err


def run_reconstruct(args: argparse.Namespace) -> int:
    """``ambient-imaging reconstruct``."""
    data = Path(args.data)
    if not data.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder")
    device = _device(args.device)
    prior = _load_prior(args.prior, device)
    if args.sampler is None:
        args.sampler = "mmps" if prior is not None else "zero-filled"
    if args.samples < 1:
        raise ValueError(f"--samples must be >= 1, got {args.samples}")
    method = make_method(args.sampler, prior, args.steps, args.lamda, args.zeta)
    if hasattr(method, "progress"):
        method.progress = True
    suffix = data.suffix.lower()
    if data.is_dir() or suffix in (".h5", ".hdf5"):
        rows = _reconstruct_mri(args, prior, method, device)
    elif suffix in (".uvfits", ".uvf") or (suffix in (".fits", ".fit") and _is_random_groups(data)):
        rows = _reconstruct_uvfits(args, prior, method, device)
    elif suffix in (".fits", ".fit"):
        rows = _reconstruct_fits_image(args, prior, method, device)
    else:
        raise ValueError(f"--data {data}: unsupported input (fastMRI .h5 / folder, .uvfits/.uvf, .fits)")
    _print_table(rows)
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _print_table(rows: list[dict[str, Any]], cols: tuple[str, ...] | None = None, file=None) -> None:
    if not rows:
        return
    cols = cols or tuple(k for k in ("file", "slice", "method", "psnr", "ssim", "nmse", "psnr_zero_filled",
                                     "chi2_red", "residual_rel", "nfe", "seconds") if any(k in r for r in rows))
    table = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)), file=file or sys.stdout)
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)), file=file or sys.stdout)


# =========================================================================== evaluate
def _metric_files(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.rglob("*.metrics.json"))


def run_evaluate(args: argparse.Namespace) -> int:
    """``ambient-imaging evaluate``: one row per (file, method) with mean metrics over slices."""
    folder = Path(args.results)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of results")
    files = list(_metric_files(folder))
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
        for key in ("psnr", "ssim", "nmse", "psnr_zero_filled", "chi2_red", "seconds"):
            vals = [s[key] for s in slices if isinstance(s.get(key), (int, float))]
            if vals:
                row[key] = float(np.mean(vals))
        for key, v in (d.get("volume") or {}).items():
            row[f"volume_{key}"] = v
        rows.append(row)
    cols = ("result", "method", "slices", "psnr", "ssim", "nmse", "psnr_zero_filled", "chi2_red", "seconds")
    cols = tuple(c for c in cols if any(c in r for r in rows))
    _print_table(rows, cols)
    out = Path(args.out) if args.out else folder / "metrics.csv"

    def write_csv(p: Path) -> None:
        import csv

        keys = list(dict.fromkeys(k for r in rows for k in r))
        with open(p, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)

    _atomic(out, write_csv)
    fig = _comparison_figure(folder, out.with_suffix(".png"))
    print(f"table -> {out}" + (f", figure -> {fig}" if fig else ""))
    return 0


def _comparison_figure(folder: Path, path: Path) -> Path | None:
    """Reference, zero-filled, L1, posterior mean, posterior std of the first slice found in the NetCDF results."""
    import xarray as xr

    panels: dict[str, np.ndarray] = {}
    for nc in sorted(folder.rglob("*.nc")):
        try:
            ds = xr.open_dataset(nc, engine="h5netcdf")
        except (OSError, ValueError):
            continue
        with ds:
            method = str(ds.attrs.get("method", nc.stem))
            if "reference" in ds and "reference" not in panels:
                panels["reference"] = np.abs(ds["reference"].values[0])
            if "zero_filled" in ds and "zero-filled" not in panels:
                panels["zero-filled"] = np.abs(ds["zero_filled"].values[0])
            if "mean" in ds and ds["mean"].ndim == 3:
                if method in ("l1-wavelet",):
                    panels.setdefault("l1-wavelet", np.abs(ds["mean"].values[0]))
                elif method in POSTERIOR:
                    panels.setdefault(f"{method} mean", np.abs(ds["mean"].values[0]))
                    if "std" in ds:
                        panels.setdefault(f"{method} std", np.asarray(ds["std"].values[0]))
    if not panels:
        return None
    order = ["reference", "zero-filled", "l1-wavelet"]
    names = [n for n in order if n in panels] + [n for n in panels if n not in order]
    shapes = {panels[n].shape for n in names}
    if len(shapes) > 1:
        names = [n for n in names if panels[n].shape == panels[names[0]].shape]
    _png_grid(np.stack([panels[n] for n in names]), path, names)
    return path
