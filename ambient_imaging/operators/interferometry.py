"""Radio-interferometric measurement operators: visibilities of a sky image.

Convention (shared by :class:`Interferometer`, :class:`GriddedInterferometer`,
:func:`~ambient_imaging.operators.earth_rotation_uv` and the UVFITS reader/writer;
it is ehtim's, and that of AIPS/UVFITS files)::

    V(u, v) = Σ_{pixels} I(l, m) · exp(+2πi (u l + v m)),    (u, v, w) = (x_ant1 − x_ant2) / λ

* ``(u, v)`` are baseline coordinates in **wavelengths** for the station pair
  ``(ant1, ant2)``, measured as **ant1 − ant2** (UVFITS ``UU``/``VV`` times the
  frequency, pyuvdata/ehtim convention); ``uv[..., 0] = u``, ``uv[..., 1] = v``.
* ``l`` is the offset towards **east** (increasing right ascension), ``m``
  towards **north**. ``l`` runs along x (image columns, the last axis W),
  ``m`` along y (rows, axis H). Pixel ``(i, j)`` sits at
  ``l = (j - W//2)·Δ``, ``m = (i - H//2)·Δ`` with ``Δ = pixel_scale`` in
  radians, so the pixel ``(H//2, W//2)`` is the phase centre.
* **The operator image has east to the right** (``+l`` along ``+column``) and
  north up when row 0 is drawn at the bottom. Sky images in FITS files have
  east to the left (``CDELT1 < 0``): use
  :func:`ambient_imaging.datasets.fits.operator_to_fits_image` /
  :func:`~ambient_imaging.datasets.fits.fits_to_operator_image` (a flip of the
  last axis) together with
  :func:`~ambient_imaging.datasets.fits.sky_fits_header`, which sets the
  reference pixel of the flipped array.
* The sum is un-normalised (no ``1/N``), so on grid points ``u = k/(WΔ)`` the
  NUFFT path equals the gridded path exactly.

For a real sky ``V(−u, −v) = conj V(u, v)``: the opposite uv sign convention
(ant2 − ant1 with ``exp(−2πi …)``) describes the same data; mixing the two
mirrors the image through the phase centre.

The sky is small (the 2-D, narrow-field approximation: the ``w`` term and
primary beam are ignored; multiply the image by a beam model yourself).

Measurement model: ``y = M ⊙ (F x) + ε`` with ``F`` the sum above at the ``M``
uv points, ``M`` the boolean per-visibility mask (valid = unflagged and not
padding) and ``ε`` circular complex Gaussian noise with ``E|ε_m|² = σ_m²``.
For a real sky (``real_image=True``, the default) the adjoint is taken under
the real inner product and returns ``Re(F^H M y)`` (see :mod:`.base`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import SubsamplingOperator, complex_dtype_like, real_dtype_like
from .gridded import GriddedInterferometer, _add_conjugate_cells, _check_pixel_scale, _complex_image
from .nufft import BACKENDS, FinufftPlans, NUFFTPlan, default_eps, nufft2d_type1, nufft2d_type2

try:  # finufft is a dependency, but keep the torch path usable without it
    import finufft as _finufft  # noqa: F401

    _HAVE_FINUFFT = True
except ImportError:  # pragma: no cover
    _HAVE_FINUFFT = False

__all__ = ["Interferometer", "GriddedInterferometer", "estimate_total_flux"]


def _as_uv(uv: Tensor) -> Tensor:
    if not isinstance(uv, Tensor):
        raise TypeError(f"Interferometer: uv must be a torch.Tensor, got {type(uv).__name__}")
    if uv.is_complex() or not uv.is_floating_point():
        raise TypeError(f"Interferometer: uv must be a real floating tensor (wavelengths), got dtype {uv.dtype}")
    if uv.ndim == 2:
        uv = uv[None]
    if uv.ndim != 3 or uv.shape[-1] != 2:
        raise ValueError(f"Interferometer: uv must have shape (M, 2) or (B, M, 2), got {tuple(uv.shape)}")
    if not torch.isfinite(uv).all():
        raise ValueError("Interferometer: uv contains NaN or inf (drop or flag those visibilities first)")
    return uv


class Interferometer(SubsamplingOperator):
    """Visibilities of a sky image at arbitrary uv points (exact NUFFT).

    Args:
        uv: ``(M, 2)`` or ``(B, M, 2)`` baseline coordinates in wavelengths.
        image_shape: ``(H, W)`` of the sky image.
        pixel_scale: pixel size ``Δ`` in radians.
        noise_sigma: visibility noise std: a float, or a tensor ``(B, M)``
            (per visibility) / ``(B,)`` (per sample); ``E|ε|² = σ²``.
        mask: ``(B, M)`` or ``(M,)`` bool, ``True`` for valid visibilities
            (``False`` for flags and for padding added to stack operators of
            different ``M``). Default: all valid.
        weights: alternative to ``noise_sigma``: visibility weights ``w = 1/σ²``
            (``(B, M)`` or ``(M,)``); ``w = 0`` marks a visibility invalid.
        real_image: the sky is real (default): the adjoint returns ``Re(F^H y)``.
        protect_shortest: rows :meth:`subsample` always keeps by default: an
            int ``K`` (the K shortest valid baselines of each sample) or a
            fraction in ``(0, 1)`` of the valid baselines; ``None`` protects nothing.
        backend: ``"auto"`` (default: finufft for CPU tensors — 2-5x faster
            there, see ``benchmarks/results/operators.md`` — and the torch NUFFT
            on GPUs), ``"torch"`` (any device) or ``"finufft"`` (CPU only); all
            are differentiable and agree to the NUFFT tolerance, see :mod:`.nufft`.
        eps: NUFFT tolerance (default 1e-12 in double, 1e-6 in single precision).
        stations: optional ``(M, 2)`` integer station numbers ``(ant1, ant2)`` of each row
            (UVFITS numbering; ``uv`` is ant1 − ant2). Needed for closure quantities and
            station-gain calibration (:mod:`ambient_imaging.interferometry`).
        times: optional ``(M,)`` float64 time stamps in seconds (rows with equal times form
            one integration).
        station_names: optional names, indexed by station number (``{number: name}``).

    Shapes: images ``(B, 1, H, W)`` (real, or complex when ``real_image=False``),
    visibilities ``(B, M)`` complex, zero at invalid rows. The rows that
    :meth:`subsample` draws are visibilities. Batching different coverages:
    pad each ``uv`` to a common ``M`` (pad rows get ``mask=False``; any finite
    uv value) before :func:`stack` — padding is the dataset's job.
    """

    _batched = ("uv", "mask")
    family = "interferometry"

    def __init__(
        self,
        uv: Tensor,
        image_shape: tuple[int, int],
        pixel_scale: float,
        noise_sigma: float | Tensor = 0.0,
        mask: Tensor | None = None,
        *,
        weights: Tensor | None = None,
        real_image: bool = True,
        protect_shortest: int | float | None = None,
        backend: str = "auto",
        eps: float | None = None,
        stations: Tensor | None = None,
        times: Tensor | None = None,
        station_names: dict[int, str] | None = None,
    ):
        uv = _as_uv(uv)
        if len(image_shape) != 2 or min(int(s) for s in image_shape) < 1:
            raise ValueError(f"Interferometer: image_shape must be (H, W), got {image_shape}")
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.pixel_scale = _check_pixel_scale(pixel_scale, "Interferometer")
        if backend not in BACKENDS + ("auto",):
            raise ValueError(f"Interferometer: backend must be one of {BACKENDS + ('auto',)}, got {backend!r}")
        self.backend = backend
        self.eps = eps
        self.real_image = bool(real_image)
        m = uv.shape[1]
        if mask is None:
            mask = torch.ones(uv.shape[:2], dtype=torch.bool, device=uv.device)
        else:
            mask = self._rows_tensor(mask, m, "mask")
            if mask.dtype != torch.bool:
                if not torch.all((mask == 0) | (mask == 1)):
                    raise ValueError("Interferometer: mask must be boolean (or 0/1)")
                mask = mask.bool()
        if weights is not None:
            if not (isinstance(noise_sigma, (int, float)) and noise_sigma == 0):
                raise ValueError("Interferometer: give noise_sigma or weights, not both")
            weights = self._rows_tensor(weights, m, "weights").to(torch.float64)
            if not torch.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("Interferometer: weights must be finite and >= 0")
            mask = mask & (weights > 0)
            noise_sigma = torch.where(weights > 0, weights.clamp_min(1e-300).rsqrt(), torch.zeros_like(weights))
        self.noise_sigma = self._check_sigma(noise_sigma, m)
        b = max(uv.shape[0], mask.shape[0])
        for name, t in (("uv", uv), ("mask", mask)):
            if t.shape[0] not in (1, b):
                raise ValueError(f"Interferometer: {name} has batch {t.shape[0]}, expected 1 or {b}")
        sig = self.noise_sigma
        if isinstance(sig, Tensor) and sig.ndim >= 1 and sig.shape[0] not in (1, b):
            raise ValueError(f"Interferometer: noise_sigma has batch {sig.shape[0]}, expected 1 or {b}")
        if mask.device != uv.device:
            raise ValueError(f"Interferometer: mask is on {mask.device} but uv is on {uv.device}")
        self.uv = uv
        self.mask = mask.expand(b, -1).clone() if mask.shape[0] != b else mask
        if protect_shortest is not None:
            p = float(protect_shortest)
            if not (p > 0 and (p < 1 or p == int(p))):
                raise ValueError(
                    "Interferometer: protect_shortest must be a count >= 1 or a fraction in (0, 1), "
                    f"got {protect_shortest}"
                )
        self.protect_shortest = protect_shortest
        self._plans: dict = {}
        self.stations, self.times = _check_rows_meta(stations, times, m)
        self.station_names = dict(station_names) if station_names else None

    # ---- validation helpers ------------------------------------------------------------
    @staticmethod
    def _rows_tensor(t: Tensor, m: int, name: str) -> Tensor:
        if not isinstance(t, Tensor):
            raise TypeError(f"Interferometer: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != m:
            raise ValueError(f"Interferometer: {name} must have shape (B, {m}) or ({m},), got {tuple(t.shape)}")
        return t

    @staticmethod
    def _check_sigma(sigma: float | Tensor, m: int) -> float | Tensor:
        if isinstance(sigma, Tensor):
            if sigma.is_complex():
                raise TypeError("Interferometer: noise_sigma must be real")
            if not torch.isfinite(sigma).all() or (sigma < 0).any():
                raise ValueError("Interferometer: noise_sigma must be finite and >= 0")
            if sigma.ndim == 0:
                return float(sigma)
            if sigma.ndim == 1 and sigma.shape[0] == m and m != 1:
                sigma = sigma[None]
            if sigma.ndim > 2 or (sigma.ndim == 2 and sigma.shape[1] != m):
                raise ValueError(
                    f"Interferometer: noise_sigma must be a float, (B,) or (B, {m}) tensor, got {tuple(sigma.shape)}"
                )
            return sigma
        s = float(sigma)
        if not (math.isfinite(s) and s >= 0):
            raise ValueError(f"Interferometer: noise_sigma must be finite and >= 0, got {sigma}")
        return s

    @property
    def batch_size(self) -> int:
        return max(self.uv.shape[0], self.mask.shape[0])

    @property
    def n_vis(self) -> int:
        """Number of visibility rows ``M`` (valid or not)."""
        return self.uv.shape[1]

    def _points(self, dtype: torch.dtype) -> Tensor:
        """The NUFFT's frequencies ``f = −u Δ`` (cycles per pixel): the NUFFT's type 2 is
        ``Σ x exp(−2πi f·n)``, the operator's kernel ``exp(+2πi u·l)``."""
        return (self.uv.to(torch.float64) * (-self.pixel_scale)).to(real_dtype_like(dtype))

    def _backend(self, device: torch.device) -> str:
        """The NUFFT backend used for tensors on ``device`` (resolves ``"auto"``)."""
        if self.backend != "auto":
            return self.backend
        return "finufft" if device.type == "cpu" and _HAVE_FINUFFT else "torch"

    def _plan(self, points: Tensor) -> NUFFTPlan | FinufftPlans | None:
        """The cached NUFFT plan for this precision (torch backend; finufft plans for one set of
        points); shared by copies that keep ``uv`` (e.g. :meth:`subsample`), rebuilt when ``uv`` changes."""
        backend = self._backend(points.device)
        if backend == "finufft" and (points.ndim == 3 and points.shape[0] != 1):
            return None
        eps = default_eps(points.dtype) if self.eps is None else float(self.eps)
        key = (backend, points.dtype, points.device, eps)
        if key not in self._plans:
            make = NUFFTPlan if backend == "torch" else FinufftPlans
            self._plans[key] = make(self.image_shape, points, eps)
        return self._plans[key]

    def replace(self, **changes) -> Interferometer:
        new = super().replace(**changes)
        if "uv" in changes:
            new._plans = {}
        return new

    # ---- the maths ----------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Visibilities ``(B, M)`` complex of images ``(B, 1, H, W)``; zero at invalid rows."""
        x = _complex_image(x, "x", "Interferometer", self.image_shape)
        self._check_input(x)
        pts = self._points(x.dtype)
        vis = nufft2d_type2(x[:, 0], pts, self.eps, self._backend(pts.device), self._plan(pts))
        return vis * self.mask.to(vis.device)

    def adjoint(self, y: Tensor) -> Tensor:
        """``F^H (M ⊙ y)`` as a ``(B, 1, H, W)`` image; its real part when ``real_image``."""
        y = self._check_vis(y)
        pts = self._points(y.dtype)
        img = nufft2d_type1(
            y * self.mask, pts, self.image_shape, self.eps, self._backend(pts.device), self._plan(pts)
        )
        img = img[:, None]
        return img.real if self.real_image else img

    def _check_vis(self, y: Tensor, name: str = "y") -> Tensor:
        if not isinstance(y, Tensor):
            raise TypeError(f"Interferometer: {name} must be a torch.Tensor, got {type(y).__name__}")
        if y.ndim != 2 or y.shape[1] != self.n_vis:
            raise ValueError(
                f"Interferometer: {name} must be visibilities of shape (B, {self.n_vis}), got {tuple(y.shape)}"
            )
        if not (y.is_complex() or y.is_floating_point()):
            raise TypeError(f"Interferometer: {name} must be complex (or float), got {y.dtype}")
        self._check_input(y, name)
        return y if y.is_complex() else y.to(complex_dtype_like(y.dtype))

    def restrict(self, y: Tensor) -> Tensor:
        """Zero the invalid (flagged / padding / dropped) visibilities."""
        y = self._check_vis(y)
        return y * self.mask

    def visibility_weights(self, like: Tensor | None = None) -> Tensor:
        """Natural weights ``w = 1/σ²`` on valid rows, 0 elsewhere, ``(B, M)``; uniform
        ones when ``noise_sigma`` is 0 or a single number."""
        sig = self.noise_sigma
        dt = torch.float64 if like is None else real_dtype_like(like.dtype)
        mask = self.mask.to(dt)
        if isinstance(sig, Tensor) and sig.ndim == 2:
            s = sig.to(device=mask.device, dtype=dt)
            w = torch.where(s > 0, 1.0 / s.clamp_min(1e-300) ** 2, torch.zeros_like(s))
            if (s == 0).all():
                w = torch.ones_like(s)
            return torch.broadcast_to(w, torch.broadcast_shapes(w.shape, mask.shape)) * mask
        return mask

    def measurements_to_image(self, y: Tensor) -> Tensor:
        """The dirty image with a unit-peak dirty beam: ``A^H(w ⊙ y) / Σ w``.

        ``w`` are the natural weights (:meth:`visibility_weights`), so a unit
        point source at the phase centre gives a dirty-image peak of exactly 1
        (for a real sky) whatever the number of visibilities.
        """
        y = self._check_vis(y)
        w = self.visibility_weights(y).to(y.device)
        norm = w.sum(dim=1).clamp_min(torch.finfo(w.dtype).tiny)
        img = self.adjoint(y * w)
        return img / norm.reshape(-1, 1, 1, 1)

    # ---- subsampling --------------------------------------------------------------------
    def default_keep(self) -> Tensor | None:
        """The ``protect_shortest`` shortest valid baselines of each sample (or ``None``)."""
        if self.protect_shortest is None:
            return None
        radius = self.uv.to(torch.float64).norm(dim=-1)
        radius = torch.broadcast_to(radius, (self.batch_size, self.n_vis))
        mask = torch.broadcast_to(self.mask, radius.shape)
        radius = torch.where(mask, radius, torch.full_like(radius, math.inf))
        n_valid = mask.sum(dim=1)
        p = float(self.protect_shortest)
        k = torch.ceil(p * n_valid).long() if p < 1 else torch.full_like(n_valid, int(p))
        k = torch.minimum(k, n_valid)
        order = torch.argsort(radius, dim=1, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(self.n_vis, device=order.device).expand_as(order))
        return (rank < k[:, None]) & mask

    def with_rows(self, rows: Tensor) -> Interferometer:
        return self.replace(mask=rows)

    # ---- views for networks ---------------------------------------------------------------
    def uv_cells(self) -> tuple[Tensor, Tensor]:
        """Nearest cell of each visibility on the centred ``H×W`` uv grid.

        Returns ``(row, col)`` long tensors ``(B_uv, M)``: cell ``(k_v + H//2,
        k_u + W//2)`` with ``k_u = round(u Δ W)``, ``k_v = round(v Δ H)`` — the grid
        of :class:`GriddedInterferometer`. Points beyond the grid give
        indices outside ``[0, H) × [0, W)``.
        """
        h, w = self.image_shape
        f = self.uv.to(torch.float64) * self.pixel_scale
        col = torch.round(f[..., 0] * w).long() + w // 2
        row = torch.round(f[..., 1] * h).long() + h // 2
        return row, col

    def mask_channels(self) -> Tensor:
        """uv sampling density on the ``H×W`` uv grid, ``(B, 1, H, W)`` float in [0, 1].

        ``log(1 + count) / max`` per sample, counting valid visibilities per
        cell (nearest cell, :meth:`uv_cells`); for a real sky each visibility
        also counts at ``(-u, -v)`` (where it is measured too, by conjugate
        symmetry). Points beyond the grid's Nyquist extent are not shown.
        """
        h, w = self.image_shape
        b = self.batch_size
        row, col = (torch.broadcast_to(t, (b, self.n_vis)) for t in self.uv_cells())
        valid = torch.broadcast_to(self.mask, (b, self.n_vis))
        rows, cols, vals = [row], [col], [valid]
        if self.real_image:
            rows.append(2 * (h // 2) - row)
            cols.append(2 * (w // 2) - col)
            vals.append(valid)
        row, col, valid = torch.cat(rows, 1), torch.cat(cols, 1), torch.cat(vals, 1)
        inside = valid & (row >= 0) & (row < h) & (col >= 0) & (col < w)
        flat = torch.where(inside, row * w + col, torch.zeros_like(row))
        count = torch.zeros(b, h * w, dtype=torch.float32, device=self.uv.device)
        count.scatter_add_(1, flat, inside.float())
        dens = torch.log1p(count)
        dens = dens / dens.amax(dim=1, keepdim=True).clamp_min(1e-12)
        return dens.reshape(b, 1, h, w)

    # ---- gridded fast path --------------------------------------------------------------------
    def to_gridded(self, include_conjugate: bool = False) -> GriddedInterferometer:
        """The nearest-cell :class:`GriddedInterferometer` of this coverage.

        Each valid visibility moves to its nearest uv cell (:meth:`uv_cells`);
        the noise of a cell is the inverse-variance combination of the
        visibilities in it (``σ_cell = σ/√n`` for equal σ). With
        ``include_conjugate=True`` the cell at ``(-u, -v)`` is marked too (it is
        measured by conjugate symmetry for a real sky; for even sizes the
        Nyquist row/column has no mirror and is skipped). Raises ``ValueError``
        for points beyond the grid's Nyquist extent ``|u|, |v| > 1/(2Δ)``.
        """
        h, w = self.image_shape
        nyq = 0.5 / self.pixel_scale
        valid_any = torch.broadcast_to(self.mask, (self.batch_size, self.n_vis))
        uv = torch.broadcast_to(self.uv, (self.batch_size, self.n_vis, 2))
        over = (uv.abs() > nyq * (1 + 1e-12)).any(-1) & valid_any
        if over.any():
            worst = float(uv[over].abs().max())
            raise ValueError(
                f"Interferometer.to_gridded: {int(over.sum())} visibilities lie beyond the grid's Nyquist extent "
                f"|u|,|v| <= 1/(2*pixel_scale) = {nyq:.6g} wavelengths (max {worst:.6g}); "
                "use a smaller pixel_scale or keep the NUFFT operator"
            )
        b = self.batch_size
        row, col = (torch.broadcast_to(t, (b, self.n_vis)) for t in self.uv_cells())
        row, col = row % h, col % w  # a point exactly at +1/(2Δ) aliases to -1/(2Δ) (same sum)
        flat = row * w + col
        sig = self.noise_sigma
        dev = self.uv.device
        valid = valid_any.to(torch.float64)
        count = torch.zeros(b, h * w, dtype=torch.float64, device=dev).scatter_add_(1, flat, valid)
        if isinstance(sig, Tensor) and sig.ndim == 2:
            s = torch.broadcast_to(sig.to(device=dev, dtype=torch.float64), (b, self.n_vis))
            inv = torch.where(s > 0, 1.0 / s.clamp_min(1e-300) ** 2, torch.full_like(s, math.inf)) * valid
            inv = torch.nan_to_num(inv, nan=0.0)
            prec = torch.zeros_like(count).scatter_add_(1, flat, inv)
            cell_sigma: float | Tensor = torch.where(prec > 0, prec.rsqrt(), torch.zeros_like(prec))
            cell_sigma = cell_sigma.reshape(b, 1, h, w)
        elif isinstance(sig, Tensor) or float(sig) > 0:
            s = torch.as_tensor(sig, dtype=torch.float64, device=dev).reshape(-1, 1)
            cell_sigma = (s / count.clamp_min(1).sqrt()).reshape(b, 1, h, w) * (count > 0).reshape(b, 1, h, w)
        else:
            cell_sigma = 0.0
        mask = (count > 0).reshape(b, 1, h, w)
        if include_conjugate:
            mask, cell_sigma = _add_conjugate_cells(mask, cell_sigma)
        return GriddedInterferometer(mask, self.pixel_scale, cell_sigma, real_image=self.real_image)

    # ---- bookkeeping --------------------------------------------------------------------------
    def stack_batch(self, ops: list[Interferometer]) -> Interferometer:
        """:func:`~.base.stack` support: same image grid, same ``M`` (pad first)."""
        first = ops[0]
        for op in ops[1:]:
            if (op.image_shape, op.pixel_scale, op.real_image, op.backend) != (
                first.image_shape, first.pixel_scale, first.real_image, first.backend
            ):
                raise ValueError("stack: Interferometers must share image_shape, pixel_scale, real_image and backend")
            if op.n_vis != first.n_vis:
                raise ValueError(
                    f"stack: Interferometers have {first.n_vis} and {op.n_vis} visibilities; pad to a common M "
                    "(padding rows with mask=False) before stacking"
                )
        uv = torch.cat([torch.broadcast_to(o.uv, (o.batch_size, o.n_vis, 2)) for o in ops])
        mask = torch.cat([torch.broadcast_to(o.mask, (o.batch_size, o.n_vis)) for o in ops])
        sigmas = [o.noise_sigma for o in ops]
        if all(not isinstance(s, Tensor) for s in sigmas) and len({float(s) for s in sigmas}) == 1:
            sigma: float | Tensor = float(sigmas[0])
        else:
            parts = []
            for o, s in zip(ops, sigmas, strict=True):
                t = torch.as_tensor(s, dtype=torch.float64, device=uv.device)
                t = t.reshape(-1, 1) if t.ndim <= 1 else t
                parts.append(torch.broadcast_to(t, (o.batch_size, o.n_vis)))
            sigma = torch.cat(parts)
        new = first.replace(uv=uv, mask=mask, noise_sigma=sigma)
        same = all(
            o.stations is not None and o.times is not None and first.stations is not None and first.times is not None
            and torch.equal(o.stations, first.stations) and torch.equal(o.times, first.times)
            for o in ops
        )
        if not same:
            new.stations, new.times = None, None
        return new

    def __repr__(self) -> str:
        return (
            f"Interferometer(batch={self.batch_size}, M={self.n_vis}, image_shape={self.image_shape}, "
            f"pixel_scale={self.pixel_scale:.4g} rad, backend={self.backend!r})"
        )


def estimate_total_flux(y: Tensor, op) -> Tensor:
    """Total flux ``(B,)`` from the shortest baselines (median amplitude); see
    :func:`ambient_imaging.interferometry.flux.estimate_total_flux`."""
    from ambient_imaging.interferometry.flux import estimate_total_flux as _estimate

    return _estimate(y, op)


def _check_rows_meta(stations: Tensor | None, times: Tensor | None, m: int) -> tuple[Tensor | None, Tensor | None]:
    """Validate the per-row station pairs ``(M, 2)`` and time stamps ``(M,)`` (both or neither)."""
    if (stations is None) != (times is None):
        raise ValueError("Interferometer: give stations and times together (closure quantities need both)")
    if stations is None:
        return None, None
    st = torch.as_tensor(stations)
    tt = torch.as_tensor(times)
    if st.shape != (m, 2) or st.is_floating_point() or st.is_complex():
        raise ValueError(f"Interferometer: stations must be an integer tensor of shape ({m}, 2), got "
                         f"{tuple(st.shape)} {st.dtype}")
    if tt.shape != (m,) or not torch.isfinite(tt.to(torch.float64)).all():
        raise ValueError(f"Interferometer: times must be a finite tensor of shape ({m},), got {tuple(tt.shape)}")
    if (st[:, 0] == st[:, 1]).any():
        raise ValueError("Interferometer: stations holds auto-correlations (ant1 == ant2); drop them first")
    return st.long().cpu(), tt.to(torch.float64).cpu()
