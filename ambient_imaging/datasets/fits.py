"""FITS images: reader, writer and a patch dataset of masked, noisy sky images.

Mask conventions (``True`` = valid pixel), applied in this order and combined (AND):

1. an explicit mask file (``mask=path``): its first image HDU, non-zero = valid;
2. a mask HDU found in the file (``mask="auto"`` or ``mask_hdu=``), by EXTNAME:
   ``MASK``/``BPM`` — non-zero = valid for ``MASK``, non-zero = *bad* for ``BPM``
   (bad-pixel map); ``DQ`` — data-quality flags, any non-zero flag = bad;
   ``WHT``/``WEIGHT`` — inverse-variance weights, ``<= 0`` = bad;
3. the NaN convention: non-finite pixels are bad (and set to 0 in ``data``).

Noise ``σ`` (file units), first that applies: ``noise_sigma=``; the header keyword
``NOISE``, ``RMS`` or ``SIGMA`` (in that order, primary or image HDU); otherwise a
robust *estimate* ``1.4826 · MAD`` of the first differences of valid pixels along x,
divided by ``√2`` (differences cancel smooth structure; for white noise this is σ).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.io import fits
from astropy.wcs import WCS
from torch.utils.data import Dataset

from ambient_imaging.io import atomic_path
from ambient_imaging.operators import PixelMask

from .io import expand_paths

__all__ = [
    "SkyImage",
    "read_fits_image",
    "write_fits_image",
    "FITSImages",
    "estimate_noise",
    "sky_fits_header",
    "operator_to_fits_image",
    "fits_to_operator_image",
    "write_sky_fits",
]

MASK_NAMES = ("MASK", "BPM", "DQ", "WHT", "WEIGHT")
NOISE_KEYS = ("NOISE", "RMS", "SIGMA")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


@dataclass
class SkyImage:
    """One sky image read from FITS.

    Attributes:
        data: ``(H, W)`` float64, bad pixels set to 0.
        wcs: the 2-D celestial WCS.
        header: the image HDU's header.
        mask: ``(H, W)`` bool, ``True`` = valid.
        noise_sigma: per-pixel noise std in ``unit``.
        unit: ``BUNIT`` (``""`` if absent).
        noise_source: ``"given"``, ``"header:<KEY>"`` or ``"estimate"``.
        path: the file.
    """

    data: np.ndarray
    wcs: WCS
    header: fits.Header
    mask: np.ndarray
    noise_sigma: float
    unit: str = ""
    noise_source: str = "given"
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def estimate_noise(data: np.ndarray, mask: np.ndarray) -> float:
    """Robust noise estimate: ``1.4826·MAD(Δx)/√2`` over pairs of horizontally adjacent valid pixels."""
    d = data[:, 1:] - data[:, :-1]
    ok = mask[:, 1:] & mask[:, :-1]
    vals = d[ok]
    if vals.size < 2:
        vals = data[mask]
        if vals.size < 2:
            return 0.0
        return float(1.4826 * np.median(np.abs(vals - np.median(vals))))
    return float(1.4826 * np.median(np.abs(vals - np.median(vals))) / np.sqrt(2.0))


def _open(path: Path) -> fits.HDUList:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a FITS file ({err})") from err
    try:
        _check_sizes(hdul, path)
    except ValueError:
        hdul.close()
        raise
    try:
        hdul.verify("silentfix")
        for h in hdul:  # read the data now: a truncated file fails here, with its name
            _ = h.data
        return hdul
    except (OSError, TypeError, ValueError, IndexError) as err:
        hdul.close()
        size = path.stat().st_size
        raise ValueError(f"{path}: truncated or corrupt FITS file ({size} bytes; {err})") from err


def _check_sizes(hdul: fits.HDUList, path: Path) -> None:
    """Refuse, from the headers alone (before any data is read), HDUs too large for this machine's memory."""
    from ambient_imaging.limits import check_memory

    for h in hdul:
        n = h.header.get("NAXIS", 0)
        dims = [h.header.get(f"NAXIS{i}", 0) for i in range(1, int(n) + 1)] if isinstance(n, int) else []
        if dims and all(isinstance(d, int) and d > 0 for d in dims):
            shape = "x".join(str(d) for d in reversed(dims))
            check_memory(16 * math.prod(dims) * 8, f"an HDU of {shape} values and its working copies", str(path),
                         "crop the image first")


