"""Ring metrics of black-hole images, REx-style (ehtim's ring extractor; EHT M87 2019 Paper IV).

For a candidate centre, the image is sampled along ``n_rays`` rays (position angles east of north,
``0, 10, … 350°`` by default) and the radius of peak brightness is found on each. As REx does, the
image is interpolated with cubic splines and each peak is refined by a parabola through the
three samples around it (REx's ``quad_interp_radius``): on analytic rings and crescents at sub-pixel
radii the diameter is then exact to 0.05 µas on a 2.5-µas grid (bilinear samples and the bare argmax
were off by up to 1 µas; ``benchmarks/ring_estimator.py``). The **centre** is
the candidate where those peak radii scatter least (relative: std / mean), searched on a grid
around the flux centroid, then refined. At that centre:

=================================  ==========================================================
``ring_diameter_uas``               ``D = 2 · mean(peak radius)``
``ring_radial_scatter``             ``std(peak radius) / mean(peak radius)`` (0 for a circle)
``ring_depth``                      brightness at the centre (mean within ``D/8``) / mean brightness
                                    at the ring's peak (REx's ``f_c``: 0 for a hole, 1 for a disc)
``ring_width_uas``                  mean FWHM of the radial profiles around the peak
``ring_position_angle_deg``         position angle (east of north, ``[0, 360)``) of the brightness
                                    along the ring: ``arg Σ I(φ) e^{iφ}`` (REx's η)
``ring_asymmetry``                  ``|Σ I(φ) e^{iφ}| / Σ I(φ)`` (REx's A; 0 for a uniform ring)
``ring_center_uas``                 the centre's (east, north) offset from the phase centre
=================================  ==========================================================

Images are in the operator layout (east along +column, north along +row, phase centre at
``(H//2, W//2)``), any units; negative pixels (dirty images) are clipped at 0.
:func:`ring_spread` gives the mean and std of each metric over posterior samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import map_coordinates, spline_filter
from torch import Tensor

__all__ = ["RingMetrics", "ring_metrics", "ring_spread", "ring_report", "UAS_RAD"]

UAS_RAD = math.pi / 180 / 3600e6  # one microarcsecond in radians


@dataclass
class RingMetrics:
    """REx-style ring measurements (see the module docs); angles in µas and degrees."""

    ring_diameter_uas: float
    ring_radial_scatter: float
    ring_depth: float
    ring_width_uas: float
    ring_position_angle_deg: float
    ring_asymmetry: float
    ring_center_uas: tuple[float, float]

    def to_dict(self) -> dict[str, float]:
        """Flat ``{name: number}`` (the centre as ``ring_center_east_uas`` / ``ring_center_north_uas``)."""
        d = asdict(self)
        east, north = d.pop("ring_center_uas")
        return {**{k: float(v) for k, v in d.items()}, "ring_center_east_uas": float(east),
                "ring_center_north_uas": float(north)}


def _as_image(img: Tensor | np.ndarray) -> np.ndarray:
    a = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    a = np.real(a).astype(np.float64)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"ring_metrics: one image (H, W) at a time, got shape {tuple(a.shape)}")
    a = np.where(np.isfinite(a), a, 0.0)
    return np.clip(a, 0.0, None)


def _profiles(coef: np.ndarray, cy: np.ndarray, cx: np.ndarray, ang: np.ndarray, rads: np.ndarray,
              order: int = 3) -> np.ndarray:
    """Radial profiles ``(C, n_rays, n_radii)`` around centres ``(cy, cx)`` (pixels) of the image whose
    spline coefficients of ``order`` are ``coef`` (``spline_filter(a, order, mode="constant")``)."""
    yy = cy[:, None, None] + rads[None, None, :] * np.cos(ang)[None, :, None]
    xx = cx[:, None, None] + rads[None, None, :] * np.sin(ang)[None, :, None]
    out = map_coordinates(coef, [yy.ravel(), xx.ravel()], order=order, mode="constant", prefilter=False)
    return out.reshape(yy.shape)


def _peak_radii(prof: np.ndarray, rads: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Peak radius of each profile ``(..., n_radii)``, refined by the vertex of the parabola through the
    sample at the maximum and its two neighbours (REx's ``quad_interp_radius``), and the index of the
    maximum sample."""
    i = prof.argmax(axis=-1)
    if not refine:
        return rads[i], i
    ic = np.clip(i, 1, len(rads) - 2)
    v_l, v_m, v_r = (np.take_along_axis(prof, (ic + k)[..., None], -1)[..., 0] for k in (-1, 0, 1))
    curv = v_l + v_r - 2 * v_m
    inside = (i == ic) & (curv < 0)
    offset = np.where(inside, 0.5 * (v_l - v_r) / np.where(inside, curv, -1.0), 0.0)
    return rads[i] + (rads[1] - rads[0]) * offset, i


