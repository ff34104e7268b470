"""Moments of the log amplitude of a noisy visibility (the Rice distribution), for likelihoods that stay
right at low SNR.

A measured visibility is ``V + n`` with ``n`` complex Gaussian, std ``σ`` per component; its amplitude
``a = |V + n|`` follows the Rice distribution (TMS §9.3):

    p(a) = (a / σ²) exp(−(a² + |V|²) / 2σ²) I₀(a |V| / σ²),   a ≥ 0.

With ``ρ = |V| / σ`` (the SNR), ``log a = log σ + log(a / σ)``, and the mean and variance of ``log(a / σ)``
depend on ``ρ`` only:

* ``ρ → ∞``: mean ``log ρ``, variance ``1 / ρ²`` (the first-order σ of ehtim's log closure amplitudes);
* ``ρ = 0`` (Rayleigh): mean ``(log 2 − γ) / 2 ≈ 0.058``, variance ``π² / 24 ≈ 0.411``.

ehtim's log closure amplitude statistic (debiased amplitudes, ``σ = sqrt(Σ 1/snr²)`` from the *measured*
amplitudes) assumes the first regime everywhere. Near a null of the source's visibility the measured
amplitude is noise, its log is not ``log |V|`` and its σ is not ``σ / |V|``: a likelihood built on it
punishes every image with a null there, however deep the noise, and a fit fills such nulls in.
:func:`log_amplitude_moments` gives the exact moments for any ``ρ`` (tabulated by quadrature once,
interpolated, differentiable in ``ρ``), which
:class:`~ambient_imaging.sampling.likelihoods.RiceLogClosureAmplitudeLikelihood` uses.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

__all__ = ["log_amplitude_moments", "RHO_MAX"]

#: tabulated SNR range; beyond it the asymptotic moments (``log ρ``, ``1/ρ² + 1/ρ⁴``) hold to < 1e-5
RHO_MAX = 12.0
_STEP = 0.02


@lru_cache(maxsize=1)
def _table() -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``log(a/σ)`` on the grid ``ρ = 0, 0.02, ..., RHO_MAX`` (trapezoidal quadrature
    of the Rice density, written with ``i0e`` so that ``exp(−(a − ρ)²/2) i0e(aρ)`` never overflows)."""
    from scipy.special import i0e

    rho = np.arange(0.0, RHO_MAX + _STEP / 2, _STEP)[:, None]
    t = np.linspace(0.0, 1.0, 1201)[None, 1:]  # a in (0, ρ + 12]: the density is < 1e-30 beyond
    a = t * (rho + 12.0)
    p = a * np.exp(-((a - rho) ** 2) / 2) * i0e(a * rho)
    la = np.log(a)
    norm = np.trapezoid(p, a, axis=1)
    mean = np.trapezoid(p * la, a, axis=1) / norm
    var = np.trapezoid(p * (la - mean[:, None]) ** 2, a, axis=1) / norm
    return mean, var


@lru_cache(maxsize=8)
def _torch_table(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """:func:`_table` as tensors, converted once per dtype and device (a fit evaluates the moments at every step)."""
    return tuple(torch.as_tensor(v, dtype=dtype, device=device) for v in _table())


def log_amplitude_moments(snr: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of ``log(|V + n| / σ)`` for true SNRs ``snr = |V| / σ`` (any shape, ≥ 0).

    Linear interpolation of :func:`_table` (gradients flow through ``snr``); asymptotic beyond
    :data:`RHO_MAX` (the expansion of the Rice moments: the mean's correction is ``O(ρ⁻⁴)``). Add ``log σ`` to the
    mean for the log amplitude itself.
    """
    mean_t, var_t = _torch_table(snr.dtype, snr.device)
    x = (snr / _STEP).clamp(0.0, len(mean_t) - 1 - 1e-6)
    i = torch.nan_to_num(x.detach(), nan=0.0).floor().long()  # a NaN SNR gives NaN moments, not a bad index
    f = x - i
    mean = mean_t[i] * (1 - f) + mean_t[i + 1] * f
    var = var_t[i] * (1 - f) + var_t[i + 1] * f
    far = snr > RHO_MAX
    if bool(far.any()):
        big = snr.clamp_min(RHO_MAX)
        mean = torch.where(far, torch.log(big), mean)
        var = torch.where(far, 1.0 / big**2 + 1.0 / big**4, var)
    return mean, var


#: the Rayleigh limits, for tests and docs
RAYLEIGH_MEAN = 0.5 * (math.log(2.0) - 0.5772156649015329)
RAYLEIGH_VAR = math.pi**2 / 24
