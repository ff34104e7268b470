"""Run a ready method on measurements: normalise → run → denormalise → data fidelity.

:func:`run_method` checks that the prior fits the measurements (operator family, real/complex,
channels), brings the measurements to the prior's units (the normalisation stored with the
prior), runs a posterior sampler or a classical method, and returns the result in the file's
units with its data fidelity. Defaults, scoring and the honest-failure checks live one layer up,
in :func:`ambient_imaging.reconstruction.reconstruct`. :func:`sample` draws unconditional samples.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator
from ambient_imaging.operators.base import expand_sigma
from ambient_imaging.problems import Normalisation

from .baselines import ZeroFilled
from .denoiser import Reconstruction, SupportDenoiser
from .method import Method
from .schedule import sigma_range
from .unconditional import EDMSampler, TruncatedSampler

__all__ = [
    "run_method",
    "sample",
    "data_fidelity",
    "check_prior",
    "normalisation",
    "prior_normalisation",
    "check_measurements",
]

_FAMILY_WORDS = {
    "mri": "multi-coil MRI k-space",
    "interferometry": "interferometric visibilities",
    "mask": "masked images (inpainting)",
    "noise": "noisy images (denoising)",
}


def _compatible(prior_family: str, op_family: str) -> bool:
    image_domain = {"mask", "noise"}
    if prior_family in image_domain:
        return op_family in image_domain
    return prior_family == op_family


def check_prior(prior: Any, y: Tensor, op: LinearOperator) -> None:
    """Raise a clear error unless ``prior`` can reconstruct measurements ``y`` of ``op``."""
    fam = op.family
    if not _compatible(prior.family, fam):
        raise ValueError(
            f"this prior was trained on {_FAMILY_WORDS.get(prior.family, prior.family)} (family "
            f"{prior.family!r}) and cannot reconstruct {_FAMILY_WORDS.get(fam, fam)}; use a prior trained "
            f"for {fam!r} data, or a classical method (zero-filled, sense, l1-wavelet)"
        )
    with torch.no_grad():
        tmpl = op.adjoint(y)
    if tmpl.is_complex() != bool(prior.is_complex):
        kinds = ("complex", "real")
        raise TypeError(
            f"the prior takes {kinds[0] if prior.is_complex else kinds[1]} images but these measurements give "
            f"{kinds[0] if tmpl.is_complex() else kinds[1]} images"
        )
    c = int(prior.image_shape[0])
    if c and tmpl.shape[1] != c:
        raise ValueError(f"the prior takes {c}-channel images but these measurements give {tmpl.shape[1]} channels")


# --------------------------------------------------------------------------- units
def prior_normalisation(prior: Any) -> Normalisation:
    """The normalisation a prior was trained with: its structured record, or its legacy sentence."""
    norm = getattr(prior, "normalisation", None)
    if isinstance(norm, Normalisation):
        return norm
    return Normalisation.from_rule(str(getattr(prior, "scale_rule", "none")))


def normalisation(prior: Any, y: Tensor, op: LinearOperator, scale: Tensor | None = None) -> Normalisation:
    """The prior's :class:`~ambient_imaging.problems.Normalisation`, resolved for measurements ``y``.

    An explicit ``scale`` ``(B,)`` overrides the rule (``x_prior = x / scale``).
    """
    if scale is not None:
        s = torch.as_tensor(scale, dtype=torch.float64).reshape(-1).expand(y.shape[0]).clone()
        return Normalisation("measurement", s)
    return prior_normalisation(prior).resolve(y, op)


def check_measurements(y: Tensor, op: LinearOperator) -> None:
    """One clear error when ``y`` does not fit ``op`` (coil count, sizes, batch, NaN)."""
    if not isinstance(y, Tensor):
        raise TypeError(f"measurements must be a torch.Tensor, got {type(y).__name__}")
    if not torch.all(torch.isfinite(y)):
        raise ValueError("the measurements contain NaN or Inf")
    if op.batch_size not in (1, y.shape[0]):
        raise ValueError(f"the operator holds {op.batch_size} elements but there are {y.shape[0]} measurements")
    try:
        with torch.no_grad():
            op.adjoint(y)
    except RuntimeError as err:
        maps = getattr(op, "sens_maps", None)
        what = f" (the operator has {maps.shape[1]} coils of {tuple(maps.shape[-2:])})" if maps is not None else ""
        raise ValueError(f"measurements of shape {tuple(y.shape)} do not fit {op!r}{what}: {err}") from err


# --------------------------------------------------------------------------- fidelity
def data_fidelity(x: Tensor, y: Tensor, op: LinearOperator) -> dict[str, list[float]]:
    """How well images ``x`` (B, C, H, W) explain ``y``, per measurement.

    ``residual_rel = ‖A x − y‖ / ‖y‖`` and the reduced chi-square
    ``χ²_red = Σ |A x − y|² / σ² / n`` over the ``n`` measured entries (``E|ε|² = σ²``,
    so χ²_red ≈ 1 for a fit at the noise level; NaN when ``noise_sigma`` is 0).
    """
    with torch.no_grad():
        r = op.restrict(op.forward(x) - y)
        b = r.shape[0]
        rr = r.abs().reshape(b, -1) ** 2
        yn = (y.abs().reshape(b, -1) ** 2).sum(1).clamp_min(1e-300)
        out = {"residual_rel": (rr.sum(1) / yn).sqrt().tolist()}
        sig = op.noise_sigma
        if isinstance(sig, (int, float)) and sig == 0:
            out["chi2_red"] = [math.nan] * b
            return out
        s = expand_sigma(sig, r)
        s = torch.as_tensor(s, dtype=rr.dtype, device=r.device)
        s2 = torch.broadcast_to(s, r.shape).reshape(b, -1) ** 2
        support = op.restrict(torch.ones_like(y)).abs().reshape(b, -1) > 0
        valid = support & (s2 > 0)
        chi = torch.where(valid, rr / s2.clamp_min(1e-300), torch.zeros_like(rr)).sum(1)
        out["chi2_red"] = (chi / valid.sum(1).clamp_min(1)).tolist()
        return out


# --------------------------------------------------------------------------- entry points
def run_method(
    y: Tensor,
    op: LinearOperator,
    prior: Any | None = None,
    method: Method | None = None,
    *,
    samples: int = 1,
    generator: torch.Generator | None = None,
    scale: Tensor | None = None,
    support: Tensor | None = None,
) -> Reconstruction:
    """Run ``method`` on measurements ``y = A x + ε`` (``B`` of them, in the file's units).

    Args:
        y: measurements ``(B, ...)``; op: their operator (batch 1 or B) with its noise.
        prior: a :class:`~ambient_imaging.training.Prior` (``None`` for classical methods).
        method: a ready method (``make_method(name, prior)`` or a sampler/baseline object;
            :class:`ZeroFilled` when ``None``). A posterior sampler is kept inside the prior's σ
            range (:meth:`~ambient_imaging.sampling.PosteriorSampler.fit`, idempotent).
        samples: K posterior samples per measurement (classical methods give one).
        scale: override the prior's normalisation with explicit per-measurement scales.
        support: boolean ``(B or 1, 1, H, W)`` image support (MRI: where the coil maps are non-zero);
            a posterior sampler's prior and samples are restricted to it (:class:`SupportDenoiser`).

    Returns:
        :class:`Reconstruction` (file units): ``samples (B, K, C, H, W)``, ``mean``, ``std``,
        ``nfe``; ``info`` holds ``seconds`` and the data fidelity of the mean
        (``residual_rel``, ``chi2_red``, see :func:`data_fidelity`).
    """
    t0 = time.perf_counter()
    method = ZeroFilled() if method is None else method
    check_measurements(y, op)
    if not getattr(method, "needs_prior", True):
        if getattr(method, "normalised", False):  # a relative λ: work on O(1) images
            norm = Normalisation("measurement").resolve(y, op)
            y_n, op_n = norm.to_prior(y, op)
            rec = norm.to_file(method(y_n, op_n))
        else:
            rec = method(y, op)
    else:
        if prior is None:
            raise ValueError(f"{type(method).__name__} needs a prior (--prior RUN_DIR); classical methods do not")
        check_prior(prior, y, op)
        if hasattr(method, "fit"):
            method = method.fit(prior)
        norm = normalisation(prior, y, op, scale)
        y_p, op_p = norm.to_prior(y, op)
        dev = next(iter(prior.denoiser.parameters()), torch.empty(0)).device
        if y_p.device != dev:
            y_p, op_p = y_p.to(dev), op_p.to(dev)
        net = prior.denoiser if support is None else SupportDenoiser(prior.denoiser, support.to(dev))
        rec = method(net, y_p, op_p, samples=samples, mask_channels=int(prior.mask_channels), generator=generator)
        rec.samples = rec.samples.to(y.device)
        if support is not None:
            keep = support.to(device=y.device, dtype=rec.samples.real.dtype)
            rec.samples = rec.samples * keep.reshape(keep.shape[0], 1, *keep.shape[1:])
        rec = norm.to_file(rec)
    rec.info["seconds"] = time.perf_counter() - t0
    rec.info.update(data_fidelity(rec.mean, y, op))
    return rec


def sample(
    prior: Any,
    n: int,
    sampler: EDMSampler | None = None,
    *,
    image_shape: tuple[int, int, int] | None = None,
    generator: torch.Generator | None = None,
) -> Reconstruction:
    """Draw ``n`` unconditional samples from ``prior`` (in data units for image priors).

    The default sampler is :class:`TruncatedSampler` at ``σ_n`` for Tweedie priors
    (noise family with ``noise_sigma > 0``) and :class:`EDMSampler` (Heun) otherwise.
    ``image_shape`` defaults to the prior's training shape.
    """
    if sampler is None:
        if prior.family == "noise" and float(prior.noise_sigma) > 0:
            sampler = TruncatedSampler(sigma_n=float(prior.noise_sigma))
        else:
            sampler = EDMSampler()
    lo, hi = sigma_range(prior, sampler.sigma_min, sampler.sigma_max, noise_floor=False)
    sampler = dataclasses.replace(sampler, sigma_min=lo, sigma_max=hi)
    c, h, w = image_shape or tuple(prior.image_shape)
    p = next(iter(prior.denoiser.parameters()), None)
    dev = p.device if p is not None else torch.device("cpu")
    dtype = torch.complex64 if prior.is_complex else torch.float32
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"dtype": dtype, "device": dev, "generator": generator}
    kwargs["mask_channels"] = int(prior.mask_channels)
    rec = sampler.sample(prior.denoiser, (n, c, h, w), **kwargs)
    norm = prior_normalisation(prior)
    if norm.kind in ("identity", "affine"):  # image priors: samples in the data's units
        rec = norm.resolve(rec.samples[:, 0], None).to_file(rec)
    rec.info["seconds"] = time.perf_counter() - t0
    return rec
