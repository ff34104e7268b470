"""Training losses that learn a denoiser from measurements only (plus the baselines to compare with).

Every loss is a small class with ``__call__(net, batch, generator=None) -> Tensor (B,)``: the
per-sample loss, already weighted (the trainer averages it). ``net`` is a Denoiser
(``net(x, sigma, mask=None)``, e.g. :class:`~ambient_imaging.networks.EDMPrecond`), ``batch`` a
:class:`~ambient_imaging.datasets.MeasurementBatch`. Randomness comes only from ``generator``
(on the batch's device), so a step is reproducible.

Conventions (see ``docs/losses.md`` for the derivations):

* VE diffusion ``x_t = x + σ η``; for complex images ``η = η_re + i η_im`` with both parts
  standard normal ("σ per real channel", matching the 2-real-channel network).
* Squared errors are averaged over the *real degrees of freedom that are scored* (a complex
  entry counts twice), so losses of samples with different sampling patterns weigh alike and the
  weighted loss is O(1) at initialisation, like EDM's.
* ``σ ~ LogNormal(P_mean, P_std)`` and ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²`` (Karras et al. 2022).

Losses: :class:`AmbientLoss` (Daras et al. 2023; A-DPS, Aali et al. 2025), :class:`AmbientTweedieLoss`
(Daras et al. 2024, arXiv 2404.10177; 2411.02780), :class:`ConsistencyLoss` (2404.10177),
:class:`OracleLoss` and :class:`NaiveLoss` (baselines), :class:`MixtureLoss`; and :func:`augment`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.operators import (
    ComposedOperator,
    GaussianNoise,
    LinearOperator,
    PixelMask,
    ScaledOperator,
    SubsamplingOperator,
)

from .sigma import WEIGHTINGS, LogNormalSigma, edm_weight, floor_weight

__all__ = [
    "AmbientLoss",
    "AmbientTweedieLoss",
    "ConsistencyLoss",
    "OracleLoss",
    "NaiveLoss",
    "MixtureLoss",
    "augment",
    "subsample_operator",
    "image_noise_sigma",
]


# =========================================================================== helpers
def _real_dtype(t: Tensor) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(t.dtype, t.dtype)


def _randn_image(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``like``; complex: N(0, 1) in real AND imaginary part."""
    rdt = _real_dtype(like)
    if like.is_complex():
        re = torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)
        im = torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)
        return torch.complex(re, im)
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)


def _sq(r: Tensor) -> Tensor:
    """Per-sample sum of squared magnitudes (B,)."""
    a = r.abs() ** 2 if r.is_complex() else r**2
    return a.reshape(a.shape[0], -1).sum(dim=1)


def _dof(support: Tensor) -> Tensor:
    """Per-sample number of real degrees of freedom where ``support`` is non-zero (B,)."""
    nz = (support != 0).reshape(support.shape[0], -1).sum(dim=1)
    return nz * (2 if support.is_complex() else 1)


def _b4(t: Tensor, ndim: int) -> Tensor:
    return t.reshape(t.shape + (1,) * (ndim - t.ndim))


def _check_sigma_dist(sigma_dist: Any) -> LogNormalSigma:
    if sigma_dist is None:
        return LogNormalSigma()
    if not hasattr(sigma_dist, "sample"):
        raise TypeError(f"sigma_dist must provide sample(n, generator, device), got {type(sigma_dist).__name__}")
    return sigma_dist


