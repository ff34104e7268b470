"""Reconstruction methods by name: posterior samplers, unconditional samplers, classical baselines.

The names are the CLI's ``--sampler`` values; :func:`make_method` is the only place that turns
one into an object, and :func:`default_method_name` the only place that picks a prior's default.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "POSTERIOR",
    "CLASSICAL",
    "UNCONDITIONAL",
    "make_method",
    "make_unconditional",
    "default_method_name",
    "check_number",
]

POSTERIOR = ("ambient-mmps", "adps", "dps", "mmps", "onestep")
CLASSICAL = ("zero-filled", "sense", "l1-wavelet", "rml", "rml-tv")
UNCONDITIONAL = ("heun", "euler", "fixed-mask", "truncated")


def check_number(name: str, value: float | None, *, minimum: float = 0.0, strict: bool = False,
                 maximum: float = math.inf) -> float | None:
    """``value`` as a float, or a clear ``ValueError`` (NaN, infinite, out of range); ``None`` passes."""
    if value is None:
        return None
    v = float(value)
    ok = math.isfinite(v) and (v > minimum if strict else v >= minimum) and v <= maximum
    if not ok:
        rng = f"{'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:g}" if math.isfinite(maximum) else "")
        raise ValueError(f"{name} must be a finite number {rng}, got {value}")
    return v


def default_method_name(prior: Any | None) -> str:
    """The default ``--sampler`` for a prior (``zero-filled`` without one).

    The choice is :func:`ambient_imaging.sampling.default_sampler_name` (``docs/sampling.md``):
    ``adps`` for mask-conditioned ambient priors (the network only sees masks of its training
    distribution), ``dps`` for priors that denoise the whole ``x_t`` (oracle, naive, Tweedie); the
    covariance samplers stay available by name.
    """
    if prior is None:
        return "zero-filled"
    from ambient_imaging.sampling import default_sampler_name

    return str(default_sampler_name(prior))


def make_method(
    name: str,
    prior: Any | None = None,
    *,
    steps: int | None = None,
    lamda: float | None = None,
    zeta: float | None = None,
    data_terms: str | None = None,
    selfcal: bool = False,
) -> Any:
    """The sampler or baseline object for a ``--sampler`` name (numbers validated here, before any work).

    ``data_terms`` / ``selfcal``: the RML imager's data products (``"cphase,logcamp[,amp:0.2,vis]"``,
    default closure phases and log closure amplitudes) and station-gain self-calibration."""
    from ambient_imaging import sampling as S

    if steps is not None and (int(steps) != steps or int(steps) < 1):
        raise ValueError(f"--steps must be an integer >= 1, got {steps}")
    lamda = check_number("--lamda", lamda)
    zeta = check_number("--zeta", zeta, strict=True)
    kw: dict[str, Any] = {} if steps is None else {"steps": int(steps)}
    if name in POSTERIOR and prior is None:
        raise ValueError(f"--sampler {name} needs --prior RUN_DIR (a trained prior); "
                         f"classical methods ({', '.join(CLASSICAL)}) do not")
    if name in POSTERIOR:  # set up for the prior: σ ≥ σ_n, the prior's σ range, A-DPS at the training δ
        from ambient_imaging.sampling import make_posterior_sampler

        if zeta is not None and name not in ("dps", "adps"):
            raise ValueError(f"--zeta is the step size of dps/adps, not of {name}")
        over: dict[str, Any] = {} if name == "onestep" else dict(kw)
        if zeta is not None:
            over["zeta"] = zeta
        return make_posterior_sampler(name, prior, **over)
    if name == "zero-filled":
        return S.ZeroFilled()
    if name == "sense":
        return S.SENSE(**({} if lamda is None else {"lamda": lamda}))
    if name == "l1-wavelet":
        return S.L1Wavelet(**({} if lamda is None else {"lamda": lamda}))
    if name == "rml":
        from ambient_imaging.sampling.rml import rml_from_options

        return rml_from_options(data_terms or "cphase,logcamp", selfcal=bool(selfcal),
                                iters=None if steps is None else int(steps))
    if data_terms is not None or selfcal:
        raise ValueError("--data-terms and --selfcal apply to --sampler rml only")
    if name == "rml-tv":
        return S.RMLTV(**({} if lamda is None else {"lamda": lamda}))
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(POSTERIOR + CLASSICAL)}")


def make_unconditional(name: str | None, prior: Any, steps: int | None = None) -> Any:
    """An unconditional sampler by name; ``None``: truncated for Tweedie priors, fixed-mask for
    ambient inpainting priors, else Heun."""
    from ambient_imaging import sampling as S

    if steps is not None and (int(steps) != steps or int(steps) < 1):
        raise ValueError(f"--steps must be an integer >= 1, got {steps}")
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
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(UNCONDITIONAL)}")