def _scatter(prof: np.ndarray, rads: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative scatter of the peak radii ``(C,)``, the peak radii ``(C, n_rays)`` and the search
    objective: the scatter plus the fraction of rays peaking at the innermost radius (a centre on
    the bright side of the ring itself is not a ring centre)."""
    peak, i = _peak_radii(prof, rads, refine)  # (C, n_rays)
    sc = peak.std(-1) / np.maximum(peak.mean(-1), 1e-12)
    return sc, peak, sc + (i == 0).mean(-1)


def ring_metrics(img: Tensor | np.ndarray, pixel_rad: float, n_rays: int = 36, search_uas: float = 10.0,
                 rmin_uas: float = 5.0, rmax_uas: float | None = None, order: int = 3,
                 refine: bool = True) -> RingMetrics:
    """REx-style ring metrics of one image (see the module docs).

    Args:
        img: ``(H, W)`` image, operator layout. pixel_rad: pixel size in radians.
        n_rays: rays per centre (36: every 10°).
        search_uas: centres are searched within this distance of the flux centroid.
        rmin_uas, rmax_uas: radii searched for the peak (default up to 40 % of the field).
        order, refine: spline order of the profiles and the parabolic peak refinement (REx: 3, True;
            ``order=1, refine=False`` is the bilinear argmax this toolkit used before, for comparison).
    """
    a = _as_image(img)
    h, w = a.shape
    px_uas = float(pixel_rad) / UAS_RAD
    tot = a.sum()
    if not (tot > 0):
        nan = float("nan")
        return RingMetrics(nan, nan, nan, nan, nan, nan, (nan, nan))
    c0y = float((a.sum(1) * np.arange(h)).sum() / tot)
    c0x = float((a.sum(0) * np.arange(w)).sum() / tot)
    ang = np.linspace(0.0, 2 * np.pi, int(n_rays), endpoint=False)
    rmax = (0.4 * min(h, w) * px_uas) if rmax_uas is None else float(rmax_uas)
    rads = np.arange(max(rmin_uas / px_uas, 1.0), rmax / px_uas, 0.25)
    # coarse grid (1 pixel), then two refinements (1/4 pixel, 1/16 pixel) around the best centre
    s = search_uas / px_uas
    grid = np.arange(-np.floor(s), np.floor(s) + 1)
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    cy, cx = c0y + gy.ravel(), c0x + gx.ravel()
    coef = spline_filter(a, order=order, mode="constant") if order > 1 else a
    for step in (0.25, 0.0625):
        k = int(np.argmin(_scatter(_profiles(coef, cy, cx, ang, rads, order), rads, refine)[2]))
        fine = np.arange(-4, 5) * step
        cy, cx = (v.ravel() for v in np.meshgrid(cy[k] + fine, cx[k] + fine, indexing="ij"))
    prof = _profiles(coef, cy, cx, ang, rads, order)
    sc, peak, obj = _scatter(prof, rads, refine)
    k = int(np.argmin(obj))
    ycen, xcen, prof, peak = float(cy[k]), float(cx[k]), prof[k], peak[k]
    radius = float(peak.mean())
    peak_val = prof.max(-1)  # (n_rays,)
    # centre brightness: mean within D/8 of the centre
    yy, xx = np.mgrid[0:h, 0:w]
    inner = (yy - ycen) ** 2 + (xx - xcen) ** 2 <= max(radius / 4, 1.0) ** 2
    depth = float(a[inner].mean() / max(peak_val.mean(), 1e-300))
    widths = []
    for j in range(prof.shape[0]):
        p, i = prof[j], int(prof[j].argmax())
        half = p[i] / 2
        lo = np.nonzero(p[:i] < half)[0]
        hi = np.nonzero(p[i:] < half)[0]
        if hi.size:  # FWHM; twice the outer half width where the inside stays above half the peak
            outer = rads[i + hi[0]] - rads[i]
            widths.append(outer + (rads[i] - rads[lo[-1]] if lo.size else outer))
    width = float(np.mean(widths)) * px_uas if widths else float("nan")
    moment = (peak_val * np.exp(1j * ang)).sum()
    pa = float(np.degrees(np.angle(moment))) % 360.0
    asym = float(np.abs(moment) / max(peak_val.sum(), 1e-300))
    return RingMetrics(
        ring_diameter_uas=2 * radius * px_uas,
        ring_radial_scatter=float(sc[k]),
        ring_depth=depth,
        ring_width_uas=width,
        ring_position_angle_deg=pa,
        ring_asymmetry=asym,
        ring_center_uas=((xcen - w // 2) * px_uas, (ycen - h // 2) * px_uas),
    )


def ring_spread(images: Tensor | np.ndarray, pixel_rad: float, **kwargs) -> dict[str, float]:
    """Ring metrics of each of ``K`` images ``(K, H, W)`` (e.g. posterior samples): the mean of each
    metric under its name and its spread across samples as ``<name>_std`` (circular std for the
    position angle)."""
    arr = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    arr = np.real(arr).reshape(-1, *arr.shape[-2:])
    rows = [ring_metrics(x, pixel_rad, **kwargs).to_dict() for x in arr]
    out: dict[str, float] = {}
    for key in rows[0]:
        vals = np.array([r[key] for r in rows], np.float64)
        if key == "ring_position_angle_deg":
            z = np.exp(1j * np.radians(vals)).mean()
            out[key] = float(np.degrees(np.angle(z)) % 360.0)
            out[key + "_std"] = float(np.degrees(np.sqrt(max(-2 * np.log(max(abs(z), 1e-12)), 0.0))))
        else:
            out[key] = float(np.nanmean(vals))
            out[key + "_std"] = float(np.nanstd(vals))
    out["ring_samples"] = len(rows)
    return out


def ring_report(samples: Tensor | np.ndarray, pixel_rad: float) -> dict[str, float]:
    """The ring metrics a visibility reconstruction reports (``metrics.json``): those of the mean of
    ``samples`` ``(K, [1,] H, W)`` and, when ``K > 1``, their spread across the samples
    (``ring_diameter_uas_std``, ...; :func:`ring_spread`). Empty when the images are not 2-D."""
    arr = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else np.asarray(samples)
    arr = np.real(arr)
    if arr.ndim < 2:
        return {}
    arr = arr.reshape(-1, *arr.shape[-2:])
    out = ring_metrics(arr.mean(0), pixel_rad).to_dict()
    if arr.shape[0] > 1:
        spread = ring_spread(arr, pixel_rad)
        out.update({k: v for k, v in spread.items() if k.endswith("_std") or k == "ring_samples"})
    return out
