"""UVFITS (random-groups) visibilities: reader, writer, and simulated observations.

Conventions (AIPS Memo 117, "Going AIPS"; FITS standard §6 random groups):

* Random parameters ``UU``/``VV``/``WW`` (also ``UU---SIN``, ``UU-L``, ...; matched by prefix)
  are baseline coordinates in **seconds** (light travel time) of the baseline **ant1 − ant2**
  (the position of the first antenna of ``BASELINE`` minus that of the second; pyuvdata and
  ehtim read files so), and the visibility of the pair is ``V = Σ I exp(+2πi (u l + v m))``
  with ``l`` east — exactly the :class:`~ambient_imaging.operators.Interferometer`'s
  convention, so ``u`` and ``vis`` go to the operator unchanged. astropy applies ``PSCALn``/
  ``PZEROn``. ``u [wavelengths] = UU [s] · ν [Hz]``, with ν the frequency of each channel
  (``FREQ`` axis ``CRVAL + (i + 1 - CRPIX)·CDELT`` plus the IF offset of the ``AIPS FQ`` table).
* ``BASELINE = 256·a1 + a2`` (1-based antennas, ``+ 0.01·(subarray-1)``); when an antenna
  number exceeds 255 the MIRIAD/CASA convention ``2048·a1 + a2 + 65536`` is used. Files with
  ``ANTENNA1``/``ANTENNA2`` parameters are read directly.
* ``DATE`` parameters (one, or two summed: integer and fractional Julian day) give the time.
* The writer always adds an ``AIPS AN`` antenna table (station names and ITRF positions; names
  ``ANT01``… and zero positions are synthesised when the visibilities carry no layout), which
  ehtim and AIPS need to read the file.
* The regular axes are ``COMPLEX`` (re, im, weight), ``STOKES``, ``FREQ``, ``IF``, ``RA``, ``DEC``
  in any order. Stokes codes: 1..4 = I, Q, U, V; -1..-4 = RR, LL, RL, LR; -5..-8 = XX, YY, XY, YX.
* **Weights**: ``w = 1/σ²`` with σ the std of *each* of the real and imaginary parts (the AIPS /
  ehtim convention); ``Visibilities.sigma`` holds that per-component σ. The operator's noise
  model is ``E|ε|² = σ_op²``, so :meth:`Visibilities.to_operator` passes ``σ_op = √2·σ``.
  Records with ``w <= 0`` (flagged) or non-finite values are dropped.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.io import fits
from torch import Tensor

from ambient_imaging.io import atomic_path
from ambient_imaging.operators import Interferometer

__all__ = ["Visibilities", "read_uvfits", "write_uvfits", "simulate_observation", "STOKES_CODES"]

STOKES_CODES = {1: "I", 2: "Q", 3: "U", 4: "V", -1: "RR", -2: "LL", -3: "RL", -4: "LR",
                -5: "XX", -6: "YY", -7: "XY", -8: "YX"}  # fmt: skip
SPEED_OF_LIGHT = 299_792_458.0


@dataclass
class Visibilities:
    """Stokes-I visibilities of one observation (one row per uv point).

    Attributes:
        u, v, w: ``(M,)`` baseline coordinates in wavelengths, ant1 − ant2 (UVFITS convention).
        vis: ``(M,)`` complex visibilities (file units, usually Jy).
        sigma: ``(M,)`` std of the real and of the imaginary part (``weight = 1/σ²``).
        ant1, ant2: ``(M,)`` 1-based antenna numbers.
        time: ``(M,)`` Julian date.
        frequency: ``(M,)`` frequency of each uv point in Hz.
        ref_frequency: the observation's reference frequency (Hz).
        source: source name; ra_deg, dec_deg: phase centre.
        antennas: ``{"names": [...], "xyz": (N, 3) metres}`` from the ``AIPS AN`` table (or ``None``).
        path: the file read (``""`` for simulations).
    """

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    vis: np.ndarray
    sigma: np.ndarray
    ant1: np.ndarray
    ant2: np.ndarray
    time: np.ndarray
    frequency: np.ndarray
    ref_frequency: float
    source: str = ""
    ra_deg: float = 0.0
    dec_deg: float = 0.0
    antennas: dict[str, Any] | None = None
    path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.u.shape[0])

    @property
    def baseline(self) -> np.ndarray:
        """AIPS baseline codes ``256·a1 + a2`` (``2048·a1 + a2 + 65536`` beyond 255 antennas)."""
        return encode_baseline(self.ant1, self.ant2)

    @property
    def uv(self) -> np.ndarray:
        """``(M, 2)`` uv points in wavelengths."""
        return np.stack([self.u, self.v], axis=1)

    def to_operator(
        self,
        image_shape: tuple[int, int],
        pixel_scale: float | None = None,
        fov: float | None = None,
        add_conjugates: bool = False,
        **kwargs: Any,
    ) -> tuple[Tensor, Interferometer]:
        """Measurements ``y`` ``(1, M)`` complex and the matching :class:`Interferometer` (batch 1).

        Args:
            image_shape: ``(H, W)``.
            pixel_scale: pixel size in radians; or ``fov`` (radians, field of view along W).
            add_conjugates: also include ``(-u, -v)`` with ``conj(V)`` (redundant for a real sky).
            kwargs: passed to :class:`Interferometer`.

        The operator's image has ``+l`` (east) along ``+column`` and ``+m`` (north) along ``+row``
        (see :mod:`ambient_imaging.operators.interferometry`); write it with
        :func:`ambient_imaging.datasets.fits.write_sky_fits` (east left, ``CDELT1 < 0``).
        The operator carries the station pairs and time stamps (seconds since the first
        record), so closure quantities and self-calibration work on it
        (:mod:`ambient_imaging.interferometry`).
        """
        if (pixel_scale is None) == (fov is None):
            raise ValueError("Visibilities.to_operator: give exactly one of pixel_scale or fov (radians)")
        ps = float(pixel_scale) if pixel_scale is not None else float(fov) / int(image_shape[1])
        uv = torch.from_numpy(self.uv.astype(np.float64))
        y = torch.from_numpy(self.vis.astype(np.complex128))
        sig = torch.from_numpy(self.sigma.astype(np.float64)) * math.sqrt(2.0)  # E|ε|² = 2σ²
        stations = torch.from_numpy(np.stack([self.ant1, self.ant2], 1).astype(np.int64))
        t = np.asarray(self.time, np.float64)
        times = torch.from_numpy((t - (t.min() if t.size else 0.0)) * 86400.0)
        if add_conjugates:
            uv, y, sig = torch.cat([uv, -uv]), torch.cat([y, y.conj()]), torch.cat([sig, sig])
            stations, times = torch.cat([stations, stations.flip(1)]), torch.cat([times, times])
        if "stations" not in kwargs and not (stations[:, 0] == stations[:, 1]).any():
            kwargs["stations"], kwargs["times"] = stations, times
            kwargs.setdefault("station_names", self.station_names())
        op = Interferometer(uv, tuple(image_shape), ps, noise_sigma=sig[None], **kwargs)
        return y[None], op

    def with_fractional_noise(self, fraction: float) -> Visibilities:
        """The same data with ``fraction · |V|`` added in quadrature to every σ (ehtim's
        ``add_fractional_noise``): a budget for non-closing systematic errors (polarisation leakage,
        bandpass), which do not cancel in closure quantities. EHT M87 pipelines use 0.01–0.02."""
        f = float(fraction)
        if not (math.isfinite(f) and 0.0 <= f < 1.0):
            raise ValueError(f"fractional systematic noise must be in [0, 1), got {fraction}")
        return replace(self, sigma=np.sqrt(self.sigma**2 + (f * np.abs(self.vis)) ** 2)) if f > 0 else self

    def station_names(self) -> dict[int, str]:
        """``{antenna number: name}`` from the antenna table (``ANTnn`` where unknown)."""
        names: dict[int, str] = {}
        if self.antennas and self.antennas.get("names"):
            nums = self.antennas.get("numbers")
            nums = np.arange(1, len(self.antennas["names"]) + 1) if nums is None else nums
            names = {int(k): str(n) for k, n in zip(nums, self.antennas["names"], strict=False)}
        for a in np.unique(np.concatenate([self.ant1, self.ant2])) if len(self) else []:
            names.setdefault(int(a), f"ANT{int(a):02d}")
        return names


def encode_baseline(ant1: np.ndarray, ant2: np.ndarray) -> np.ndarray:
    """AIPS baseline code; the ``2048·a1 + a2 + 65536`` convention when any antenna > 255."""
    a1, a2 = np.asarray(ant1, np.int64), np.asarray(ant2, np.int64)
    if a1.size and max(a1.max(), a2.max()) > 255:
        return 2048 * a1 + a2 + 65536
    return 256 * a1 + a2


def decode_baseline(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_baseline` (the subarray fraction is ignored)."""
    bl = np.floor(np.asarray(code, np.float64) + 1e-6).astype(np.int64)
    big = bl > 65536
    a1 = np.where(big, (bl - 65536) // 2048, bl // 256)
    a2 = np.where(big, (bl - 65536) % 2048, bl % 256)
    return a1, a2


def _axis_values(hdr: fits.Header, k: int) -> np.ndarray:
    n = int(hdr[f"NAXIS{k}"])
    crval, cdelt, crpix = (float(hdr.get(f"{key}{k}", d)) for key, d in (("CRVAL", 0), ("CDELT", 1), ("CRPIX", 1)))
    return crval + (np.arange(n) + 1 - crpix) * cdelt


def _param_index(names: list[str], prefix: str) -> list[int]:
    return [i for i, n in enumerate(names) if n.upper() == prefix or n.upper().startswith(prefix + "-")]


def _open_uvfits(path: Path) -> fits.HDUList:
    """Open ``path`` as FITS and read every HDU's data now, so a truncated file fails with its name."""
    try:
        hdul = fits.open(path, memmap=False)
    except (OSError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a FITS file ({err})") from err
    try:
        for h in hdul:  # read the data now: a truncated file fails here, with its name
            _ = h.data
    except (OSError, TypeError, ValueError, IndexError) as err:
        hdul.close()
        raise ValueError(f"{path}: truncated or corrupt UVFITS file ({path.stat().st_size} bytes; {err})") from err
    return hdul


def _read_random_parameters(g: fits.GroupsHDU, path: Path) -> tuple[np.ndarray, ...]:
    """The random parameters ``(uu, vv, ww, time, ant1, ant2)`` of every record."""
    names = [str(n) for n in g.data.parnames]
    iu, iv, iw = (_param_index(names, p) for p in ("UU", "VV", "WW"))
    if not iu or not iv:
        raise ValueError(f"{path}: random parameters UU/VV missing (found {names})")
    uu = np.asarray(g.data.par(iu[0]), np.float64)
    vv = np.asarray(g.data.par(iv[0]), np.float64)
    ww = np.asarray(g.data.par(iw[0]), np.float64) if iw else np.zeros_like(uu)
    idate = [i for i, n in enumerate(names) if n.upper() == "DATE"]
    time = sum((np.asarray(g.data.par(i), np.float64) for i in idate), np.zeros_like(uu))
    ibl = [i for i, n in enumerate(names) if n.upper() == "BASELINE"]
    if ibl:
        a1, a2 = decode_baseline(g.data.par(ibl[0]))
    elif "ANTENNA1" in [n.upper() for n in names] and "ANTENNA2" in [n.upper() for n in names]:
        a1 = np.asarray(g.data.par("ANTENNA1"), np.int64)
        a2 = np.asarray(g.data.par("ANTENNA2"), np.int64)
    else:
        a1 = a2 = np.zeros(len(uu), np.int64)
    return uu, vv, ww, time, a1, a2


def _regular_axes(g: fits.GroupsHDU, path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """The data as ``(N, IF, chan, stokes, complex)`` and the map of axis name to FITS axis number."""
    hdr = g.header
    raw = np.asarray(g.data.data, np.float64)
    naxis = int(hdr["NAXIS"])
    ctypes = {str(hdr.get(f"CTYPE{k}", "")).strip().upper(): k for k in range(2, naxis + 1)}
    if "COMPLEX" not in ctypes:
        raise ValueError(f"{path}: no COMPLEX axis in the random-groups data")
    order = ["IF", "FREQ", "STOKES", "COMPLEX"]
    perm, present = [0], []
    for name in order:
        if name in ctypes:
            perm.append(1 + naxis - ctypes[name])
            present.append(name)
    rest = [ax for ax in range(1, raw.ndim) if ax not in perm]
    if any(raw.shape[ax] != 1 for ax in rest):
        raise ValueError(f"{path}: unsupported axis layout {list(ctypes)} with shape {raw.shape}")
    arr = np.transpose(raw, perm + rest).reshape([raw.shape[ax] for ax in perm])
    for i, name in enumerate(order):  # insert missing axes as length 1
        if name not in present:
            arr = np.expand_dims(arr, 1 + i)
    n_cx = arr.shape[4]
    if n_cx < 2:
        raise ValueError(f"{path}: COMPLEX axis has length {n_cx}; need (re, im[, weight])")
    return arr, ctypes


def _frequencies(
    hdul: fits.HDUList, hdr: fits.Header, ctypes: dict[str, int], n_if: int, path: Path
) -> tuple[np.ndarray, float]:
    """The ``(IF, chan)`` frequencies in Hz (FREQ axis plus ``AIPS FQ`` IF offsets) and the reference frequency."""
    chan = _axis_values(hdr, ctypes["FREQ"]) if "FREQ" in ctypes else np.zeros(1)
    ref_freq = float(hdr.get(f"CRVAL{ctypes['FREQ']}", 0.0)) if "FREQ" in ctypes else 0.0
    if_off = np.zeros(n_if)
    if "AIPS FQ" in hdul:
        fq = hdul["AIPS FQ"].data
        if fq is not None and "IF FREQ" in fq.columns.names:
            if_off = np.asarray(fq["IF FREQ"][0], np.float64).reshape(-1)[:n_if]
            if if_off.size < n_if:
                if_off = np.zeros(n_if)
    freq = if_off[:, None] + chan[None, :]  # (IF, chan), Hz
    if not (np.isfinite(freq).all() and (freq > 0).all()):
        raise ValueError(f"{path}: cannot determine the observing frequency (FREQ axis / AIPS FQ)")
    return freq, ref_freq


def _antenna_info(hdul: fits.HDUList) -> dict[str, Any] | None:
    """Station names, positions and numbers from the ``AIPS AN`` table, or ``None`` without one."""
    antennas = None
    if "AIPS AN" in hdul:
        an = hdul["AIPS AN"].data
        if an is not None and "ANNAME" in an.columns.names:
            nums = np.asarray(an["NOSTA"]) if "NOSTA" in an.columns.names else np.arange(1, len(an) + 1)
            antennas = {
                "names": [str(s).strip() for s in an["ANNAME"]],
                "xyz": np.asarray(an["STABXYZ"], np.float64) if "STABXYZ" in an.columns.names else None,
                "numbers": np.asarray(nums, np.int64),
            }
    return antennas


def _stokes_i(vis_all: np.ndarray, wt: np.ndarray, codes: list[int], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Stokes-I visibilities and weights from I, RR+LL, XX+YY, or (with a warning) RR or LL alone."""

    def pick(name: str) -> int | None:
        return next((i for i, c in enumerate(codes) if STOKES_CODES.get(c) == name), None)

    if pick("I") is not None:
        s = pick("I")
        v_i, w_i = vis_all[..., s], wt[..., s]
    elif (pick("RR") is not None and pick("LL") is not None) or (pick("XX") is not None and pick("YY") is not None):
        a, b = (pick("RR"), pick("LL")) if pick("RR") is not None else (pick("XX"), pick("YY"))
        both = (wt[..., a] > 0) & (wt[..., b] > 0)
        v_i = np.where(both, 0.5 * (vis_all[..., a] + vis_all[..., b]), 0.0)
        # σ_I² = (σ_a² + σ_b²)/4  →  w_I = 4 / (1/w_a + 1/w_b)
        with np.errstate(divide="ignore"):
            w_i = np.where(both, 4.0 / (1.0 / np.where(both, wt[..., a], 1) + 1.0 / np.where(both, wt[..., b], 1)), 0)
    elif pick("RR") is not None or pick("LL") is not None:
        s = pick("RR") if pick("RR") is not None else pick("LL")
        # stacklevel 3: the warning points at read_uvfits' caller, as before this helper existed
        warnings.warn(f"{path}: only {STOKES_CODES[codes[s]]} present; using it as Stokes I", stacklevel=3)
        v_i, w_i = vis_all[..., s], wt[..., s]
    else:
        have = [STOKES_CODES.get(c, str(c)) for c in codes]
        raise ValueError(f"{path}: unsupported Stokes layout {have}; need I, RR+LL, XX+YY, RR or LL")
    return v_i, w_i


def read_uvfits(
    path: str | os.PathLike,
    stokes: str = "I",
    min_weight: float = 0.0,
    average_channels: bool = True,
) -> Visibilities:
    """Read Stokes-I visibilities from a random-groups UVFITS file.

    Stokes I is taken from an ``I`` product if present, else ``(RR+LL)/2`` or ``(XX+YY)/2``
    (both hands must be valid; ``σ_I = ½√(σ_a² + σ_b²)``); a file with only RR or only LL is
    used as is, with a warning.

    Args:
        stokes: only ``"I"`` is supported.
        min_weight: records with weight ``<= min_weight`` are dropped (flags have ``w <= 0``).
        average_channels: ``True`` (default): the weighted mean over all IFs and channels
            (``V = Σ w V / Σ w``, ``w = 1/σ²``, ``σ = 1/√Σw``), one uv point per record, with
            ``u = UU · ν̄`` for ``ν̄`` the mean frequency of the channels holding any valid data
            (one frequency for the file; exact for single-channel data); ``False``: every valid
            (record, IF, channel) is its own uv point, ``u = UU · ν_channel``.

    Raises:
        ValueError: not FITS / not random groups, missing UU/VV, unsupported Stokes layout,
            no valid visibilities.
    """
    path = Path(path)
    if stokes.upper() != "I":
        raise ValueError(f"read_uvfits: only stokes='I' is supported, got {stokes!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    hdul = _open_uvfits(path)
    with hdul:
        g = hdul[0]
        if not isinstance(g, fits.GroupsHDU):
            raise ValueError(f"{path}: not a random-groups UVFITS file (primary HDU is {type(g).__name__})")
        hdr = g.header
        uu, vv, ww, time, a1, a2 = _read_random_parameters(g, path)
        arr, ctypes = _regular_axes(g, path)
        n_if, n_ch, n_st, n_cx = arr.shape[1:]
        codes = [int(round(c)) for c in _axis_values(hdr, ctypes["STOKES"])] if "STOKES" in ctypes else [1]
        freq, ref_freq = _frequencies(hdul, hdr, ctypes, n_if, path)
        antennas = _antenna_info(hdul)
        source = str(hdr.get("OBJECT", "")).strip()
        ra = float(hdr[f"CRVAL{ctypes['RA']}"]) if "RA" in ctypes else float(hdr.get("OBSRA", 0.0))
        dec = float(hdr[f"CRVAL{ctypes['DEC']}"]) if "DEC" in ctypes else float(hdr.get("OBSDEC", 0.0))

    re, im = arr[..., 0], arr[..., 1]
    wt = arr[..., 2] if n_cx >= 3 else np.ones_like(re)
    ok = (wt > min_weight) & np.isfinite(re) & np.isfinite(im) & np.isfinite(wt)
    wt = np.where(ok, wt, 0.0)
    vis_all = np.where(ok, re, 0.0) + 1j * np.where(ok, im, 0.0)  # (N, IF, chan, stokes)
    v_i, w_i = _stokes_i(vis_all, wt, codes, path)
    n_rec = v_i.shape[0]
    if average_channels:
        wsum = w_i.sum(axis=(1, 2))
        keep = wsum > 0
        v = (w_i * v_i).sum(axis=(1, 2))[keep] / wsum[keep]
        sigma = 1.0 / np.sqrt(wsum[keep])
        valid_f = (w_i > 0).any(axis=0)
        f_mean = float(freq[valid_f].mean()) if valid_f.any() else float(freq.mean())
        f = np.full(int(keep.sum()), f_mean)
        u, vc, wc = uu[keep] * f_mean, vv[keep] * f_mean, ww[keep] * f_mean
        rec = np.nonzero(keep)[0]
    else:
        rec, fi, ci = np.nonzero(w_i > 0)
        f = freq[fi, ci]
        v = v_i[rec, fi, ci]
        sigma = 1.0 / np.sqrt(w_i[rec, fi, ci])
        u, vc, wc = uu[rec] * f, vv[rec] * f, ww[rec] * f
    if len(rec) == 0:
        raise ValueError(
            f"{path}: no valid visibilities: all {n_rec} records flagged (weight <= {min_weight}) or non-finite"
        )
    return Visibilities(
        u=u, v=vc, w=wc, vis=v.astype(np.complex128), sigma=sigma, ant1=a1[rec], ant2=a2[rec],
        time=time[rec], frequency=f, ref_frequency=ref_freq or float(freq.mean()), source=source,
        ra_deg=ra, dec_deg=dec, antennas=antennas, path=str(path),
    )  # fmt: skip


def write_uvfits(
    path: str | os.PathLike,
    vis: Visibilities,
    telescope: str = "SIMULATED",
    history: tuple[str, ...] = (),
) -> Path:
    """Write Stokes-I visibilities as a random-groups UVFITS file (atomically).

    Layout: parameters ``UU``, ``VV``, ``WW`` (seconds), ``BASELINE``, ``DATE`` (integer JD),
    ``DATE`` (fraction); axes ``COMPLEX`` (re, im, weight = 1/σ²), ``STOKES`` (I), ``FREQ`` (one
    channel at ``ref_frequency``), ``IF`` (1), ``RA``, ``DEC``; plus an ``AIPS AN`` table (from
    ``vis.antennas``, or synthesised: ``ANTnn`` names at zero positions for every antenna number
    used). ``UU, VV, WW = (u, v, w) / ν`` are ant1 − ant2 in seconds. Every point must be at
    ``ref_frequency`` (one channel).
    """
    path = Path(path)
    n = len(vis)
    if n == 0:
        raise ValueError(f"{path}: no visibilities to write")
    f0 = float(vis.ref_frequency)
    if not np.allclose(vis.frequency, f0, rtol=1e-9):
        raise ValueError(f"{path}: write_uvfits writes one channel; all frequencies must equal ref_frequency")
    if np.any(vis.sigma <= 0) or not np.all(np.isfinite(vis.sigma)):
        raise ValueError(f"{path}: sigma must be finite and > 0 (weights 1/sigma^2)")
    data = np.zeros((n, 1, 1, 1, 1, 1, 3), np.float32)  # (N, DEC, RA, IF, FREQ, STOKES, COMPLEX)
    data[..., 0] = vis.vis.real.reshape(n, 1, 1, 1, 1, 1)
    data[..., 1] = vis.vis.imag.reshape(n, 1, 1, 1, 1, 1)
    data[..., 2] = (1.0 / vis.sigma**2).reshape(n, 1, 1, 1, 1, 1)
    jd = np.asarray(vis.time, np.float64)
    jd_int = np.floor(jd)
    pars = [vis.u / f0, vis.v / f0, vis.w / f0, encode_baseline(vis.ant1, vis.ant2).astype(np.float64),
            jd_int, jd - jd_int]  # fmt: skip
    gd = fits.GroupData(data, parnames=["UU", "VV", "WW", "BASELINE", "DATE", "DATE"],
                        pardata=[np.asarray(p, np.float64) for p in pars], bitpix=-32)  # fmt: skip
    hdu = fits.GroupsHDU(gd)
    h = hdu.header
    for k, (ctype, crval, cdelt) in enumerate(
        [("COMPLEX", 1.0, 1.0), ("STOKES", 1.0, 1.0), ("FREQ", f0, 1.0), ("IF", 1.0, 1.0),
         ("RA", vis.ra_deg, 1.0), ("DEC", vis.dec_deg, 1.0)], start=2):  # fmt: skip
        h[f"CTYPE{k}"], h[f"CRVAL{k}"], h[f"CDELT{k}"], h[f"CRPIX{k}"], h[f"CROTA{k}"] = ctype, crval, cdelt, 1.0, 0.0
    h["OBJECT"] = vis.source or "SIM"
    h["TELESCOP"] = telescope
    h["INSTRUME"] = telescope
    h["BUNIT"] = "JY"
    h["EPOCH"] = 2000.0
    h["OBSRA"], h["OBSDEC"] = vis.ra_deg, vis.dec_deg
    h["DATE-OBS"] = _jd_to_date(float(jd.min()))
    for line in history:
        h.add_history(str(line))
    antennas = vis.antennas
    if antennas is None or not antennas.get("names"):
        names = vis.station_names()
        antennas = {"names": list(names.values()), "numbers": np.asarray(list(names.keys()), np.int64),
                    "xyz": None}
    used = set(np.unique(np.concatenate([vis.ant1, vis.ant2])).tolist())
    nums = antennas.get("numbers")
    known = set(range(1, len(antennas["names"]) + 1)) if nums is None else {int(k) for k in nums}
    if not used <= known:
        raise ValueError(f"{path}: antenna numbers {sorted(used - known)} are not in the antenna table")
    hdus = [hdu, _antenna_table(antennas, f0, telescope)]
    with atomic_path(path, suffix=".uvfits") as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def _jd_to_date(jd: float) -> str:
    from astropy.time import Time

    return Time(jd, format="jd").strftime("%Y-%m-%d")


def _antenna_table(antennas: dict[str, Any], f0: float, telescope: str) -> fits.BinTableHDU:
    names = [str(s) for s in antennas["names"]]
    n = len(names)
    xyz = antennas.get("xyz")
    xyz = np.zeros((n, 3)) if xyz is None else np.asarray(xyz, np.float64)
    nums = antennas.get("numbers")
    nums = np.asarray(np.arange(1, n + 1) if nums is None else nums, np.int32)
    cols = [
        fits.Column("ANNAME", "8A", array=np.array(names)),
        fits.Column("STABXYZ", "3D", unit="METERS", array=xyz),
        fits.Column("ORBPARM", "0D", array=np.zeros((n, 0))),
        fits.Column("NOSTA", "1J", array=nums),
        fits.Column("MNTSTA", "1J", array=np.zeros(n, np.int32)),
        fits.Column("STAXOF", "1E", unit="METERS", array=np.zeros(n, np.float32)),
        fits.Column("POLTYA", "1A", array=np.array(["R"] * n)),
        fits.Column("POLAA", "1E", unit="DEGREES", array=np.zeros(n, np.float32)),
        fits.Column("POLCALA", "2E", array=np.zeros((n, 2), np.float32)),
        fits.Column("POLTYB", "1A", array=np.array(["L"] * n)),
        fits.Column("POLAB", "1E", unit="DEGREES", array=np.zeros(n, np.float32)),
        fits.Column("POLCALB", "2E", array=np.zeros((n, 2), np.float32)),
    ]
    t = fits.BinTableHDU.from_columns(cols, name="AIPS AN")
    t.header["EXTVER"] = 1
    t.header["ARRAYX"], t.header["ARRAYY"], t.header["ARRAYZ"] = 0.0, 0.0, 0.0
    t.header["FREQ"] = f0
    t.header["ARRNAM"] = telescope
    t.header["FRAME"] = "ITRF"
    t.header["NOPCAL"] = 2
    t.header["POLTYPE"] = "APPROX"
    return t


def simulate_observation(
    image: Tensor | np.ndarray,
    pixel_scale: float,
    coverage: Any,
    noise_sigma: float | np.ndarray,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    source: str = "SIM",
    ra_deg: float = 0.0,
    start_jd: float = 2460000.5,
    layout: Any = None,
) -> Visibilities:
    """Observe a sky image ``(H, W)`` on a uv coverage with thermal noise.

    Args:
        image: sky brightness per pixel (Jy/pixel).
        pixel_scale: pixel size in radians.
        coverage: a :class:`~ambient_imaging.operators.UVCoverage` (``earth_rotation_uv``).
        noise_sigma: std of the real and of the imaginary part of each visibility (Jy): a number
            or an ``(M,)`` array (e.g. from station SEFDs,
            :func:`ambient_imaging.datasets.simulate_vlbi.thermal_sigma`).
        layout: the :class:`~ambient_imaging.operators.ArrayLayout` (writes antenna names/positions).
        generator / seed: noise randomness (``seed`` makes a fresh generator; give at most one).
    Returns:
        :class:`Visibilities` with ``V = F x + ε``, ``Re ε, Im ε ~ N(0, σ²)``.
    """
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image).to(torch.float64)
    if x.ndim != 2:
        raise ValueError(f"simulate_observation: image must be (H, W), got shape {tuple(x.shape)}")
    sig_np = np.asarray(noise_sigma, np.float64)
    if sig_np.ndim > 1 or not (np.isfinite(sig_np).all() and (sig_np > 0).all()):
        raise ValueError(f"simulate_observation: noise_sigma must be > 0 (weights are 1/σ²), got {noise_sigma}")
    if seed is not None:
        if generator is not None:
            raise ValueError("simulate_observation: give generator or seed, not both")
        generator = torch.Generator().manual_seed(int(seed))
    uv = coverage.uv.to(torch.float64)
    op = Interferometer(uv, tuple(x.shape), float(pixel_scale))
    clean = op.forward(x[None, None])[0]
    m = uv.shape[0]
    if sig_np.ndim == 1 and sig_np.shape[0] != m:
        raise ValueError(f"simulate_observation: noise_sigma has {sig_np.shape[0]} entries for {m} visibilities")
    sig_t = torch.from_numpy(np.broadcast_to(sig_np, (m,)).copy())
    noise = torch.randn(m, 2, generator=generator, dtype=torch.float64) * sig_t[:, None]
    y = (clean + torch.complex(noise[:, 0], noise[:, 1])).numpy()
    f0 = float(coverage.frequency_hz)
    pairs = coverage.pairs.numpy().astype(np.int64)
    hours = coverage.hour_angle_h.numpy().astype(np.float64)
    antennas = None
    if layout is not None:
        antennas = {"names": list(layout.stations), "xyz": np.asarray(layout.xyz),
                    "numbers": np.arange(1, len(layout.stations) + 1)}
    return Visibilities(
        u=uv[:, 0].numpy().copy(), v=uv[:, 1].numpy().copy(), w=coverage.w.numpy().astype(np.float64),
        vis=y.astype(np.complex128), sigma=sig_t.numpy().copy(), ant1=pairs[:, 0] + 1,
        ant2=pairs[:, 1] + 1, time=start_jd + (hours - hours.min()) / 24.0 * 0.9972695663,
        frequency=np.full(m, f0), ref_frequency=f0, source=source, ra_deg=ra_deg,
        dec_deg=float(coverage.declination_deg), antennas=antennas,
    )  # fmt: skip


def with_points(vis: Visibilities, keep: np.ndarray) -> Visibilities:
    """A copy keeping the uv points where ``keep`` is True."""
    fields = ("u", "v", "w", "vis", "sigma", "ant1", "ant2", "time", "frequency")
    return replace(vis, **{k: getattr(vis, k)[keep] for k in fields})