def _check_sigma_data(sigma_data: float) -> float:
    if not (math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
    return float(sigma_data)


def _sample_sigma(dist: LogNormalSigma, b: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return dist.sample(b, generator=generator, device=like.device, dtype=_real_dtype(like))


# ---- subsampling factor of an operator (A, Noise ∘ A, c · A) -------------------------------------
def _factor(op: LinearOperator) -> SubsamplingOperator | None:
    if isinstance(op, SubsamplingOperator):
        return op
    if isinstance(op, ComposedOperator):
        if isinstance(op.outer, SubsamplingOperator):
            return op.outer
        if getattr(op.outer, "elementwise", False):
            return _factor(op.inner)
        return None
    if isinstance(op, ScaledOperator):
        return _factor(op.op)
    return None


def _with_rows(op: LinearOperator, rows: Tensor) -> LinearOperator:
    if isinstance(op, SubsamplingOperator):
        return op.with_rows(rows)
    if isinstance(op, ComposedOperator):
        if isinstance(op.outer, SubsamplingOperator):
            return ComposedOperator(op.outer.with_rows(rows), op.inner)
        return ComposedOperator(op.outer, _with_rows(op.inner, rows))
    if isinstance(op, ScaledOperator):
        return ScaledOperator(_with_rows(op.op, rows), op.scale)
    raise TypeError(f"{type(op).__name__} has no subsampling factor")  # pragma: no cover


def _stable_seed(*parts: Any) -> int:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def _sample_keys(batch: MeasurementBatch, key: str) -> list[Any]:
    """Per-sample identity for deterministic Ã: ``meta[i][key]`` or else a hash of ``y[i]``."""
    keys: list[Any] = []
    for i in range(len(batch)):
        meta = batch.meta[i] if i < len(batch.meta) else {}
        if key in meta:
            keys.append(("meta", str(meta[key])))
        else:
            yi = batch.y[i].detach().cpu().contiguous()
            keys.append(("y", hashlib.blake2b(yi.numpy().tobytes(), digest_size=8).hexdigest()))
    return keys


def subsample_operator(
    op: LinearOperator,
    delta: float | Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    keep: Tensor | None | bool = None,
    seeds: list[int] | None = None,
) -> LinearOperator:
    """Further-corrupted ``Ã``: each measured row of ``op`` survives with probability ``1 - delta``.

    One independent draw per sample (an operator with batch 1 is expanded to
    ``batch_size`` first, so samples never share Ã); ``delta`` may be a per-sample ``(B,)``
    tensor. ``keep`` protects rows as in
    :meth:`SubsamplingOperator.subsample` (``None``: the operator's default, e.g. MRI
    ACS lines; ``False``: none). With ``seeds`` (one int per sample) each sample's
    draw is a deterministic function of its seed (``generator`` is then unused).
    """
    sub = _factor(op)
    if sub is None:
        raise TypeError(
            f"{type(op).__name__} has no subsampling rows (pixels, k-space lines, visibilities); "
            "ambient subsampling needs a SubsamplingOperator (optionally composed with noise)"
        )
    rows = sub.row_mask()
    per_sample = isinstance(delta, Tensor) and delta.numel() > 1
    if seeds is None and rows.shape[0] == batch_size and not per_sample:
        return op.subsample(float(delta), generator, keep)  # honours operator-specific overrides
    d = torch.as_tensor(delta, dtype=torch.float64).reshape(-1)
    if not bool(torch.all((d >= 0) & (d < 1))):
        raise ValueError(f"subsample: delta must be in [0, 1), got {delta}")
    if per_sample and d.numel() != batch_size:
        raise ValueError(f"subsample: need one delta per sample ({batch_size}), got {d.numel()}")
    if rows.shape[0] == 1 and batch_size > 1:
        rows = rows.expand(batch_size, *rows.shape[1:])
    if rows.shape[0] != batch_size:
        raise ValueError(f"operator batch {rows.shape[0]} does not match batch size {batch_size}")
    if seeds is None:
        u = torch.rand(rows.shape, generator=generator, device=rows.device)
    else:
        if len(seeds) != batch_size:
            raise ValueError(f"need {batch_size} seeds, got {len(seeds)}")
        u = torch.stack(
            [
                torch.rand(rows.shape[1:], generator=torch.Generator(device=rows.device).manual_seed(s),
                           device=rows.device)
                for s in seeds
            ]
        )
    survive = u < _b4(1.0 - d.to(device=rows.device, dtype=u.dtype), u.ndim)
    keep_t = sub.default_keep() if keep is None else (None if keep is False else keep)
    if keep_t is not None:
        try:
            survive = survive | torch.broadcast_to(keep_t.to(rows.device).bool(), rows.shape)
        except RuntimeError as err:
            raise ValueError(
                f"subsample: keep has shape {tuple(keep_t.shape)}, which does not broadcast to the rows "
                f"{tuple(rows.shape)}"
            ) from err
    return _with_rows(op, rows & survive)


def _image_domain(op: LinearOperator) -> bool:
    """True for operators whose measurements are images (pixel masks, Gaussian noise, compositions)."""
    if isinstance(op, (PixelMask, GaussianNoise)):
        return True
    if isinstance(op, ComposedOperator):
        return _image_domain(op.outer) and _image_domain(op.inner)
    return False


def _require_image_domain(op: LinearOperator, who: str) -> None:
    if not _image_domain(op):
        raise TypeError(
            f"{who} needs measurements in image space (PixelMask / GaussianNoise and compositions), "
            f"got {type(op).__name__}; use AmbientLoss(heldout=True) for Fourier-domain operators"
        )


def _edm_on_images(
    net: Any,
    x: Tensor,
    mask: Tensor | None,
    sigma_dist: LogNormalSigma,
    sigma_data: float,
    generator: torch.Generator | None,
    weighting: str = "edm",
    owner: Any = None,
) -> Tensor:
    """Plain EDM denoising loss ``λ(σ) ‖D(x + σ η, σ) − x‖² / dof`` per sample (``owner.last_sigma`` = σ)."""
    b = x.shape[0]
    sigma = _sample_sigma(sigma_dist, b, x, generator)
    if owner is not None:
        owner.last_sigma = sigma.detach()
    x_t = x + _b4(sigma, x.ndim) * _randn_image(x, generator)
    logvar = None
    if weighting == "uncertainty":
        d, logvar = net(x_t, sigma, mask=mask, return_logvar=True)
    else:
        d = net(x_t, sigma, mask=mask)
    n = x[0].numel() * (2 if x.is_complex() else 1)
    return _weighted(_sq(d - x) / n, sigma, sigma_data, weighting, None, 0.0, logvar, owner)


def _mask_for(op: LinearOperator, mode: str, x: Tensor, net: Any = None) -> Tensor | None:
    """The mask channels given to ``net`` for a batch ``x`` (``mode``: none / ones / operator).

    ``"ones"`` with an operator that has no mask channels (e.g. the identity of a clean
    evaluation view) builds all-ones channels of the count the network expects.
    """
    if mode == "none":
        return None
    b = x.shape[0]
    m = op.mask_channels()
    if m is None:
        k = int(getattr(getattr(net, "module", net), "mask_channels", 0) or 0)
        if mode != "ones" or k == 0:
            return None
        dtype = x.real.dtype if x.is_complex() else x.dtype
        return torch.ones(b, k, *x.shape[-2:], device=x.device, dtype=dtype)
    m = m.expand(b, *m.shape[1:]) if m.shape[0] == 1 else m
    return torch.ones_like(m) if mode == "ones" else m


def _check_mask_mode(mode: str, allowed: tuple[str, ...]) -> str:
    if mode not in allowed:
        raise ValueError(f"mask must be one of {allowed}, got {mode!r}")
    return mode


# =========================================================================== ambient
def image_noise_sigma(op: LinearOperator, y: Tensor, x: Tensor) -> float | Tensor:
    """Measurement noise in the diffusion convention (std per real image channel), ``0`` if unknown.

    ``op.noise_sigma`` follows the operator contract (complex noise: ``E|ε|² = σ_n²``). For
    orthonormal operators whose measurements and images are both real (pixel masks, Gaussian
    noise) the image-domain std per real channel is ``σ_n``; both complex (Cartesian MRI with
    orthonormal FFT and normalised coil maps): ``σ_n/√2``. Other pairs (real images from complex
    visibilities) have no such simple relation: ``0`` is returned (noise not accounted for).
    """
    s = _noise_level(None, op, y.shape[0], y)
    if y.is_complex() != x.is_complex():
        return 0.0
    f = 1.0 / math.sqrt(2.0) if y.is_complex() else 1.0
    return s * f if isinstance(s, Tensor) else float(s) * f


class AmbientLoss:
    r"""Ambient Diffusion loss: learn ``E[x | Ã x_t, Ã]`` from measurements ``y = A x`` only.

    Daras et al., "Ambient Diffusion", NeurIPS 2023 (arXiv 2305.19256), Eq. (3.2)/Thm 4.1;
    image-domain form from A-DPS, Aali et al., ICLR 2025 (arXiv 2403.08728).

    Each call draws ``Ã = A.subsample(δ)`` (every measured row kept w.p. ``1-δ``, protected
    rows ``keep`` always), builds the network input from Ã's data only::

        u = Ã^H (Ã y + s Ã η),   η ~ N(0, I) image-shaped       (= Ã^H Ã x_t, x_t = x + σ η)

    (PixelMask: ``u = M̃ ⊙ (y + s η)``; Fourier operators: ``Ã^H(ỹ + s ε)`` with ``ε = Ã η`` on
    Ã's rows), calls ``D = net(u, σ, mask=Ã.mask_channels())`` and scores it against the data:

        measurement space:  L = λ(σ) ‖P (A D − y)‖² / n_P
        image space (A-DPS): L = λ(σ) ‖A^H P (A D − y)‖² / (n_img · n_P / n_y)

    with ``P`` the projection on all measured rows of A, or with ``heldout=True`` on the rows of
    A that are **not** in Ã (their noise is independent of ``u``).
    ``n_P`` counts the scored real degrees of freedom (so samples with different sampling weigh
    alike).

    **Measurement noise.** With noisy ``y`` (σ_n' > 0, the noise per real image channel, see
    :func:`image_noise_sigma`) Ã's rows already carry noise of level σ_n'. The loss then draws
    σ from the log-normal truncated to ``σ > σ_n'`` and adds only ``s = √(σ² − σ_n'²)``, so the
    network is told the noise level its input really has; the prior is trained for σ ≥ σ_n'
    (samplers stop there). On Ã's rows the target's noise is also in the input, so plain scoring
    of all rows (``heldout=False``) would teach D to reproduce it. ``heldout=True`` scores only
    the rows outside Ã (exact, but fewer rows: a noisier gradient); ``heldout=None`` (default)
    scores every row and, on Ã's rows, compares ``(1 − a) A D + a Ã x_t`` with ``a = σ_n'²/σ²``
    (Tweedie, as in :class:`AmbientTweedieLoss`: exact when the measurement noise is white in
    the image domain, e.g. pixel masks; for multi-coil k-space an approximation whose error
    vanishes as σ ≫ σ_n'). Noiseless data: all rows, plain.

    **Range of Ã** (MRI priors that must accept users' masks): ``extra_acceleration = r > 1``
    draws, per sample, a target ratio ``ρ`` log-uniformly in ``[1/(1 − δ), r]`` and the δ that
    makes Ã keep about ``1/ρ`` of A's rows (so Ã spans accelerations from ~R to ~r·R);
    ``center_range = (lo, hi)`` protects, per sample, a centred block of ``c ~ U{lo..hi}`` lines
    (inside A's protected rows) instead of all of them — line masks only.

    **Weighting** (``weighting``; see ``docs/losses.md``): ``"edm"`` ``λ = (σ² + σ_d²)/(σ σ_d)²``;
    ``"floor"`` ``λ = (σ² + σ_d²)/((σ² + σ_f²) σ_d²)`` with ``σ_f = sigma_floor`` (default σ_n');
    ``"uncertainty"``: EDM2's learned per-σ uncertainty (Karras et al. 2024): the network returns
    ``u(σ)`` (``net(..., return_logvar=True)``, :class:`~ambient_imaging.networks.EDMPrecond` with
    ``logvar_channels``) and the loss is ``λ L / e^u + u`` with λ the floor weight, so every σ band
    contributes O(1) whatever error it cannot remove.

    After a call, ``last_sigma`` holds the drawn σ ``(B,)`` (trainer diagnostics per σ band).

    Args:
        delta: further-corruption probability δ ∈ (0, 1) (the smallest one with ``extra_acceleration``).
        keep: protected rows (``None``: operator default, e.g. MRI ACS; ``False``: none; or a bool tensor).
        space: ``"measurement"`` or ``"image"``.
        heldout: score only A's rows outside Ã (``None``: all rows, Tweedie-corrected on Ã's rows for noisy data).
        fresh_subsample: draw Ã afresh at every call (the theory). ``False``: Ã is a fixed,
            deterministic function of the sample — of ``meta[i][subsample_key]`` when present,
            else of a hash of ``y[i]`` — and of ``subsample_seed`` (the public Ambient code's behaviour).
        sigma_dist, sigma_data: noise-level distribution and σ_d.
        sigma_n: measurement noise per real image channel (``None``: from the operator; ``0``: ignore).
        weighting, sigma_floor: see above.
        extra_acceleration, center_range: see above.
    """

    def __init__(
        self,
        delta: float = 0.1,
        keep: Tensor | None | bool = None,
        space: str = "measurement",
        heldout: bool | None = None,
        fresh_subsample: bool = True,
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
        subsample_seed: int = 0,
        subsample_key: str = "index",
        sigma_n: float | None = None,
        weighting: str = "edm",
        sigma_floor: float | None = None,
        extra_acceleration: float | None = None,
        center_range: tuple[int, int] | None = None,
    ):
        if not 0.0 < float(delta) < 1.0:
            raise ValueError(f"AmbientLoss: delta must be in (0, 1), got {delta}")
        if space not in ("measurement", "image"):
            raise ValueError(f"AmbientLoss: space must be 'measurement' or 'image', got {space!r}")
        if keep is not None and keep is not False and not isinstance(keep, Tensor):
            raise TypeError(f"AmbientLoss: keep must be None, False or a bool tensor, got {type(keep).__name__}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"AmbientLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) >= 0):
            raise ValueError(f"AmbientLoss: sigma_n must be >= 0, got {sigma_n}")
        if sigma_floor is not None and not (math.isfinite(float(sigma_floor)) and float(sigma_floor) >= 0):
            raise ValueError(f"AmbientLoss: sigma_floor must be >= 0, got {sigma_floor}")
        if extra_acceleration is not None and not float(extra_acceleration) >= 1.0:
            raise ValueError(f"AmbientLoss: extra_acceleration must be >= 1, got {extra_acceleration}")
        if center_range is not None:
            lo, hi = (int(v) for v in center_range)
            if not 0 <= lo <= hi:
                raise ValueError(f"AmbientLoss: center_range must be (lo, hi) with 0 <= lo <= hi, got {center_range}")
            center_range = (lo, hi)
        self.delta = float(delta)
        self.keep = keep
        self.space = space
        self.heldout = None if heldout is None else bool(heldout)
        self.fresh_subsample = bool(fresh_subsample)
        self.sigma_dist = _check_sigma_dist(sigma_dist)
        self.sigma_data = _check_sigma_data(sigma_data)
        self.subsample_seed = int(subsample_seed)
        self.subsample_key = subsample_key
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.weighting = weighting
        self.sigma_floor = None if sigma_floor is None else float(sigma_floor)
        self.extra_acceleration = None if extra_acceleration is None else float(extra_acceleration)
        self.center_range = center_range
        self.last_sigma: Tensor | None = None
        self._image_like: dict[tuple, tuple[tuple[int, ...], torch.dtype]] = {}

    def _ranges(self, op: LinearOperator, b: int, generator: torch.Generator | None,
                seeds: list[int] | None) -> tuple[float | Tensor, Tensor | None | bool]:
        """Per-sample δ and protected rows for ``extra_acceleration`` / ``center_range``."""
        keep = self.keep
        if self.extra_acceleration is None and self.center_range is None:
            return self.delta, keep
        sub = _factor(op)
        if sub is None:
            raise TypeError(f"{type(op).__name__} has no subsampling rows")
        rows = sub.row_mask()
        rows = rows.expand(b, *rows.shape[1:]) if rows.shape[0] == 1 else rows
        if seeds is None:
            u = torch.rand(b, 2, generator=generator, device=rows.device, dtype=torch.float64)
        else:
            u = torch.stack([torch.rand(2, generator=torch.Generator().manual_seed(s ^ 0x5EED), dtype=torch.float64)
                             for s in seeds]).to(rows.device)
        base = sub.default_keep() if keep is None else (None if keep is False else keep)
        prot = None if base is None else torch.broadcast_to(base.to(rows.device).bool(), rows.shape) & rows
        if self.center_range is not None:
            if rows.ndim != 2:
                raise ValueError("AmbientLoss: center_range needs a line mask ((B, W) rows, e.g. Cartesian MRI)")
            lo, hi = self.center_range
            width = (lo + torch.floor(u[:, 1] * (hi - lo + 1))).clamp_max(hi).to(rows.device)
            w = rows.shape[-1]
            start = w // 2 - torch.div(width, 2, rounding_mode="floor")  # ESPIRiT's centred block
            col = torch.arange(w, device=rows.device)[None, :] - start[:, None]
            block = (col >= 0) & (col < width[:, None])
            prot = block & rows if prot is None else block & prot
        delta: float | Tensor = self.delta
        if self.extra_acceleration is not None and self.extra_acceleration > 1.0 / (1.0 - self.delta):
            n = rows.reshape(b, -1).sum(1).double()
            c = torch.zeros_like(n) if prot is None else prot.reshape(b, -1).sum(1).double()
            lo, hi = math.log(1.0 / (1.0 - self.delta)), math.log(self.extra_acceleration)
            ratio = torch.exp(lo + (hi - lo) * u[:, 0])
            keep_frac = (n / ratio - c) / (n - c).clamp_min(1.0)
            delta = (1.0 - keep_frac).clamp(self.delta, 0.95)
        return delta, (False if prot is None else prot)

    def further_corrupt(self, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LinearOperator:
        """Draw ``Ã`` for this batch (fresh, or deterministic per sample; see class doc)."""
        b = len(batch)
        seeds = None
        if not self.fresh_subsample:
            seeds = [_stable_seed(self.subsample_seed, k) for k in _sample_keys(batch, self.subsample_key)]
        delta, keep = self._ranges(batch.op, b, generator, seeds)
        return subsample_operator(batch.op, delta, b, generator, keep, seeds)

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        y, op = batch.y, batch.op
        b = y.shape[0]
        a_t = self.further_corrupt(batch, generator)
        rdt = _real_dtype(y)
        # image-shaped noise (the shape/dtype of Ã^H ỹ, cached per layout: one adjoint per call, not two)
        key = (type(op).__name__, tuple(y.shape), y.dtype, str(y.device))
        if key not in self._image_like:
            img = a_t.measurements_to_image(torch.zeros_like(y))
            self._image_like = {key: (tuple(img.shape[1:]), img.dtype)}
        shape, idt = self._image_like[key]
        shape_ref = torch.empty((b, *shape), dtype=idt, device=y.device)
        sigma_n = self.sigma_n if self.sigma_n is not None else image_noise_sigma(op, y, shape_ref)
        noisy = bool(torch.as_tensor(sigma_n).max() > 0)
        if noisy:
            sigma = self.sigma_dist.sample_truncated(b, lower=sigma_n, generator=generator, device=y.device, dtype=rdt)
            sn = torch.as_tensor(sigma_n, device=y.device, dtype=rdt).reshape(-1).expand(b)
            s = torch.sqrt((sigma**2 - sn**2).clamp_min(0))
        else:
            sigma = _sample_sigma(self.sigma_dist, b, shape_ref, generator)
            sn, s = torch.zeros_like(sigma), sigma
        self.last_sigma = sigma.detach()
        eta = _randn_image(shape_ref, generator)
        # u = Ã^H(ỹ + s Ã η): one forward, one adjoint (the noise lives exactly on Ã's rows)
        y_in = a_t.restrict(y + _b4(s, y.ndim).to(rdt) * a_t.forward(eta))  # Ã x_t (Ã's rows only)
        u = a_t.measurements_to_image(y_in)
        logvar = None
        if self.weighting == "uncertainty":
            out = net(u, sigma, mask=a_t.mask_channels(), return_logvar=True)
            if not isinstance(out, tuple):
                raise TypeError("AmbientLoss(weighting='uncertainty') needs a network that returns (D, logvar) "
                                "with return_logvar=True (EDMPrecond with logvar_channels > 0)")
            d, logvar = out
        else:
            d = net(u, sigma, mask=a_t.mask_channels())

        pred = op.forward(d)
        if self.heldout is None and noisy:
            # Tweedie on Ã's rows (their target noise is in the input): E[ỹ | u] = (1 − a) Ã D + a Ã x_t,
            # a = σ_n'²/σ² — the minimiser stays D = E[x | u] while every measured row is scored
            a = _b4((sn**2 / sigma**2).to(rdt), y.ndim)
            pred = pred + a_t.restrict(a * (y_in - pred))
        r = op.restrict(pred - y)
        support = op.restrict(torch.ones_like(y))
        if self.heldout:
            r = r - a_t.restrict(r)
            support = support - a_t.restrict(support)
        n_p = _dof(support)
        if self.space == "measurement":
            per = _sq(r) / n_p.clamp_min(1)
        else:
            img = op.adjoint(r)
            n_img = img[0].numel() * (2 if img.is_complex() else 1)
            frac = n_p / float(y[0].numel() * (2 if y.is_complex() else 1))
            per = _sq(img) / (n_img * frac).clamp_min(1.0)
        if logvar is not None:  # a sample with nothing to score (no held-out row) must not train u(σ)
            logvar = logvar.reshape(-1) * (n_p > 0).to(logvar.dtype)
        return _weighted(per.to(sigma.dtype), sigma, self.sigma_data, self.weighting, self.sigma_floor, sn, logvar,
                         self)


def _weighted(per: Tensor, sigma: Tensor, sigma_data: float, weighting: str, sigma_floor: float | None,
              sigma_n: Tensor | float, logvar: Tensor | None, owner: Any = None) -> Tensor:
    """``λ(σ) · per`` for the weighting (``"uncertainty"``: ``λ per / e^u + u``).

    ``owner.last_weighted`` gets ``λ(σ) · per`` (detached, before the learned uncertainty): the
    trainer's per-σ-band loss columns.
    """
    floor: float | Tensor = 0.0
    if weighting in ("floor", "uncertainty"):
        floor = sigma_floor if sigma_floor is not None else (sigma_n if weighting == "floor" else 0.0)
    w = floor_weight(sigma, sigma_data, floor)
    if owner is not None:
        owner.last_weighted = (w * per).detach()
    if logvar is None:
        return w * per
    lv = logvar.reshape(-1).to(per.dtype)
    return w * per * torch.exp(-lv) + lv


# =========================================================================== noisy data
class AmbientTweedieLoss:
    r"""Ambient Tweedie loss for noisy data at known σ_n, trained only at σ > σ_n.

    Daras, Dimakis, Daskalakis, "Consistent Diffusion Meets Tweedie", ICML 2024 (arXiv 2404.10177);
    Daras et al., "How much is a noisy image worth?" (arXiv 2411.02780). With ``y = x + σ_n ε``::

        x_t = y + √(σ² − σ_n²) η                      (a sample of x + σ η)
        L = w(σ) ‖(1 − σ_n²/σ²) D(x_t, σ) + (σ_n²/σ²) x_t − y‖²

    Tweedie: ``E[y | x_t] = (1 − σ_n²/σ²) E[x | x_t] + (σ_n²/σ²) x_t``, so the minimiser D is
    ``E[x | x_t]`` of the CLEAN distribution. σ is drawn from the log-normal conditioned on
    σ > σ_n (exact truncation by inverse CDF, :meth:`LogNormalSigma.sample_truncated`).

    Weights: ``weight="edm"``: ``w = λ(σ)``; ``weight="tweedie"``: ``w = λ(σ) · min(σ⁴/(σ² − σ_n²)²,
    s_max)``, which undoes the factor ``(1 − σ_n²/σ²)²`` in front of the error of D so that D's error
    is weighted as in EDM (uncapped when ``s_max`` is None; it diverges as σ → σ_n).

    Measurements must be images (GaussianNoise, or PixelMask with noise: then x_t and the loss
    are restricted to the measured pixels and the network sees the mask). ``sigma_n=None`` reads
    σ_n from ``batch.op.noise_sigma`` (float or per-sample ``(B,)``).
    """

    def __init__(
        self,
        sigma_n: float | None,
        s_max: float | None = None,
        weight: str = "edm",
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
        consistency: ConsistencyLoss | None = None,
        consistency_weight: float = 1.0,
    ):
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) >= 0):
            raise ValueError(f"AmbientTweedieLoss: sigma_n must be >= 0, got {sigma_n}")
        if weight not in ("edm", "tweedie"):
            raise ValueError(f"AmbientTweedieLoss: weight must be 'edm' or 'tweedie', got {weight!r}")
        if s_max is not None and not float(s_max) > 0:
            raise ValueError(f"AmbientTweedieLoss: s_max must be > 0, got {s_max}")
        if consistency is not None and not isinstance(consistency, ConsistencyLoss):
            raise TypeError("AmbientTweedieLoss: consistency must be a ConsistencyLoss or None")
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.s_max = None if s_max is None else float(s_max)
        self.weight = weight
        self.sigma_dist = _check_sigma_dist(sigma_dist)
        self.sigma_data = _check_sigma_data(sigma_data)
        self.consistency = consistency
        self.consistency_weight = float(consistency_weight)

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        y, op = batch.y, batch.op
        _require_image_domain(op, "AmbientTweedieLoss")
        b = y.shape[0]
        sigma_n = _noise_level(self.sigma_n, op, b, y)
        sigma = self.sigma_dist.sample_truncated(
            b, lower=sigma_n, generator=generator, device=y.device, dtype=_real_dtype(y)
        )
        self.last_sigma = sigma.detach()
        sn = torch.as_tensor(sigma_n, device=y.device, dtype=sigma.dtype).reshape(-1).expand(b)
        extra = torch.sqrt((sigma**2 - sn**2).clamp_min(0))
        x_t = op.restrict(y + _b4(extra, y.ndim) * _randn_image(y, generator))
        mask = op.mask_channels()
        d = net(x_t, sigma, mask=mask)
        a = _b4(sn**2 / sigma**2, y.ndim)
        r = op.restrict((1 - a) * d + a * x_t - y)
        per = _sq(r) / _dof(op.restrict(torch.ones_like(y))).clamp_min(1)
        w = edm_weight(sigma, self.sigma_data)
        if self.weight == "tweedie":
            boost = sigma**4 / (sigma**2 - sn**2).clamp_min(torch.finfo(sigma.dtype).tiny) ** 2
            if self.s_max is not None:
                boost = boost.clamp_max(self.s_max)
            w = w * boost
        loss = w * per.to(w.dtype)
        if self.consistency is not None and self.consistency_weight > 0:
            loss = loss + self.consistency_weight * self.consistency(net, batch, generator)
        return loss


