"""Real array layouts and Earth-rotation synthesis of uv-coverages.

Layouts are plain-data files under the repository's ``operators/arrays/``
folder (see ``operators/README.md``); :func:`load_array` reads them into an
:class:`ArrayLayout`. :func:`earth_rotation_uv` turns a layout, a source
declination and an hour-angle range into the uv points (in wavelengths) that
the array samples, with the standard rotation of Thompson, Moran & Swenson,
*Interferometry and Synthesis in Radio Astronomy* (3rd ed.), eq. 4.1::

    u =  sin H · Bx + cos H · By
    v = -sin δ cos H · Bx + sin δ sin H · By + cos δ · Bz
    w =  cos δ cos H · Bx - cos δ sin H · By + sin δ · Bz

where ``(Bx, By, Bz)`` is the baseline in the equatorial frame (X towards
``H = 0, δ = 0`` — the Greenwich meridian for ECEF coordinates —, Y towards
``H = -6 h``, Z towards the celestial pole) and ``H`` is the Greenwich hour
angle of the source. The ``hour_angle_range_h`` argument is the hour angle at
the array's mean longitude (the source transits the array centre at 0 h), so
the track does not depend on the source's right ascension.

**Sign convention.** The baseline of the station pair ``(i, j)`` (``i < j``,
``ant1 = i + 1``, ``ant2 = j + 1`` in UVFITS numbering) is ``x_i − x_j``
(ant1 − ant2), as in UVFITS files, pyuvdata and ehtim; with the operator's
kernel ``exp(+2πi (u l + v m))`` (see :mod:`.interferometry`) a source east of
the phase centre (``l > 0``) is imaged east.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..resources import instrument_path
from .interferometry import Interferometer

__all__ = ["ArrayLayout", "UVCoverage", "load_array", "list_arrays", "read_array_file", "earth_rotation_uv"]

SPEED_OF_LIGHT = 299_792_458.0  # m/s
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563


def geodetic_from_ecef(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic latitude, longitude (degrees) and height (m) of ECEF points ``(N, 3)``."""
    xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    e2 = _WGS84_F * (2 - _WGS84_F)
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1 - e2))
    for _ in range(8):  # fixed-point iteration, converges to < 1e-12 rad
        n = _WGS84_A / np.sqrt(1 - e2 * np.sin(lat) ** 2)
        h = np.where(np.cos(lat) > 1e-12, p / np.maximum(np.cos(lat), 1e-300) - n, np.abs(z) - n * (1 - e2))
        lat = np.arctan2(z, p * (1 - e2 * n / (n + h)))
    return np.degrees(lat), np.degrees(lon), h


def ecef_from_enu(enu: np.ndarray, lat_deg: float, lon_deg: float, height_m: float = 0.0) -> np.ndarray:
    """ECEF positions of local East-North-Up offsets ``(N, 3)`` around a geodetic point."""
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    e2 = _WGS84_F * (2 - _WGS84_F)
    n = _WGS84_A / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    ref = np.array(
        [
            (n + height_m) * math.cos(lat) * math.cos(lon),
            (n + height_m) * math.cos(lat) * math.sin(lon),
            (n * (1 - e2) + height_m) * math.sin(lat),
        ]
    )
    rot = np.array(
        [
            [-math.sin(lon), -math.sin(lat) * math.cos(lon), math.cos(lat) * math.cos(lon)],
            [math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat) * math.sin(lon)],
            [0.0, math.cos(lat), math.sin(lat)],
        ]
    )
    return ref[None, :] + np.asarray(enu, dtype=np.float64) @ rot.T


