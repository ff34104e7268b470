"""Classical reconstructions behind the samplers' interface: ``baseline(y, op) -> Reconstruction``.

* :class:`ZeroFilled`: ``A^H y`` as the network would see it
  (``op.measurements_to_image``): the zero-filled, SENSE-1 coil-combined
  image for multi-coil MRI, the unit-peak-beam dirty image for interferometry,
  the masked image for inpainting.
* :class:`SENSE`: least squares by conjugate gradients on ``(A^H A + λ I) x = A^H y``
  (Pruessmann et al. 2001, CG-SENSE).
* :class:`L1Wavelet`: compressed sensing with an ℓ1 penalty on Daubechies
  wavelets, sigpy's ``L1WaveletRecon`` (Lustig et al. 2007); ``choose_lambda``
  picks λ on a validation slice.

Scale and noise (SENSE, L1Wavelet): results do not depend on the units of ``y`` (raw scanner
amplitudes of 1e-6 or 1e3 give the same image up to that factor). Regularisation is expressed
relative to the data: ``s`` = :func:`data_scale` (99th percentile of ``|A^H y|``) and the noise
std ``σ`` = :func:`noise_level` (``op.noise_sigma``, else estimated from the outermost readout
rows of multi-coil k-space). By default λ follows the noise: with unregularised least squares,
CG-SENSE and ℓ1-wavelet amplify the noise of undersampled in-vivo data (measured on simulated
8-coil R=4 k-space at SNR 8: CG-SENSE 30 iterations 10.4 dB, ℓ1 (λ=1e-3 in O(1) units) 13.8 dB,
zero-filled 26.0 dB); with the defaults 26.9 and 29.4 dB.
* :class:`RMLTV`: regularised maximum likelihood for interferometry:
  ``min_{x ≥ 0} ½ Σ w |A x − y|² / Σ w + λ TV_ε(x)`` with accelerated
  projected gradient (FISTA; Beck & Teboulle 2009) on a smoothed TV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator
from ambient_imaging.operators.base import real_dtype_like

from .cg import batch_inner, conjugate_gradient
from .denoiser import Reconstruction
from .method import Method

__all__ = ["ZeroFilled", "SENSE", "L1Wavelet", "TV", "RMLTV", "choose_lambda", "data_scale", "noise_level",
           "SENSE_GRID", "SPARSE_GRID", "LAMDA_RULES"]


def _single(x: Tensor) -> Reconstruction:
    return Reconstruction(x[:, None], nfe=0)


@dataclass
class ZeroFilled(Method):
    """``A^H y`` (``op.measurements_to_image``): zero-filled / dirty image."""

    name = "zero-filled"
    is_fit = False  # the dirty image is reported, not judged as a fit

    def __call__(self, y: Tensor, op: LinearOperator) -> Reconstruction:
        with torch.no_grad():
            rec = _single(op.measurements_to_image(y))
        rec.info["method"] = "zero-filled"
        return rec


def data_scale(y: Tensor, op: LinearOperator) -> Tensor:
    """Per-measurement scale ``(B,)``: the 99th percentile of ``|A^H y|`` (1 where that is 0).

    The unit in which the baselines' relative ``lamda`` is expressed.
    """
    with torch.no_grad():
        img = op.adjoint(y).abs().reshape(y.shape[0], -1).to(torch.float64)
    s = torch.quantile(img, 0.99, dim=1) if img.shape[1] <= 16_000_000 else img.amax(dim=1)
    return torch.where(s > 0, s, torch.ones_like(s)).cpu()


def noise_level(y: Tensor, op: LinearOperator) -> Tensor:
    """Noise std ``σ`` (``E|ε|² = σ²``) per measurement ``(B,)``, in the units of ``y``; 0 when unknown.

    ``op.noise_sigma`` when it is set (> 0). Otherwise, for multi-coil MRI k-space
    ``(B, Nc, H, W)``, a robust estimate from the outermost ``H/32`` readout rows of the measured
    entries (nearly signal-free with readout oversampling): ``σ = √2 · 1.4826 · median|Re, Im|``.
    """
    b = y.shape[0]
    sig = getattr(op, "noise_sigma", 0.0)
    sig_t = torch.as_tensor(sig, dtype=torch.float64).reshape(-1).cpu()
    if sig_t.numel() == 1:
        sig_t = sig_t.expand(b)
    if sig_t.numel() == b and bool((sig_t > 0).all()):
        return sig_t.clone()
    out = torch.zeros(b, dtype=torch.float64)
    if getattr(op, "sens_maps", None) is None or y.ndim != 4 or not y.is_complex():
        return out
    with torch.no_grad():
        measured = op.restrict(torch.ones_like(y)).abs() > 0
        h = y.shape[-2]
        e = max(1, h // 32)
        rows = torch.cat([torch.arange(e), torch.arange(h - e, h)]).to(y.device)
        for i in range(b):
            yi, mi = y[i][:, rows], measured[i if measured.shape[0] > 1 else 0][:, rows]
            v = yi[mi]
            if v.numel():
                parts = torch.cat([v.real, v.imag]).abs().to(torch.float64)
                out[i] = math.sqrt(2.0) * 1.4826 * float(parts.median())
    return out


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    return t.to(device=like.device, dtype=real_dtype_like(like.dtype)).reshape(-1, *([1] * (like.ndim - 1)))


#: λ grid of the k-space cross-validation rule, CG-SENSE (Tikhonov weight, ``A^H A`` has eigenvalues in [0, 1])
SENSE_GRID = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
#: λ grid of the k-space cross-validation rule, ℓ1-wavelet and TV (relative to :func:`data_scale`)
SPARSE_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
#: the rules that set λ when ``lamda`` is not given
LAMDA_RULES = ("cv", "noise")


def _check_rule(cls: str, lamda: float | None, rule: str) -> None:
    if lamda is not None and not (math.isfinite(lamda) and lamda >= 0):
        raise ValueError(f"{cls}: lamda must be a finite number >= 0, got {lamda}")
    if rule not in LAMDA_RULES:
        raise ValueError(f"{cls}: rule must be one of {', '.join(LAMDA_RULES)}, got {rule!r}")


@dataclass
class SENSE(Method):
    """CG-SENSE: ``(A^H A + λ I) x = A^H y`` by batched conjugate gradients (any number of map sets).

    ``lamda``: Tikhonov weight λ (dimensionless: ``A^H A`` has no units, so the result scales
    with ``y`` whatever λ); then ``max_iter`` iterations (30). ``None`` (default): chosen from the
    data by ``rule``:

    * ``"cv"`` (default): k-space cross-validation (:mod:`ambient_imaging.sampling.lamda_cv`):
      the measured non-ACS lines are dealt into 5 folds of 20 %; holding out each in turn, CG runs
      on the rest for every λ of ``grid`` and every iteration count up to ``max_iter``, and the pair
      whose images best predict the held-out lines (mean over the folds) is used on all the data.
      Plain CG on undersampled normal equations amplifies
      noise with every iteration (semi-convergence): the iteration count is a regulariser too.
    * ``"noise"``: ``λ = noise_factor · σ / s`` (σ = :func:`noise_level`, s = :func:`data_scale`),
      ``max_iter`` iterations (the rule before cross-validation; tuned on simulated data only).
    """

    name = "sense"
    kinds = frozenset({"mri"})
    options = frozenset({"lamda"})

    max_iter: int = 30
    tol: float = 1e-6
    lamda: float | None = None
    noise_factor: float = 0.5
    rule: str = "cv"
    grid: tuple[float, ...] = SENSE_GRID
    holdout: float = 0.2
    folds: int = 5

    def lamdas(self, y: Tensor, op: LinearOperator) -> Tensor:
        """The λ of the ``"noise"`` rule (or the given one) for each measurement ``(B,)``."""
        _check_rule("SENSE", self.lamda, self.rule)
        if self.lamda is not None:
            return torch.full((y.shape[0],), float(self.lamda), dtype=torch.float64)
        return self.noise_factor * noise_level(y, op) / data_scale(y, op)

    def cross_validate(self, y: Tensor, op: LinearOperator) -> tuple[float, int, dict[str, float]]:
        """``(λ, iterations, {"λ@n": held-out error})`` chosen by k-space cross-validation."""
        from .lamda_cv import cg_path, prediction_error, split_rows

        errors: dict[str, float] = {}
        for fold in range(self.folds):
            split = split_rows(y, op, self.holdout, fold=fold)
            rhs = split.fit.adjoint(split.y_fit)
            for lam in self.grid:
                path = cg_path(lambda v, lam=lam, fit=split.fit: fit.normal(v) + lam * v, rhs, self.max_iter)
                for n, x in enumerate(path, start=1):
                    key = f"{lam:g}@{n}"
                    errors[key] = errors.get(key, 0.0) + float(prediction_error(split, x).mean()) / self.folds
        key = min(errors, key=errors.get)
        lam_s, n_s = key.split("@")
        return float(lam_s), int(n_s), errors

    def __call__(self, y: Tensor, op: LinearOperator) -> Reconstruction:
        info: dict = {}
        with torch.no_grad():
            lam = None
            if self.lamda is None and self.rule == "cv" and _cv_possible(op, info):
                lam_v, iters, errors = self.cross_validate(y, op)
                info["cv_errors"] = errors
                if errors[f"{lam_v:g}@{iters}"] < CV_INFORMATIVE:
                    lam = torch.full((y.shape[0],), lam_v, dtype=torch.float64)
                else:  # no candidate predicts the held-out lines better than zero does: CV says nothing
                    info.update(rule="noise", lamda_note=f"k-space cross-validation was uninformative (best held-out "
                                f"error {errors[f'{lam_v:g}@{iters}']:.3f} of predicting zero): the noise rule is used")
            if lam is None:
                lam, iters = self.lamdas(y, op), self.max_iter
            rhs = op.adjoint(y)
            lam_b = _per_sample(lam, rhs)
            x, it = conjugate_gradient(lambda v: op.normal(v) + lam_b * v, rhs, max_iter=iters, tol=self.tol)
        rec = _single(x)
        rec.info.update(method="sense", cg_iterations=it, lamda=lam.tolist(),
                        lamda_rule="given" if self.lamda is not None else info.pop("rule", self.rule), **info)
        return rec


#: a cross-validated choice counts only when its held-out error (relative to ``‖y_held‖²``, i.e. to predicting
#: zero) is below this; at R = 8 on a real scan every CG-SENSE candidate scored > 1 and the "best" (1 iteration,
#: λ 0.1) fell below zero-filled (20.04 vs 20.44 dB)
CV_INFORMATIVE = 0.98


def _cv_possible(op: LinearOperator, info: dict) -> bool:
    """Whether k-space cross-validation can run (rows outside the ACS exist); otherwise the ``"noise"``
    rule is used and ``info`` says why."""
    from .lamda_cv import can_hold_out

    if can_hold_out(op):
        return True
    info.update(rule="noise", lamda_note="every measured line is an ACS line: nothing to hold out for "
                "cross-validation; λ from the noise level")
    return False


def _sens_maps(op: LinearOperator) -> Tensor:
    maps = getattr(op, "sens_maps", None)
    if maps is None:
        raise TypeError(f"the sparse MRI baselines need a multi-coil MRI operator with sens_maps, got {op!r}")
    return maps


@dataclass
class L1Wavelet(Method):
    """ℓ1-wavelet compressed sensing (sigpy's ``L1WaveletRecon``) for Cartesian multi-coil MRI.

    Solves ``min_x ½‖M F Σ_m S_m x_m − y/s‖² + λ ‖Ψ x‖₁`` (``Ψ``: ``wave_name`` wavelets of each of
    the ``M`` image components, one per set of coil maps; :mod:`ambient_imaging.sampling.sparse_mri`)
    and returns ``s x``, where ``s`` = :func:`data_scale` (99th percentile of ``|A^H y|``): ``lamda``
    is **relative to the data's scale** and the result does not depend on the units of ``y``.
    ``lamda=None`` (default) chooses it from the data by ``rule``: ``"cv"`` (default) — k-space
    cross-validation over ``grid`` (:mod:`ambient_imaging.sampling.lamda_cv`: the λ whose images best
    predict held-out measured lines, 20 % at a time, ``folds`` times); ``"noise"`` — ``λ = noise_factor · σ / s``
    (σ = :func:`noise_level`), or ``default_lamda`` when the noise is unknown (0).
    :func:`choose_lambda` tunes it against a reference (validation data, or an oracle in
    benchmarks). Runs on CPU with sigpy, one slice at a time.
    """

    name = "l1-wavelet"
    kinds = frozenset({"mri"})
    options = frozenset({"lamda"})
    normalised = True  # λ is relative to O(1) images

    lamda: float | None = None
    max_iter: int = 100
    wave_name: str = "db4"
    noise_factor: float = 0.25
    default_lamda: float = 1e-3
    rule: str = "cv"
    grid: tuple[float, ...] = SPARSE_GRID
    holdout: float = 0.2
    folds: int = 2
    regulariser: str = "l1-wavelet"

    def lamdas(self, y: Tensor, op: LinearOperator) -> Tensor:
        """The relative λ of the ``"noise"`` rule (or the given one) for each measurement ``(B,)``."""
        _check_rule(type(self).__name__, self.lamda, self.rule)
        if self.lamda is not None:
            return torch.full((y.shape[0],), float(self.lamda), dtype=torch.float64)
        rel = self.noise_factor * noise_level(y, op) / data_scale(y, op)
        return torch.where(rel > 0, rel, torch.full_like(rel, self.default_lamda))

    def solve(self, y: Tensor, op: LinearOperator, lamda: Tensor | float) -> Tensor:
        """The regularised image ``(B, M, H, W)`` of ``y`` for the relative ``lamda`` (a float or ``(B,)``)."""
        from .sparse_mri import SOLVERS

        maps, mask = _sens_maps(op), op.mask_channels()
        if mask is None:
            raise TypeError(f"{type(self).__name__}: {op!r} exposes no k-space mask (mask_channels)")
        scale = data_scale(y, op)
        lam = torch.as_tensor(lamda, dtype=torch.float64).reshape(-1).expand(y.shape[0])
        out = []
        for b in range(y.shape[0]):
            # single precision (as BART): the data's own precision; twice as fast as complex128
            mps = maps[b if maps.shape[0] > 1 else 0].detach().cpu().numpy().astype(np.complex64)
            w = mask[b if mask.shape[0] > 1 else 0, 0].detach().cpu().numpy().astype(np.float32)
            yb = (y[b].detach().cpu().numpy() / float(scale[b])).astype(np.complex64)
            if yb.shape != mps.shape[-3:]:
                raise ValueError(f"{type(self).__name__}: k-space {yb.shape} does not match coil maps {mps.shape}")
            img = SOLVERS[self.regulariser](yb, mps, w, float(lam[b]), self.max_iter, self.wave_name)
            img = torch.as_tensor(np.asarray(img) * float(scale[b])).to(device=y.device, dtype=y.dtype)
            out.append(img if img.ndim == 3 else img[None])
        return torch.stack(out)

    def __call__(self, y: Tensor, op: LinearOperator) -> Reconstruction:
        info: dict = {}
        if self.lamda is None and self.rule == "cv" and _cv_possible(op, info):
            from .lamda_cv import cross_validate

            best, errors = cross_validate(y, op, self.solve, self.grid, self.holdout, folds=self.folds)
            lam = torch.full((y.shape[0],), best, dtype=torch.float64)
            info["cv_errors"] = {f"{k:g}": v for k, v in errors.items()}
        else:
            lam = self.lamdas(y, op)
        rec = _single(self.solve(y, op, lam))
        rec.info.update(method=self.name, lamda=lam.tolist(), scale=data_scale(y, op).tolist(),
                        lamda_rule="given" if self.lamda is not None else info.pop("rule", self.rule), **info)
        return rec


@dataclass
class TV(L1Wavelet):
    """Total-variation compressed sensing (ℓ1 of the finite differences along both image axes, ADMM:
    :func:`~ambient_imaging.sampling.sparse_mri.solve_tv`, converged in its 100 iterations), any number of
    map sets.

    The same data scaling, λ rules (k-space cross-validation by default) and options as
    :class:`L1Wavelet`; ``wave_name`` is unused.
    """

    name = "tv"
    regulariser: str = "tv"


def choose_lambda(
    y: Tensor,
    op: LinearOperator,
    reference: Tensor,
    grid: Sequence[float] = (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    max_iter: int = 100,
    crop: int | tuple[int, int] | None = None,
    method: type[L1Wavelet] | type[SENSE] | None = None,
) -> tuple[float, dict[float, float]]:
    """Grid search for a baseline's ``lamda`` maximising PSNR (magnitude) against ``reference``
    (validation data, or the oracle rows of a benchmark); ``method``: :class:`L1Wavelet` (default),
    :class:`TV` or :class:`SENSE`.

    ``grid`` values are relative to the data's scale (:func:`data_scale`) for the sparse methods, so
    the best value carries over to data in other units. Several sets of maps: the image is the
    root-sum-of-squares over its components. Returns ``(best lamda, {lamda: psnr})``.
    """
    from ambient_imaging.metrics import psnr
    from ambient_imaging.metrics.image import center_crop

    cls = method or L1Wavelet
    ref = reference.abs() if reference.is_complex() else reference
    ref = ref.reshape(-1, *ref.shape[-2:])
    scores = {}
    for lam in grid:
        rec = cls(lamda=lam, max_iter=max_iter)(y, op)
        est = (rec.mean.abs() ** 2).sum(-3).sqrt().reshape(-1, *ref.shape[-2:])
        a, b = (center_crop(ref, crop), center_crop(est, crop)) if crop is not None else (ref, est)
        scores[float(lam)] = psnr(a, b)
    best = max(scores, key=scores.get)
    return best, scores


def _tv(x: Tensor, eps: float) -> Tensor:
    """Smoothed isotropic TV ``Σ sqrt(|∇x|² + ε²)`` per sample (forward differences, Neumann boundary)."""
    dx = torch.diff(x, dim=-1, append=x[..., -1:])
    dy = torch.diff(x, dim=-2, append=x[..., -1:, :])
    return torch.sqrt(dx.abs() ** 2 + dy.abs() ** 2 + eps**2).reshape(x.shape[0], -1).sum(1)


@dataclass
class RMLTV(Method):
    """Regularised maximum likelihood image for interferometry (TV + positivity).

    ``min_{x ≥ 0} ½ Σ_m w_m |(A x)_m − y_m|² / Σ w + lamda · s · TV_ε(x)`` where
    ``w`` are natural weights (``op.visibility_weights``, ``1/σ²``; uniform when
    unknown), ``s`` is the dirty image's peak (so ``lamda`` does not depend on
    the flux scale) and ``ε = eps · s``. FISTA with step ``1/L``, ``L`` from a
    power iteration on the data term plus ``8 lamda s / ε`` for the TV term.
    Defaults: ``lamda = 1e-3``, ``eps = 1e-2``, ``steps = 300``.
    """

    name = "rml-tv"
    kinds = frozenset({"visibilities"})
    options = frozenset({"lamda"})

    lamda: float = 1e-3
    eps: float = 1e-2
    steps: int = 300
    nonneg: bool = True
    power_iters: int = 15

    def _weights(self, op: LinearOperator, y: Tensor) -> Tensor:
        if hasattr(op, "visibility_weights"):
            return op.visibility_weights(y).to(y.device)
        return op.restrict(torch.ones_like(y)).abs()

    def __call__(self, y: Tensor, op: LinearOperator) -> Reconstruction:
        with torch.no_grad():
            w = self._weights(op, y)
            wsum = w.reshape(w.shape[0], -1).sum(1).clamp_min(1e-30).reshape(-1, *([1] * (y.ndim - 1)))
            wn = (w / wsum).to(real_dtype_like(y.dtype))
            x0 = op.adjoint(wn * y)  # dirty image (unit-peak beam)
            rdt = real_dtype_like(x0.dtype)
            scale = x0.abs().reshape(x0.shape[0], -1).amax(1).clamp_min(1e-12)
            s4 = scale.reshape(-1, 1, 1, 1)
            # Lipschitz constant of the data term: power iteration on A^H W A
            v = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=torch.Generator().manual_seed(0)
                            if x0.device.type == "cpu" else None)
            lip = torch.ones(x0.shape[0], dtype=rdt, device=x0.device)
            for _ in range(self.power_iters):
                v = v / torch.sqrt(batch_inner(v, v)).clamp_min(1e-30).reshape(-1, 1, 1, 1)
                av = op.adjoint(wn * op.forward(v))
                lip = batch_inner(v, av)
                v = av
        lip_total = (lip * 1.05 + 8 * self.lamda * scale / (self.eps * scale)).reshape(-1, 1, 1, 1)
        step = 1.0 / lip_total

        def grad(x: Tensor) -> Tensor:
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                tv = (self.lamda * scale * _tv(xg, self.eps * float(scale.min()))).sum()
                (gt,) = torch.autograd.grad(tv, xg)
            with torch.no_grad():
                return op.adjoint(wn * (op.forward(x) - y)) + gt

        x = x0.clamp_min(0) if self.nonneg and not x0.is_complex() else x0.clone()
        z, t = x.clone(), 1.0
        for _ in range(self.steps):
            x_new = z - step * grad(z)
            if self.nonneg and not x_new.is_complex():
                x_new = x_new.clamp_min(0)
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            x, t = x_new, t_new
        rec = _single(x.detach())
        rec.info.update(method="rml-tv", lamda=self.lamda, s=s4.reshape(-1).tolist())
        return rec