def _noise_level(sigma_n: float | None, op: LinearOperator, b: int, like: Tensor) -> float | Tensor:
    if sigma_n is not None:
        return sigma_n
    s = op.noise_sigma
    if isinstance(s, Tensor):
        if s.numel() == 1:
            return float(s)
        if s.numel() != b:
            raise ValueError(f"operator noise_sigma has shape {tuple(s.shape)}; need a float or a ({b},) tensor")
        return s.reshape(b).to(device=like.device, dtype=_real_dtype(like))
    return float(s)


class ConsistencyLoss:
    r"""Consistency loss for σ < σ_n (Daras, Dimakis, Daskalakis, ICML 2024, arXiv 2404.10177).

    The ideal denoiser is a martingale along the reverse process:
    ``D(x_t, σ_t) = E[D(x_s, σ_s) | x_t]`` for σ_s < σ_t. Only σ ≥ σ_n can be learned from the
    data (Tweedie); this loss propagates that knowledge below σ_n. Per sample:

    1. σ_t ~ log-normal | σ_t > σ_n, ``x_t = y + √(σ_t² − σ_n²) η`` (a sample at level σ_t);
       σ_s ~ log-normal | ``sigma_floor`` < σ_s < σ_n.
    2. Two independent stochastic (DDPM-ancestral, VE) chains of ``n_steps`` steps from
       (x_t, σ_t) to σ_s with the current network, without gradient:
       ``x ← D + (σ'²/σ²)(x − D) + σ' √(1 − σ'²/σ²) z`` on a geometric σ grid.
    3. Unbiased product estimator of ``‖D(x_t, σ_t) − E[D(x_s, σ_s)]‖²``::

           L = λ(σ_t) ⟨D_t − D_s¹, D_t − D_s²⟩ / dof

       with gradients through D_s¹, D_s² and D_t (as in the authors' code; ``detach_high=True``
       stops the gradient into D_t, which the Tweedie loss already trains). It can be negative for
       a single sample; its expectation is the squared consistency error.

    Image-space measurements only (as :class:`AmbientTweedieLoss`; masked pixels are restricted).
    Optional in training; it costs ``n_steps + 2`` extra network evaluations per sample.
    """

    def __init__(
        self,
        sigma_n: float | None,
        n_steps: int = 4,
        sigma_floor: float = 0.002,
        detach_high: bool = False,
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
    ):
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) > 0):
            raise ValueError(f"ConsistencyLoss: sigma_n must be > 0, got {sigma_n}")
        if int(n_steps) < 1:
            raise ValueError(f"ConsistencyLoss: n_steps must be >= 1, got {n_steps}")
        if not float(sigma_floor) > 0 or (sigma_n is not None and float(sigma_floor) >= float(sigma_n)):
            raise ValueError(f"ConsistencyLoss: need 0 < sigma_floor < sigma_n, got {sigma_floor}")
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.n_steps = int(n_steps)
        self.sigma_floor = float(sigma_floor)
        self.detach_high = bool(detach_high)
        self.sigma_dist = _check_sigma_dist(sigma_dist)
        self.sigma_data = _check_sigma_data(sigma_data)

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        y, op = batch.y, batch.op
        _require_image_domain(op, "ConsistencyLoss")
        b = y.shape[0]
        sigma_n = _noise_level(self.sigma_n, op, b, y)
        rdt = _real_dtype(y)
        kw = dict(generator=generator, device=y.device, dtype=rdt)
        sig_t = self.sigma_dist.sample_truncated(b, lower=sigma_n, **kw)
        sig_s = self.sigma_dist.sample_truncated(b, lower=self.sigma_floor, upper=sigma_n, **kw)
        sn = torch.as_tensor(sigma_n, device=y.device, dtype=rdt).reshape(-1).expand(b)
        x_t = op.restrict(y + _b4(torch.sqrt((sig_t**2 - sn**2).clamp_min(0)), y.ndim) * _randn_image(y, generator))
        mask = op.mask_channels()
        d_t = net(x_t, sig_t, mask=mask)

        mask2 = None if mask is None else torch.cat([mask.expand(b, *mask.shape[1:])] * 2)
        with torch.no_grad():
            x = torch.cat([x_t, x_t])
            ratio = (sig_s / sig_t) ** (1.0 / self.n_steps)
            cur = torch.cat([sig_t, sig_t])
            for _ in range(self.n_steps):
                nxt = cur * torch.cat([ratio, ratio])
                d = net(x, cur, mask=mask2)
                c = _b4(nxt**2 / cur**2, x.ndim)
                x = d + c * (x - d) + _b4(nxt, x.ndim) * torch.sqrt((1 - c).clamp_min(0)) * _randn_image(x, generator)
                x = op.restrict(x) if op.batch_size == 1 else torch.cat([op.restrict(x[:b]), op.restrict(x[b:])])
                cur = nxt
        d_s = net(x, torch.cat([sig_s, sig_s]), mask=mask2)
        d1, d2 = d_s[:b], d_s[b:]
        hi = d_t.detach() if self.detach_high else d_t
        e1, e2 = op.restrict(hi - d1), op.restrict(hi - d2)
        prod = (torch.conj(e1) * e2).real if e1.is_complex() else e1 * e2
        prod = prod.reshape(b, -1).sum(dim=1)
        n = _dof(op.restrict(torch.ones_like(y))).clamp_min(1)
        return edm_weight(sig_t, self.sigma_data) * prod / n