@dataclass(frozen=True)
class ArrayLayout:
    """An interferometer: station names and geocentric positions.

    Attributes:
        name: array name (the file stem, e.g. ``"eht2017"``).
        stations: station names, ``(N,)``.
        xyz: ECEF/ITRF positions in metres, ``(N, 3)`` float64 numpy array.
        diameter_m: dish diameters in metres (NaN where unknown), ``(N,)``.
        sefd_jy: system equivalent flux densities in Jy (NaN where unknown), ``(N,)``.
        source: where the numbers come from (the file's header comments).
    """

    name: str
    stations: tuple[str, ...]
    xyz: np.ndarray
    diameter_m: np.ndarray
    sefd_jy: np.ndarray
    source: str = ""

    def __post_init__(self):
        xyz = np.asarray(self.xyz, dtype=np.float64)
        n = len(self.stations)
        if xyz.shape != (n, 3):
            raise ValueError(f"ArrayLayout {self.name}: xyz must have shape ({n}, 3), got {xyz.shape}")
        if not np.isfinite(xyz).all():
            raise ValueError(f"ArrayLayout {self.name}: station positions must be finite")
        if n < 2:
            raise ValueError(f"ArrayLayout {self.name}: need at least 2 stations, got {n}")
        if len(set(self.stations)) != n:
            raise ValueError(f"ArrayLayout {self.name}: station names must be unique")
        object.__setattr__(self, "xyz", xyz)
        for attr in ("diameter_m", "sefd_jy"):
            val = np.asarray(getattr(self, attr), dtype=np.float64)
            if val.shape != (n,):
                raise ValueError(f"ArrayLayout {self.name}: {attr} must have shape ({n},), got {val.shape}")
            object.__setattr__(self, attr, val)

    @property
    def n_stations(self) -> int:
        return len(self.stations)

    @property
    def latitude_deg(self) -> np.ndarray:
        """Geodetic (WGS84) latitude of each station, degrees."""
        return geodetic_from_ecef(self.xyz)[0]

    @property
    def longitude_deg(self) -> np.ndarray:
        """East longitude of each station, degrees."""
        return geodetic_from_ecef(self.xyz)[1]

    @property
    def centre_longitude_deg(self) -> float:
        """Longitude of the mean station position (the reference of the hour angle)."""
        return float(geodetic_from_ecef(self.xyz.mean(axis=0, keepdims=True))[1][0])

    def baselines(self) -> tuple[np.ndarray, np.ndarray]:
        """Station pairs ``(K, 2)`` with ``i < j`` and baseline vectors ``x_i - x_j`` (ant1 − ant2, the
        UVFITS convention) ``(K, 3)`` in metres."""
        i, j = np.triu_indices(self.n_stations, k=1)
        return np.stack([i, j], axis=1), self.xyz[i] - self.xyz[j]

    @property
    def max_baseline_m(self) -> float:
        return float(np.linalg.norm(self.baselines()[1], axis=1).max())

    def __repr__(self) -> str:
        km = self.max_baseline_m / 1e3
        return f"ArrayLayout({self.name!r}, {self.n_stations} stations, max baseline {km:.1f} km)"


def _parse_float(text: str, path: Path, lineno: int, column: str) -> float:
    text = text.strip()
    if text == "" or text == "-":
        return math.nan
    try:
        return float(text)
    except ValueError as err:
        raise ValueError(f"{path}:{lineno}: column {column!r} must be a number, got {text!r}") from err