def _is_image(h: fits.hdu.base.ExtensionHDU) -> bool:
    return isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and h.data is not None


def _squeeze_image(data: np.ndarray, path: Path) -> np.ndarray:
    """Drop degenerate axes (radio cubes: ``(STOKES, FREQ, H, W)`` with length-1 leading axes)."""
    arr = np.asarray(data)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{path}: image has shape {data.shape}; need 2-D (degenerate extra axes are dropped)")
    return arr


def _mask_from_hdu(h: fits.ImageHDU, shape: tuple[int, int], path: Path) -> np.ndarray:
    name = str(h.name).upper()
    m = _squeeze_image(h.data, path)
    if m.shape != shape:
        raise ValueError(f"{path}: mask HDU {name!r} has shape {m.shape}, image has {shape}")
    if name in ("DQ", "BPM"):
        return m == 0
    if name in ("WHT", "WEIGHT"):
        return np.nan_to_num(m, nan=0.0) > 0
    return np.nan_to_num(m, nan=0.0) != 0


def read_fits_image(
    path: str | os.PathLike,
    hdu: int | str | None = None,
    mask: None | str | os.PathLike = "auto",
    mask_hdu: int | str | None = None,
    noise_sigma: float | None = None,
) -> SkyImage:
    """Read a 2-D sky image, its celestial WCS, a validity mask and the noise level.

    Args:
        path: the FITS file.
        hdu: image HDU (index or EXTNAME); default the first HDU with image data.
        mask: ``"auto"`` (use a mask HDU named MASK/BPM/DQ/WHT/WEIGHT if present),
            ``None`` (NaN convention only) or a path to a separate mask FITS file.
        mask_hdu: explicit mask HDU in the same file (overrides the automatic search).
        noise_sigma: noise std in file units (default: header keyword, else estimate).

    Raises:
        ValueError: not FITS, no image data, mask shape mismatch, all pixels masked.
    """
    path = Path(path)
    with _open(path) as hdul:
        if hdu is None:
            img = next((h for h in hdul if _is_image(h) and str(h.name).upper() not in MASK_NAMES), None)
            if img is None:
                kinds = ", ".join(type(h).__name__ for h in hdul)
                raise ValueError(f"{path}: no image data in any HDU (found {kinds})")
        else:
            try:
                img = hdul[hdu]
            except (KeyError, IndexError) as err:
                raise ValueError(f"{path}: no HDU {hdu!r}") from err
            if not _is_image(img):
                raise ValueError(f"{path}: HDU {hdu!r} holds no image data")
        header = img.header.copy()
        raw = _squeeze_image(img.data, path).astype(np.float64)
        shape = raw.shape
        valid = np.isfinite(raw)
        if mask_hdu is not None:
            try:
                valid &= _mask_from_hdu(hdul[mask_hdu], shape, path)
            except (KeyError, IndexError) as err:
                raise ValueError(f"{path}: no mask HDU {mask_hdu!r}") from err
        elif mask is not None and str(mask) == "auto":
            for h in hdul:
                if h is not img and _is_image(h) and str(h.name).upper() in MASK_NAMES:
                    valid &= _mask_from_hdu(h, shape, path)
                    break
        primary = hdul[0].header
    if mask is not None and str(mask) != "auto":
        mpath = Path(mask)
        with _open(mpath) as mh:
            mimg = next((h for h in mh if _is_image(h)), None)
            if mimg is None:
                raise ValueError(f"{mpath}: mask file has no image data")
            m = _squeeze_image(mimg.data, mpath)
        if m.shape != shape:
            raise ValueError(f"{mpath}: mask has shape {m.shape}, image {path} has {shape}")
        valid &= np.nan_to_num(m.astype(np.float64), nan=0.0) != 0
    if not valid.any():
        raise ValueError(f"{path}: all {raw.size} pixels are masked (NaN or mask)")
    data = np.where(valid, raw, 0.0)
    wcs = WCS(header, naxis=2) if header.get("NAXIS", 0) >= 2 else WCS(naxis=2)
    if wcs.has_celestial:
        wcs = wcs.celestial
    if noise_sigma is not None:
        sigma, src = float(noise_sigma), "given"
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"{path}: noise_sigma must be finite and >= 0, got {noise_sigma}")
    else:
        key = next((k for k in NOISE_KEYS if k in header), None) or next((k for k in NOISE_KEYS if k in primary), None)
        if key is not None:
            sigma, src = _header_sigma(header.get(key, primary.get(key)), key, path), f"header:{key}"
        else:
            sigma, src = estimate_noise(data, valid), "estimate"
    return SkyImage(
        data=data,
        wcs=wcs,
        header=header,
        mask=valid,
        noise_sigma=sigma,
        unit=str(header.get("BUNIT", "")),
        noise_source=src,
        path=str(path),
    )