# =========================================================================== baselines
class OracleLoss:
    r"""Plain EDM loss on the clean images ``batch.reference`` (evaluation / upper-bound baseline only).

    ``L = λ(σ) ‖D(x + σ η, σ) − x‖² / dof`` (Karras et al. 2022, Eq. 2 with Table 1 weighting).
    ``mask="ones"`` feeds all-ones mask channels (shaped like ``op.mask_channels()``) to networks
    that expect a mask.
    """

    def __init__(self, sigma_dist: LogNormalSigma | None = None, sigma_data: float = 0.5, mask: str = "none",
                 weighting: str = "edm"):
        self.sigma_dist = _check_sigma_dist(sigma_dist)
        self.sigma_data = _check_sigma_data(sigma_data)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"OracleLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.last_sigma: Tensor | None = None
        self.mask = _check_mask_mode(mask, ("none", "ones"))

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        if batch.reference is None:
            raise ValueError(
                "OracleLoss needs clean images in batch.reference; it is an evaluation/baseline loss and real "
                "measurement data has none (use AmbientLoss or AmbientTweedieLoss)"
            )
        x = batch.reference
        return _edm_on_images(net, x, _mask_for(batch.op, self.mask, x, net), self.sigma_dist,
                              self.sigma_data, generator, self.weighting, self)