def read_array_file(path: str | Path, name: str | None = None) -> ArrayLayout:
    """Read an array file (format: ``operators/README.md``) into an :class:`ArrayLayout`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file not found: {path}")
    meta: dict[str, str] = {}
    comments: list[str] = []
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            comments.append(body)
            key, sep, val = body.partition(":")
            if sep and key.strip().replace("_", "").isalnum() and " " not in key.strip():
                meta.setdefault(key.strip().lower(), val.strip())
            continue
        cells = [c.strip() for c in line.split(",")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        rows.append((lineno, cells))
    if header is None or not rows:
        raise ValueError(f"{path}: no column header or no station rows")
    frame = meta.get("frame", "").split()[0].upper() if meta.get("frame") else ""
    if frame not in ("ECEF", "ENU"):
        raise ValueError(f"{path}: need a '# frame: ECEF' or '# frame: ENU' header line, got {meta.get('frame')!r}")
    cols = ("x_m", "y_m", "z_m") if frame == "ECEF" else ("e_m", "n_m", "u_m")
    missing = [c for c in ("station", *cols) if c not in header]
    if missing:
        raise ValueError(f"{path}: column header lacks {missing} (have {header})")
    idx = {c: header.index(c) for c in header}
    names, pos, diam, sefd = [], [], [], []
    for lineno, cells in rows:
        if len(cells) < len(header):
            cells = cells + [""] * (len(header) - len(cells))
        names.append(cells[idx["station"]])
        pos.append([_parse_float(cells[idx[c]], path, lineno, c) for c in cols])
        opt = {
            c: _parse_float(cells[idx[c]], path, lineno, c) if c in idx else math.nan
            for c in ("diameter_m", "sefd_jy")
        }
        diam.append(opt["diameter_m"])
        sefd.append(opt["sefd_jy"])
    xyz = np.asarray(pos, dtype=np.float64)
    if not np.isfinite(xyz).all():
        raise ValueError(f"{path}: every station needs all three coordinates")
    if frame == "ENU":
        try:
            lat = float(meta["latitude_deg"])
            lon = float(meta["longitude_deg"])
            height = float(meta.get("height_m", 0.0))
        except (KeyError, ValueError) as err:
            raise ValueError(f"{path}: frame ENU needs '# latitude_deg:' and '# longitude_deg:' header lines") from err
        xyz = ecef_from_enu(xyz, lat, lon, height)
    source = "\n".join(comments)
    try:
        return ArrayLayout(name or path.stem, tuple(names), xyz, np.asarray(diam), np.asarray(sefd), source)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def list_arrays() -> list[str]:
    """Names of the shipped array layouts (``operators/arrays/*.csv``)."""
    return sorted(p.stem for p in instrument_path("arrays").glob("*.csv"))


def load_array(name: str) -> ArrayLayout:
    """A shipped array layout by name: ``"eht2017"``, ``"vlba"``, ``"vla_a"``, ``"vla_d"`` (see :func:`list_arrays`)."""
    key = str(name).lower().replace("-", "_").replace(".", "_")
    names = list_arrays()
    if key not in names:
        raise ValueError(f"unknown array {name!r}; available: {', '.join(names)}")
    return read_array_file(instrument_path("arrays", f"{key}.csv"), key)


@dataclass
class UVCoverage:
    """The uv points an array samples along a track.

    Attributes:
        uv: ``(M, 2)`` float64 tensor, ``(u, v)`` in wavelengths.
        w: ``(M,)`` w coordinate in wavelengths.
        pairs: ``(M, 2)`` long station indices ``(i, j)`` (0-based); the baseline is ``x_i - x_j``
            (ant1 − ant2, the UVFITS convention; conjugate points, if included, have the pair swapped).
        hour_angle_h: ``(M,)`` hour angle (at the array centre) of each sample.
        time_index: ``(M,)`` index of the time sample.
        frequency_hz, declination_deg: the observation.
        stations: station names of the layout.
        conjugate: ``(M,)`` bool, True for the added ``(-u, -v)`` points.
    """

    uv: Tensor
    w: Tensor
    pairs: Tensor
    hour_angle_h: Tensor
    time_index: Tensor
    frequency_hz: float
    declination_deg: float
    stations: tuple[str, ...] = ()
    conjugate: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))

    @property
    def n_vis(self) -> int:
        return int(self.uv.shape[0])

    @property
    def max_uv(self) -> float:
        """Largest ``|u|`` or ``|v|`` in wavelengths (the Nyquist pixel is ``1/(2·max_uv)``)."""
        return float(self.uv.abs().max()) if self.n_vis else 0.0

    def nyquist_pixel_scale(self) -> float:
        """Largest pixel size (radians) whose grid contains every uv point: ``1/(2·max|u|,|v|)``."""
        if self.n_vis == 0:
            raise ValueError("UVCoverage: empty coverage (source never above the elevation limit?)")
        return 0.5 / self.max_uv

    def interferometer(
        self, image_shape: tuple[int, int], pixel_scale: float | None = None, **kwargs
    ) -> Interferometer:
        """An :class:`Interferometer` for this coverage (``pixel_scale`` defaults to
        :meth:`nyquist_pixel_scale`; other keyword arguments are passed on)."""
        ps = self.nyquist_pixel_scale() if pixel_scale is None else pixel_scale
        if "stations" not in kwargs and self.pairs.numel():
            kwargs["stations"] = self.pairs + 1  # 1-based, as in UVFITS
            kwargs["times"] = self.hour_angle_h.to(torch.float64) * 3600.0
            kwargs.setdefault("station_names", {i + 1: n for i, n in enumerate(self.stations)})
        return Interferometer(self.uv, image_shape, ps, **kwargs)


def earth_rotation_uv(
    layout: ArrayLayout,
    declination_deg: float,
    hour_angle_range_h: tuple[float, float] = (-6.0, 6.0),
    n_times: int = 60,
    frequency_hz: float = 230e9,
    elevation_limit_deg: float = 10.0,
    include_conjugate: bool = False,
) -> UVCoverage:
    """Earth-rotation synthesis: the uv track of every baseline of ``layout``.

    Args:
        layout: the array (:func:`load_array`).
        declination_deg: source declination δ in degrees.
        hour_angle_range_h: (start, stop) hour angle at the array's mean longitude, hours.
        n_times: number of equally spaced time samples (inclusive of both ends).
        frequency_hz: observing frequency (wavelength ``λ = c/f``).
        elevation_limit_deg: a baseline is sampled only when the source is at
            least this high at both of its stations.
        include_conjugate: also return ``(-u, -v)`` for every sample (its
            visibility is the complex conjugate for a real sky).
    Returns:
        :class:`UVCoverage` ordered by time, then baseline.
    """
    if not isinstance(layout, ArrayLayout):
        raise TypeError(
            f"earth_rotation_uv: layout must be an ArrayLayout (see load_array), got {type(layout).__name__}"
        )
    dec = float(declination_deg)
    if not -90.0 <= dec <= 90.0:
        raise ValueError(f"earth_rotation_uv: declination_deg must be in [-90, 90], got {declination_deg}")
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise ValueError(f"earth_rotation_uv: frequency_hz must be positive, got {frequency_hz}")
    if int(n_times) < 1:
        raise ValueError(f"earth_rotation_uv: n_times must be >= 1, got {n_times}")
    h0, h1 = (float(t) for t in hour_angle_range_h)
    if not (math.isfinite(h0) and math.isfinite(h1) and h1 >= h0):
        raise ValueError(
            f"earth_rotation_uv: hour_angle_range_h must be (start, stop) with stop >= start, got {hour_angle_range_h}"
        )
    lam = SPEED_OF_LIGHT / float(frequency_hz)
    ha_h = np.linspace(h0, h1, int(n_times))
    gha = np.radians(15.0 * ha_h - layout.centre_longitude_deg)  # Greenwich hour angle (rad), (T,)
    d = math.radians(dec)
    pairs, b = layout.baselines()  # (K, 2), (K, 3) metres, equatorial (ECEF) frame
    bx, by, bz = (b[:, k][None, :] / lam for k in range(3))
    sh, ch = np.sin(gha)[:, None], np.cos(gha)[:, None]
    u = sh * bx + ch * by  # TMS eq. 4.1
    v = -math.sin(d) * ch * bx + math.sin(d) * sh * by + math.cos(d) * bz
    w = math.cos(d) * ch * bx - math.cos(d) * sh * by + math.sin(d) * bz
    # elevation of the source at each station: sin e = sin φ sin δ + cos φ cos δ cos H_local
    lat, lon, _ = geodetic_from_ecef(layout.xyz)
    h_local = gha[:, None] + np.radians(lon)[None, :]
    phi = np.radians(lat)[None, :]
    sin_el = np.sin(phi) * math.sin(d) + np.cos(phi) * math.cos(d) * np.cos(h_local)
    elev = np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))
    up = elev >= float(elevation_limit_deg)  # (T, N)
    keep = up[:, pairs[:, 0]] & up[:, pairs[:, 1]]  # (T, K)
    t_idx, k_idx = np.nonzero(keep)
    uv = np.stack([u[t_idx, k_idx], v[t_idx, k_idx]], axis=1)
    ww = w[t_idx, k_idx]
    pr = pairs[k_idx]
    conj = np.zeros(len(t_idx), dtype=bool)
    if include_conjugate:
        uv = np.concatenate([uv, -uv])
        ww = np.concatenate([ww, -ww])
        pr = np.concatenate([pr, pr[:, ::-1]])
        t_idx = np.concatenate([t_idx, t_idx])
        conj = np.concatenate([conj, ~conj])
    return UVCoverage(
        uv=torch.from_numpy(np.ascontiguousarray(uv)),
        w=torch.from_numpy(np.ascontiguousarray(ww)),
        pairs=torch.from_numpy(np.ascontiguousarray(pr)).long(),
        hour_angle_h=torch.from_numpy(ha_h[t_idx]),
        time_index=torch.from_numpy(t_idx).long(),
        frequency_hz=float(frequency_hz),
        declination_deg=dec,
        stations=layout.stations,
        conjugate=torch.from_numpy(conj),
    )
