"""Reconstruction methods for the app layer: the registry's names, the default per prior, unconditional samplers.

Methods live in one registry, :data:`ambient_imaging.sampling.METHODS` (each class declares its
name, whether it needs a prior, the inputs it serves and the options it takes). This module adds
what the app layer owns: which method a prior gets by default (:func:`default_method`) and the
unconditional samplers of ``ambient-imaging sample``.
"""

from __future__ import annotations

from typing import Any

from ambient_imaging.sampling import (
    ADPS,
    DAPS,
    EDMSampler,
    FixedMaskSampler,
    Method,
    TruncatedSampler,
    ZeroFilled,
    check_number,
    check_options,
    make_method,
    method_names,
)
from ambient_imaging.sampling.likelihood_daps import LikelihoodDAPS
from ambient_imaging.sampling.posterior import prior_type

__all__ = [
    "POSTERIOR",
    "CLASSICAL",
    "UNCONDITIONAL",
    "make_method",
    "make_unconditional",
    "default_method",
    "default_method_name",
    "check_number",
]

#: the posterior samplers' names (they need a prior)
POSTERIOR = method_names(needs_prior=True)
#: the classical methods' names
CLASSICAL = method_names(needs_prior=False)


def default_method(prior: Any | None) -> type[Method]:
    """The method a prior gets by default (``docs/sampling.md``): none → zero-filled; a sky prior
    (family ``interferometry``) → ``likelihood-daps`` (closure likelihoods: VLBI data carry station gains;
    decoupled annealing with a proximal L-BFGS data step: on the simulated EHT benchmark of 2026-12-07 it
    fits the closures to χ² ≈ 1–2 per sample where ``likelihood-dps`` stays in the hundreds); a
    mask-conditioned ambient prior → A-DPS (``Ã = A.subsample(δ)`` per sample, Aali et al., ICLR 2025),
    whether it was trained on corrupted data alone or on a mixed set; every other MRI / image prior (plain:
    oracle, naive, Tweedie) → DAPS (decoupled annealing, Jacobian-free, ending with the last conditional's
    mean).

    Decided on evidence (2026-12-07, ``benchmarks/results/reconstruction.md``: held-out mri-brain,
    6 slices from three held-out volumes, 4 calibration slices drawn like them, R = 4 and 8, RSS-estimate
    scoring): with the ambient prior (5,000 steps) A-DPS gives 28.77 / 27.44 dB against tuned TV's 27.39 /
    24.83, beats its one-step estimate (+0.63 / +0.33 dB), and its calibrated coverage is 98.0 / 97.6 %.
    It had the ambient prior's best PSNR and SSIM at 1,000 and 3,000 steps too
    (``reconstruction_ordered.md``); DAPS seen through ``A``'s own mask returns nearly the one-step
    estimate. For a mixed prior (15 % of slices fully sampled) A-DPS gives 28.73 / 27.60 dB against
    DAPS-on-all-ones-masks' 28.69 / 25.91: DAPS drew the anatomy of the few complete samples onto a
    held-out volume they do not cover (21.7–23.9 dB there), where A-DPS stays at 26.9–28.5 dB
    (``mixture.md``). For the oracle prior DAPS is the best sampler at both R. On the analytic toy A-DPS
    keeps the protected rows and DAPS gets the exact posterior mean (``tests/test_toy_posterior.py``). The
    Jacobian-based covariance samplers (``ambient-mmps``, ``mmps``) diverged with trained networks
    (2026-11-30) and stay available by name.
    """
    if prior is None:
        return ZeroFilled
    if getattr(prior, "family", "") == "interferometry":  # a sky prior: closure likelihoods (station gains)
        return LikelihoodDAPS
    if prior_type(prior) == "ambient":  # corrupted data alone, or a mixed set
        return ADPS
    return DAPS


def default_method_name(prior: Any | None) -> str:
    """The ``--sampler`` name of :func:`default_method`."""
    return default_method(prior).name


def _heun(prior: Any, **kw: Any) -> EDMSampler:
    return EDMSampler(**kw)


def _euler(prior: Any, **kw: Any) -> EDMSampler:
    return EDMSampler(heun=False, **kw)


def _fixed_mask(prior: Any, **kw: Any) -> FixedMaskSampler:
    if prior.mask_channels == 0:
        raise ValueError("--sampler fixed-mask needs an ambient prior with mask channels; this one has none")
    return FixedMaskSampler(corruption=float(prior.corruption), delta=float(prior.delta), **kw)


def _truncated(prior: Any, **kw: Any) -> TruncatedSampler:
    if prior.noise_sigma <= 0:
        raise ValueError("--sampler truncated needs a prior trained on noisy data (noise_sigma > 0)")
    return TruncatedSampler(sigma_n=float(prior.noise_sigma), **kw)


#: the unconditional samplers of ``ambient-imaging sample``, by name
_UNCONDITIONAL = {"heun": _heun, "euler": _euler, "fixed-mask": _fixed_mask, "truncated": _truncated}
UNCONDITIONAL = tuple(_UNCONDITIONAL)


def make_unconditional(name: str | None, prior: Any, steps: int | None = None) -> Any:
    """An unconditional sampler by name; ``None``: truncated for Tweedie priors, fixed-mask for
    ambient inpainting priors, else Heun."""
    kw = check_options(steps=steps)
    if name is None:
        if prior.family == "noise" and prior.noise_sigma > 0:
            name = "truncated"
        elif prior.family == "mask" and prior.mask_channels > 0:
            name = "fixed-mask"
        else:
            name = "heun"
    if name not in _UNCONDITIONAL:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(UNCONDITIONAL)}")
    return _UNCONDITIONAL[name](prior, **kw)
