"""Unconditional and posterior sampling from diffusion priors, and classical baselines.

Samplers share one interface: ``sampler(net, y, op, samples=K, mask_channels=k)``
returns a :class:`Reconstruction` with ``samples (B, K, C, H, W)``, ``mean``,
``std`` and the number of network evaluations ``nfe``. Baselines take
``baseline(y, op)`` and return the same type (K = 1). :func:`reconstruct` is the
entry point that checks a prior against the data, handles units and reports the
data fidelity; :func:`sample` draws unconditional samples. See ``docs/sampling.md``.
"""

from .ambient_mmps import AmbientMMPS
from .api import check_prior, data_fidelity, reconstruct, sample
from .baselines import RMLTV, SENSE, L1Wavelet, ZeroFilled, choose_lambda
from .cg import batch_inner, conjugate_gradient
from .defaults import (
    DEFAULT_SAMPLES,
    SAMPLER_NAMES,
    default_posterior_sampler,
    default_sampler_name,
    is_ambient_prior,
    make_posterior_sampler,
)
from .denoiser import ConditionedDenoiser, Denoiser, Reconstruction, repeat_operator
from .dps import ADPS, DPS
from .likelihoods import (
    LIKELIHOODS,
    AmplitudeLikelihood,
    ClosurePhaseLikelihood,
    Likelihood,
    LogClosureAmplitudeLikelihood,
    VisibilityLikelihood,
    chi2_report,
    make_likelihoods,
    parse_data_terms,
)
from .mmps import MMPS
from .onestep import OneStep
from .posterior import PosteriorSampler, expand_measurements, noise_variance
from .rml import RML, fit_warnings, rml_from_options
from .schedule import edm_sigmas, image_noise
from .unconditional import EDMSampler, FixedMaskSampler, TruncatedSampler, edm_loop

__all__ = [
    "reconstruct",
    "sample",
    "data_fidelity",
    "check_prior",
    "ADPS",
    "ZeroFilled",
    "SENSE",
    "L1Wavelet",
    "RMLTV",
    "choose_lambda",
    "DPS",
    "MMPS",
    "AmbientMMPS",
    "default_posterior_sampler",
    "default_sampler_name",
    "make_posterior_sampler",
    "is_ambient_prior",
    "DEFAULT_SAMPLES",
    "SAMPLER_NAMES",
    "OneStep",
    "EDMSampler",
    "FixedMaskSampler",
    "TruncatedSampler",
    "PosteriorSampler",
    "ConditionedDenoiser",
    "Denoiser",
    "Reconstruction",
    "conjugate_gradient",
    "batch_inner",
    "edm_loop",
    "edm_sigmas",
    "image_noise",
    "expand_measurements",
    "noise_variance",
    "repeat_operator",
    "RML",
    "fit_warnings",
    "rml_from_options",
    "Likelihood",
    "VisibilityLikelihood",
    "AmplitudeLikelihood",
    "ClosurePhaseLikelihood",
    "LogClosureAmplitudeLikelihood",
    "LIKELIHOODS",
    "make_likelihoods",
    "parse_data_terms",
    "chi2_report",
]
