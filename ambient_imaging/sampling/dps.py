"""Diffusion posterior sampling (DPS, Chung et al. 2023) and ambient DPS (A-DPS, Aali et al. 2025).

DPS is a guidance term, not a sampler of its own: :class:`DPSGuidance` takes a prior denoiser and
returns a posterior denoiser (azula's "denoiser in, posterior denoiser out"), which the shared EDM
loop (:func:`~ambient_imaging.sampling.edm_loop`) integrates like any other estimate of
``E[x | x_t]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

from .denoiser import ConditionedDenoiser, Reconstruction
from .mmps import warn_once
from .posterior import PosteriorSampler, per_sample_operator
from .schedule import image_noise
from .unconditional import edm_loop

__all__ = ["DPS", "ADPS", "DPSGuidance"]


class DPSGuidance:
    """DPS as a posterior denoiser on an EDM schedule.

    ``D'(x_t, σ) = D(x_t, σ) − 2ζ · σ / (σ − σ') · ∇_{x_t} ‖y − A D(x_t, σ)‖`` with ``σ'`` the
    schedule's next noise level. An Euler step of the probability-flow ODE with ``D'`` is exactly
    the EDM Euler step with ``D`` followed by DPS's correction (Chung et al. 2023, Alg. 1, with
    ``ζ_i = ζ / ‖y − A x̂_0‖``): ``x_{i+1} ← x_{i+1} − 2ζ ∇_{x_i} ‖y − A D(x_i, σ_i)‖``. With
    Heun's method the two guided slopes are averaged.
    """

    def __init__(self, den: ConditionedDenoiser, y: Tensor, op: LinearOperator, zeta: float, sigmas: Tensor):
        self.den, self.y, self.op, self.zeta = den, y, op, float(zeta)
        self.schedule = [float(s) for s in sigmas]

    def next_sigma(self, sigma: float) -> float:
        """The schedule's noise level after ``sigma`` (0 after the last)."""
        for i, s in enumerate(self.schedule):
            if s <= sigma * (1 + 1e-9):
                return self.schedule[i + 1] if i + 1 < len(self.schedule) else 0.0
        return 0.0

    def __call__(self, x_t: Tensor, sigma: float) -> Tensor:
        xg = x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            d = self.den(xg, sigma)
            res = self.op.restrict(self.y - self.op.forward(d))
            norm = torch.linalg.vector_norm(res.reshape(res.shape[0], -1), dim=1)
            (grad,) = torch.autograd.grad(norm.sum(), xg)
        step = sigma - self.next_sigma(sigma)
        return (d.detach() - 2.0 * self.zeta * (sigma / step) * grad).detach()


@dataclass
class DPS(PosteriorSampler):
    """DPS on the EDM ODE (:class:`DPSGuidance` driving :func:`~ambient_imaging.sampling.edm_loop`).

    Defaults: 100 Euler steps (NFE = 100, each with one backward pass), ``zeta = 1.0``
    (the paper's normalised step; raise it for few steps or strong undersampling, lower it
    if samples blow up). The step size is the one hand-tuned knob. For priors that denoise
    the whole ``x_t`` (the default sampler of oracle, naive and Tweedie priors).
    """

    name: ClassVar[str] = "dps"
    options = frozenset({"steps", "zeta"})
    prior_types = frozenset({"plain"})

    steps: int = 100
    heun: bool = False
    zeta: float = 1.0

    def denoiser(self, net, op: LinearOperator, mask_channels: int, generator, n: int) -> ConditionedDenoiser:
        """The prior as DPS sees it: plain ``D(x_t, σ)`` (all-ones mask channels for mask-aware priors).

        All-ones masks are what oracle and naive priors were trained with on clean views; a
        mask-conditioned ambient prior never saw them: use :class:`ADPS` or ``AmbientMMPS``.
        """
        if mask_channels > 0:
            warn_once("dps-ones", "DPS feeds the prior all-ones mask channels: right for oracle/naive priors, "
                      "out of distribution for a mask-conditioned ambient prior (use ADPS or AmbientMMPS)")
        return ConditionedDenoiser(net, None, mask_channels)

    def run(self, net, y, op, *, mask_channels, generator):
        """Integrate the EDM ODE with the DPS-guided denoiser."""
        den = self.denoiser(net, op, mask_channels, generator, y.shape[0])
        tmpl = self.image_template(y, op)
        sig = self.sigmas()
        x = float(sig[0]) * image_noise(tuple(tmpl.shape), tmpl.dtype, tmpl.device, generator)
        post = DPSGuidance(den, y, op, self.zeta, sig)
        x = edm_loop(post, x, sig, heun=self.heun, s_churn=self.s_churn, generator=generator,
                     progress=self.progress, desc=type(self).__name__)
        return Reconstruction(x.detach(), nfe=den.nfe, info={"sampler": type(self).__name__, "zeta": self.zeta})


@dataclass
class ADPS(DPS):
    """Ambient DPS (Aali et al. 2025): DPS with the ambient prior evaluated through a fixed ``Ã``.

    One training-type operator ``Ã`` per sample is drawn before sampling and
    kept for every step: the network sees ``Ã^H Ã x_t`` and ``Ã.mask_channels()``,
    as in ambient training. By default ``Ã = A.subsample(delta)`` (the
    measurement's operator further subsampled at the training δ, the operator's
    protected rows — MRI ACS lines — always kept; :meth:`fit` takes δ from the prior);
    pass ``tilde_op`` to use another one (e.g. a mask at the training acceleration, as the
    A-DPS reference code does).

    A-DPS only approximates the posterior: on the analytic toy (``docs/sampling.md``) its
    mean is 4–7 % off and its variance 1.2–12× the exact one. It is the default sampler of
    mask-conditioned ambient priors (it held its one-step estimate with trained networks).
    """

    name: ClassVar[str] = "adps"
    prior_types = frozenset({"ambient"})

    delta: float | None = None
    tilde_op: LinearOperator | None = None

    #: δ without a prior that records one
    DEFAULT_DELTA: ClassVar[float] = 0.1

    def fit(self, prior: Any | None) -> ADPS:
        """:meth:`PosteriorSampler.fit`, and the prior's training δ where ``delta`` is unset (``None``); a
        ``delta`` the user gave is kept (fit runs again in ``run_method`` and must not overwrite it)."""
        out = super().fit(prior)
        delta = float(getattr(prior, "delta", 0.0) or 0.0)
        if prior is not None and out.tilde_op is None and out.delta is None and delta > 0:
            out = dataclasses.replace(out, delta=delta)
        return out  # type: ignore[return-value]

    def denoiser(self, net, op: LinearOperator, mask_channels: int, generator, n: int) -> ConditionedDenoiser:
        """The prior seen through one fixed ``Ã`` per sample (``tilde_op`` or ``A.subsample(δ)``)."""
        if self.tilde_op is not None:
            return ConditionedDenoiser(net, self.tilde_op)
        if not hasattr(op, "subsample"):
            raise TypeError(f"ADPS needs a subsampling operator to draw Ã from, got {op!r}; pass tilde_op")
        delta = self.DEFAULT_DELTA if self.delta is None else float(self.delta)
        return ConditionedDenoiser(net, per_sample_operator(op, n).subsample(delta, generator))