def _header_sigma(value: Any, key: str, path: Path) -> float:
    """A noise level read from a header card: a finite number >= 0, or an error naming file and card."""
    try:
        sigma = float(value)
    except (TypeError, ValueError):
        sigma = float("nan")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"{path}: header card {key} = {value!r} is not a noise level (a finite number >= 0); "
                         "fix the card or pass the noise level explicitly")
    return sigma


def _ascii(value: Any) -> str:
    """``value`` as FITS header text: printable ASCII, anything else escaped (``café`` → ``caf\\xe9``;
    file names that are not UTF-8 too), so a path in a provenance card never fails a write."""
    from ambient_imaging.limits import shown

    text = shown(value) if isinstance(value, (str, os.PathLike)) else str(value)
    return "".join(ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in text)


def write_fits_image(
    path: str | os.PathLike,
    image: np.ndarray | torch.Tensor,
    wcs: WCS | None = None,
    header: fits.Header | None = None,
    std: np.ndarray | torch.Tensor | None = None,
    mask: np.ndarray | torch.Tensor | None = None,
    provenance: dict[str, Any] | None = None,
    history: Sequence[str] = (),
    extra: dict[str, np.ndarray | torch.Tensor] | None = None,
    unit: str | None = None,
    noise_sigma: float | None = None,
    header_from: fits.Header | None = None,
) -> Path:
    """Write an image ``(H, W)`` or a stack ``(K, H, W)`` (e.g. posterior samples) atomically.

    Args:
        wcs: celestial WCS written into every image HDU.
        header: cards copied first (e.g. the input file's header; structural and WCS keys are
            dropped, the WCS is rewritten from ``wcs``). ``header_from`` is an alias.
        std: per-pixel posterior std, written as the ``STD`` HDU (same shape as ``image`` or ``(H, W)``).
        mask: ``(H, W)`` validity mask (``True`` = valid), written as the ``MASK`` HDU (uint8, 1 = valid).
        provenance: ``{"tool": ..., "version": ..., "prior": ..., "sampler": ..., ...}`` written as
            ``AI_<KEY>`` cards (8-character FITS keywords via HIERARCH when longer) plus ``DATE``.
        history: HISTORY cards.
        extra: further image HDUs by EXTNAME, e.g. ``{"STD": std, "MASK": mask}`` (bool → uint8).
        unit: BUNIT; noise_sigma: written as ``NOISE``.
    """
    path = Path(path)
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"{path}: image must be (H, W) or (K, H, W), got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{path}: FITS images must be real, got {arr.dtype}")
    if header is not None and header_from is not None:
        raise ValueError(f"{path}: give header or header_from, not both")
    header_from = header if header is not None else header_from
    named: dict[str, Any] = {}
    if std is not None:
        named["STD"] = std
    if mask is not None:
        m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        named["MASK"] = m.astype(bool)
    extra = {**named, **(extra or {})}
    hdr = fits.Header()
    if header_from is not None:
        skip = {"SIMPLE", "BITPIX", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "BSCALE", "BZERO"}
        for card in header_from.cards:
            k = card.keyword
            if k in skip or k.startswith("NAXIS") or k in ("", "COMMENT", "HISTORY"):
                continue
            if k[:5] in ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT", "CROTA") or k[:2] in ("PC", "CD"):
                continue  # the WCS is rewritten below
            hdr[k if len(k) <= 8 else f"HIERARCH {k}"] = (card.value, card.comment)
    if wcs is not None:
        hdr.update(wcs.to_header())
    if unit is not None:
        hdr["BUNIT"] = unit
    if noise_sigma is not None:
        hdr["NOISE"] = (float(noise_sigma), "noise std per pixel")
    hdr["DATE"] = (_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "file written (UTC)")
    from ambient_imaging import __version__

    prov = {"tool": "ambient-imaging", "version": __version__, **(provenance or {})}
    for k, v in prov.items():
        key = f"AI_{str(k).upper()}"
        val = v if isinstance(v, (bool, int, float, np.integer, np.floating)) else _ascii(v)
        if isinstance(val, str) and len(val) > 40:
            val = val[:37] + "..."  # the full value is in the HISTORY card below
        if len(key) > 8:
            key = f"HIERARCH {key}"
        hdr[key] = val
    hdr.add_history(f"{prov['tool']} {prov['version']} {hdr['DATE']}")
    for k, v in prov.items():
        if k not in ("tool", "version"):
            hdr.add_history(_ascii(f"{k}={v}"))
    for h in history:
        hdr.add_history(_ascii(h))
    hdus = [fits.PrimaryHDU(arr.astype(np.float32 if arr.dtype != np.float64 else np.float64), header=hdr)]
    for name, e in extra.items():
        ea = e.detach().cpu().numpy() if isinstance(e, torch.Tensor) else np.asarray(e)
        if ea.shape[-2:] != arr.shape[-2:]:
            raise ValueError(f"{path}: extra HDU {name!r} has shape {ea.shape}, image has {arr.shape}")
        if ea.dtype == bool:
            ea = ea.astype(np.uint8)
        eh = fits.Header(wcs.to_header()) if wcs is not None else fits.Header()
        hdus.append(fits.ImageHDU(ea, header=eh, name=name.upper()))
    with atomic_path(path, suffix=".fits") as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def operator_to_fits_image(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """An :class:`~ambient_imaging.operators.Interferometer` image (east along ``+column``) as a FITS
    sky array (east to the left, ``CDELT1 < 0``): the last axis reversed. Works on ``(..., H, W)``
    numpy arrays and tensors; the inverse is :func:`fits_to_operator_image` (the same flip).

    The phase centre, operator pixel ``(H//2, W//2)``, lands on FITS column ``W - 1 - W//2``
    (0-based); :func:`sky_fits_header` sets ``CRPIX1`` to match.
    """
    if isinstance(img, torch.Tensor):
        return img.flip(-1)
    return np.ascontiguousarray(np.asarray(img)[..., ::-1])


def fits_to_operator_image(img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """A FITS sky array (east left, as written by :func:`write_sky_fits`) in the operator's layout
    (east along ``+column``); the inverse of :func:`operator_to_fits_image`."""
    return operator_to_fits_image(img)


def sky_fits_header(
    ra_deg: float,
    dec_deg: float,
    pixel_rad: float,
    shape: tuple[int, int],
    beam: tuple[float, float, float] | None = None,
    frequency_hz: float | None = None,
    extra: dict[str, Any] | None = None,
) -> fits.Header:
    """RA/Dec SIN-projection header for an image written by :func:`operator_to_fits_image`.

    Args:
        ra_deg, dec_deg: phase centre (the UVFITS file's RA/DEC, degrees).
        pixel_rad: pixel size in radians (the operator's ``pixel_scale``).
        shape: ``(H, W)`` of the image.
        beam: restoring beam ``(bmaj_rad, bmin_rad, bpa_deg)`` (FWHM; position angle east of
            north) written as ``BMAJ``/``BMIN`` (degrees) and ``BPA``; omit when none applies.
        frequency_hz: observing frequency, written as ``OBSFREQ`` (Hz).
        extra: further cards (keys upper-cased, at most 8 characters, else HIERARCH).

    ``CDELT1 = −Δ`` (RA increases to the left), ``CDELT2 = +Δ``, ``CRPIX`` on the phase centre:
    ``CRPIX1 = W − W//2`` and ``CRPIX2 = H//2 + 1`` (1-based), ``BUNIT = JY/PIXEL``.
    """
    h, w = (int(s) for s in shape)
    if not (np.isfinite(pixel_rad) and pixel_rad > 0):
        raise ValueError(f"sky_fits_header: pixel_rad must be a positive number of radians, got {pixel_rad}")
    deg = float(np.degrees(pixel_rad))
    hdr = fits.Header()
    cards = [
        ("CTYPE1", "RA---SIN", "right ascension, orthographic projection"),
        ("CTYPE2", "DEC--SIN", "declination, orthographic projection"),
        ("CRVAL1", float(ra_deg), "[deg] phase centre"),
        ("CRVAL2", float(dec_deg), "[deg] phase centre"),
        ("CDELT1", -deg, "[deg] RA increases to the left (east left)"),
        ("CDELT2", deg, "[deg]"),
        ("CRPIX1", float(w - w // 2), "phase centre column (1-based)"),
        ("CRPIX2", float(h // 2 + 1), "phase centre row (1-based)"),
        ("CUNIT1", "deg", None),
        ("CUNIT2", "deg", None),
        ("RADESYS", "ICRS", None),
        ("EQUINOX", 2000.0, None),
        ("BUNIT", "JY/PIXEL", "brightness per pixel"),
    ]
    for k, v, c in cards:
        hdr[k] = (v, c) if c else v
    if beam is not None:
        bmaj, bmin, bpa = (float(b) for b in beam)
        if not (bmaj > 0 and bmin > 0):
            raise ValueError(f"sky_fits_header: beam FWHMs must be positive radians, got {beam}")
        hdr["BMAJ"] = (float(np.degrees(bmaj)), "[deg] restoring beam major axis FWHM")
        hdr["BMIN"] = (float(np.degrees(bmin)), "[deg] restoring beam minor axis FWHM")
        hdr["BPA"] = (bpa, "[deg] beam position angle, E of N")
    if frequency_hz is not None:
        hdr["OBSFREQ"] = (float(frequency_hz), "[Hz] observing frequency")
    for k, v in (extra or {}).items():
        key = str(k).upper()
        hdr[key if len(key) <= 8 else f"HIERARCH {key}"] = v
    return hdr


def write_sky_fits(
    path: str | os.PathLike,
    mean: np.ndarray | torch.Tensor,
    std: np.ndarray | torch.Tensor | None = None,
    samples: np.ndarray | torch.Tensor | None = None,
    header: fits.Header | None = None,
    provenance: dict[str, Any] | None = None,
    extra: dict[str, np.ndarray | torch.Tensor] | None = None,
) -> Path:
    """Write an interferometric reconstruction as a FITS sky image (atomically).

    Args:
        mean: ``(H, W)`` image **in the operator's layout** (east along ``+column``, Jy/pixel);
            it is flipped to east-left here (:func:`operator_to_fits_image`).
        std: optional ``(H, W)`` posterior std (``STD`` HDU), operator layout.
        samples: optional ``(K, H, W)`` posterior samples (``SAMPLES`` HDU), operator layout.
        header: :func:`sky_fits_header` (WCS, BUNIT, beam) plus any cards to keep.
        provenance: ``AI_*`` cards (see :func:`write_fits_image`).
        extra: more ``(H, W)``/``(K, H, W)`` operator-layout arrays by EXTNAME (e.g. ``DIRTY``).
    """
    import warnings

    from astropy.wcs import FITSFixedWarning

    def flip(a):
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        return np.asarray(operator_to_fits_image(arr), np.float32)

    m = flip(mean)
    if m.ndim != 2:
        raise ValueError(f"{path}: mean must be (H, W), got shape {m.shape}")
    hdr = header if header is not None else fits.Header()
    wcs = None
    if "CTYPE1" in hdr:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(hdr, naxis=2)
    named = {} if samples is None else {"SAMPLES": flip(samples)}
    named.update({k: flip(v) for k, v in (extra or {}).items()})
    out = write_fits_image(path, m, wcs=wcs, header=hdr, std=None if std is None else flip(std), extra=named,
                           provenance=provenance, unit=str(hdr.get("BUNIT", "JY/PIXEL")))
    return Path(out)


class FITSImages(Dataset):
    """Patches of masked, noisy FITS images as inpainting measurements.

    Each item: ``"y"`` ``(1, p, p)`` masked patch divided by ``scale``; ``"operator"``
    ``PixelMask(mask, noise_sigma=σ/scale)`` (batch 1); ``"scale"``; ``"meta"`` with the
    file, the patch origin ``(row, col)`` and the patch's WCS (``wcs[r:r+p, c:c+p]``).
    No clean image exists. Patches with fewer than ``min_valid_fraction`` valid pixels are
    skipped.

    Args:
        paths: files, folders (``*.fits``, ``*.fit``, ``*.fts``) or globs.
        patch_size: ``p``; stride: step between patch origins (default ``p``).
        scale: ``"image"`` (default): one scale per file, the 99th percentile of ``|x|`` over its
            valid pixels, so all patches of an image share units and empty-sky patches keep their
            low level; ``"patch"``: :func:`~ambient_imaging.datasets.normalize.measurement_scale`
            of each patch; or a positive number used for every patch (``1.0`` = file units).
        read_kwargs: passed to :func:`read_fits_image` (e.g. ``mask="auto"``).
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        patch_size: int = 64,
        stride: int | None = None,
        min_valid_fraction: float = 0.5,
        scale: str | float = "image",
        read_kwargs: dict[str, Any] | None = None,
    ):
        if int(patch_size) < 1:
            raise ValueError(f"FITSImages: patch_size must be >= 1, got {patch_size}")
        if not 0.0 <= min_valid_fraction <= 1.0:
            raise ValueError(f"FITSImages: min_valid_fraction must be in [0, 1], got {min_valid_fraction}")
        self.patch_size = p = int(patch_size)
        self.stride = s = int(stride or p)
        if s < 1:
            raise ValueError(f"FITSImages: stride must be >= 1, got {stride}")
        if isinstance(scale, str):
            if scale not in ("image", "patch"):
                raise ValueError(f"FITSImages: scale must be 'image', 'patch' or a positive number, got {scale!r}")
        elif not (np.isfinite(float(scale)) and float(scale) > 0):
            raise ValueError(f"FITSImages: scale must be 'image', 'patch' or a positive number, got {scale!r}")
        self.scale = scale
        files = expand_paths(paths, suffixes=FITS_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"FITSImages: no FITS files in {paths}")
        self.images = [read_fits_image(f, **(read_kwargs or {})) for f in files]
        self.index: list[tuple[int, int, int]] = []
        for i, im in enumerate(self.images):
            h, w = im.data.shape
            if h < p or w < p:
                raise ValueError(f"{im.path}: image {h}x{w} is smaller than patch_size {p}")
            for r in range(0, h - p + 1, s):
                for c in range(0, w - p + 1, s):
                    if im.mask[r : r + p, c : c + p].mean() >= min_valid_fraction:
                        self.index.append((i, r, c))
        self.image_scales = [self._image_scale(im) for im in self.images]
        if not self.index:
            raise ValueError(f"FITSImages: no {p}x{p} patch has {min_valid_fraction:.0%} valid pixels in {paths}")

    def _image_scale(self, im: SkyImage) -> float:
        if not isinstance(self.scale, str):
            return float(self.scale)
        s = float(np.percentile(np.abs(im.data[im.mask]), 99))
        return s if np.isfinite(s) and s > 0 else 1.0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict[str, Any]:
        i, r, c = self.index[k]
        im, p = self.images[i], self.patch_size
        m = torch.from_numpy(im.mask[r : r + p, c : c + p].copy())
        y = torch.from_numpy(im.data[r : r + p, c : c + p].astype(np.float32))[None] * m
        scale = self.image_scales[i]
        if self.scale == "patch":
            from .normalize import measurement_scale

            scale = float(measurement_scale(y[None], PixelMask(m[None, None]))[0])
            if not (np.isfinite(scale) and scale > 0):
                scale = 1.0
        op = PixelMask(m[None, None], noise_sigma=float(im.noise_sigma) / scale)
        meta = {"file": im.path, "origin": (r, c), "wcs": im.wcs[r : r + p, c : c + p], "unit": im.unit}
        return {"y": y / scale, "operator": op, "scale": scale, "meta": meta}