class NaiveLoss:
    r"""Naive baseline: treat ``x̂ = A.measurements_to_image(y)`` (masked / zero-filled image) as clean.

    ``L = λ(σ) ‖D(x̂ + σ η, σ) − x̂‖² / dof``. Learns the distribution of corrupted images.
    ``mask``: ``"none"`` (no mask to the network), ``"ones"``, or ``"operator"`` (A's mask channels).
    Also the right loss for *clean* samples (A = identity) in a :class:`MixtureLoss`.
    """

    def __init__(self, sigma_dist: LogNormalSigma | None = None, sigma_data: float = 0.5, mask: str = "none",
                 weighting: str = "edm"):
        self.sigma_dist = _check_sigma_dist(sigma_dist)
        self.sigma_data = _check_sigma_data(sigma_data)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"NaiveLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.last_sigma: Tensor | None = None
        self.mask = _check_mask_mode(mask, ("none", "ones", "operator"))

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        x = batch.op.measurements_to_image(batch.y).detach()
        return _edm_on_images(net, x, _mask_for(batch.op, self.mask, x, net), self.sigma_dist,
                              self.sigma_data, generator, self.weighting, self)


class MixtureLoss:
    """Mixture of clean and corrupted samples: ``meta[i][key]`` truthy selects ``clean_loss``.

    Typical use: ``MixtureLoss(NaiveLoss(mask="ones"), AmbientLoss(...))`` — for clean samples
    ``A^H y`` is the clean image, so the plain EDM loss applies. Returns the (B,) per-sample losses
    in the batch order. Samples without the key are corrupted.
    """

    def __init__(self, clean_loss: Any, corrupted_loss: Any, key: str = "clean"):
        if not callable(clean_loss) or not callable(corrupted_loss):
            raise TypeError("MixtureLoss: clean_loss and corrupted_loss must be losses (callables)")
        self.clean_loss = clean_loss
        self.corrupted_loss = corrupted_loss
        self.key = key

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        b = len(batch)
        flags = [bool(batch.meta[i].get(self.key, False)) if i < len(batch.meta) else False for i in range(b)]
        out: Tensor | None = None
        for want, loss in ((True, self.clean_loss), (False, self.corrupted_loss)):
            idx = [i for i in range(b) if flags[i] == want]
            if not idx:
                continue
            part = loss(net, _select(batch, idx), generator)
            if out is None:
                out = part.new_zeros(b)
            out = out.index_copy(0, torch.tensor(idx, device=part.device), part)
        assert out is not None
        return out


