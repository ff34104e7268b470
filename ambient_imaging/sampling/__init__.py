"""Unconditional and posterior sampling from diffusion priors, and classical baselines.

Samplers share one interface: ``sampler(net, y, op, samples=K, mask_channels=k)``
returns a :class:`Reconstruction` with ``samples (B, K, C, H, W)``, ``mean``,
``std`` and the number of network evaluations ``nfe``. Baselines take
``baseline(y, op)`` and return the same type (K = 1). Every method is a
:class:`Method` in one registry (:data:`METHODS`, :func:`make_method`);
:func:`run_method` runs a ready one (checks the prior against the data, handles
units, reports the data fidelity); :func:`sample` draws unconditional samples.
See ``docs/sampling.md``.
"""

from .ambient_mmps import AmbientMMPS
from .api import check_prior, data_fidelity, run_method, sample
from .baselines import RMLTV, SENSE, TV, L1Wavelet, ZeroFilled, choose_lambda
from .cg import batch_inner, conjugate_gradient
from .daps import DAPS
from .denoiser import ConditionedDenoiser, Denoiser, Reconstruction, SupportDenoiser, repeat_operator, restrict_to
from .dps import ADPS, DPS, DPSGuidance
from .isotropic import IsotropicMMPS, IsotropicPosteriorDenoiser
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
from .method import KINDS, Method, check_number, check_options
from .mmps import MMPS, MomentMatchingDenoiser
from .onestep import OneStep
from .posterior import PosteriorSampler, expand_measurements, noise_variance, prior_type
from .registry import METHODS, get_method, make_method, method_names, methods_taking
from .rml import RML, fit_warnings, rml_from_options
from .schedule import edm_sigmas, image_noise, sigma_range
from .unconditional import EDMSampler, FixedMaskSampler, TruncatedSampler, edm_loop

__all__ = [
    "run_method",
    "sample",
    "data_fidelity",
    "check_prior",
    "ADPS",
    "ZeroFilled",
    "SENSE",
    "L1Wavelet",
    "TV",
    "RMLTV",
    "choose_lambda",
    "DPS",
    "MMPS",
    "AmbientMMPS",
    "IsotropicMMPS",
    "IsotropicPosteriorDenoiser",
    "DAPS",
    "DPSGuidance",
    "MomentMatchingDenoiser",
    "Method",
    "KINDS",
    "METHODS",
    "get_method",
    "make_method",
    "method_names",
    "methods_taking",
    "check_number",
    "check_options",
    "prior_type",
    "sigma_range",
    "OneStep",
    "EDMSampler",
    "FixedMaskSampler",
    "TruncatedSampler",
    "PosteriorSampler",
    "ConditionedDenoiser",
    "Denoiser",
    "Reconstruction",
    "SupportDenoiser",
    "restrict_to",
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