def _select(batch: MeasurementBatch, idx: list[int]) -> MeasurementBatch:
    if len(idx) == len(batch):
        return batch
    t = torch.tensor(idx, device=batch.y.device)
    op = batch.op if batch.op.batch_size == 1 else batch.op[t]
    ref = batch.reference[t] if isinstance(batch.reference, Tensor) else batch.reference
    meta = [batch.meta[i] for i in idx] if batch.meta else []
    return MeasurementBatch(batch.y[t], op, batch.scale[t.to(batch.scale.device)], meta, ref)


# =========================================================================== augmentation
def _dihedral(x: Tensor, k: int) -> Tensor:
    """Element ``k`` ∈ {0..7} of the dihedral group on the last two dims: rot90^(k mod 4), then flip W if k ≥ 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _augment_op(op: LinearOperator, ks: list[int]) -> LinearOperator:
    b = len(ks)
    if isinstance(op, PixelMask):
        m = op.mask.expand(b, *op.mask.shape[1:]) if op.mask.shape[0] == 1 else op.mask
        return op.replace(mask=torch.stack([_dihedral(m[i], k) for i, k in enumerate(ks)]))
    if isinstance(op, GaussianNoise):
        return op  # the identity commutes with every geometric transform
    if isinstance(op, ComposedOperator) and getattr(op.outer, "elementwise", False):
        return ComposedOperator(_augment_op(op.outer, ks), _augment_op(op.inner, ks))
    raise NotImplementedError(
        f"augment: {type(op).__name__} is not supported. Flips/rotations are implemented exactly for image-space "
        "operators (PixelMask, GaussianNoise and their compositions). For k-space or uv-plane operators an image "
        "flip is a conjugate reflection of the sampling pattern (with a one-sample shift for even sizes); it is "
        "not implemented — train without augmentation."
    )


def augment(
    batch: MeasurementBatch,
    generator: torch.Generator | None = None,
    rotations: bool = True,
    flips: bool = True,
) -> MeasurementBatch:
    """Random flips / 90° rotations applied to ``y`` AND the operator together (per sample).

    For image-space operators ``A(T x) = T(A x)`` holds exactly with the transformed mask, so
    the augmented pair is a valid measurement of the transformed image (no unmeasured pixel
    leaks). 90° rotations need square images (otherwise only 180° is used). ``batch.reference``
    (evaluation only) is transformed alike; ``meta[i]["augment"]`` records the group element.
    Raises NotImplementedError for operators where this is not exact (MRI, interferometry).
    """
    b, h, w = batch.y.shape[0], batch.y.shape[-2], batch.y.shape[-1]
    rots = ([0, 1, 2, 3] if h == w else [0, 2]) if rotations else [0]
    allowed = [r + 4 * f for f in ([0, 1] if flips else [0]) for r in rots]
    pick = torch.randint(len(allowed), (b,), generator=generator, device=batch.y.device).tolist()
    ks = [allowed[p] for p in pick]
    op = _augment_op(batch.op, ks)
    y = torch.stack([_dihedral(batch.y[i], k) for i, k in enumerate(ks)])
    ref = batch.reference
    if isinstance(ref, Tensor):
        ref = torch.stack([_dihedral(ref[i], k) for i, k in enumerate(ks)])
    meta = [dict(batch.meta[i] if i < len(batch.meta) else {}, augment=k) for i, k in enumerate(ks)]
    return MeasurementBatch(y, op, batch.scale, meta, ref)
