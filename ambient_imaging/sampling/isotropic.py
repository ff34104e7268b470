"""Moment matching with an isotropic covariance: a covariance sampler that needs no network Jacobian.

MMPS (:mod:`~ambient_imaging.sampling.mmps`) plugs Tweedie's covariance ``Σ_t = σ² ∂D/∂x_t`` into

    E[x | x_t, y] ≈ D + Σ_t A^H (A Σ_t A^H + Σ_y)^{-1} (y − A D).

That is exact for a Gaussian prior with its exact denoiser, but a trained network's Jacobian is
neither symmetric nor positive semi-definite, so the CG solve it needs has no guarantee and
diverged with the benchmark's networks (``docs/sampling.md``). Replacing ``Σ_t`` by the covariance
of ``x`` given ``x_t`` under an *isotropic* Gaussian prior with the prior's data spread ``σ_d``
(per real component),

    Σ_t ≈ r_t² I,    r_t² = σ² σ_d² / (σ² + σ_d²),

(the choice of ΠGDM, Song et al. 2023, with ``σ_d = 1``) keeps the system ``r_t² A A^H + Σ_y``
symmetric positive definite for every network: CG converges, nothing can diverge, and no
vector-Jacobian product is paid. The correction ``r_t² A^H u`` acts on the rows of ``A`` only
(the null space of ``A`` keeps the prior's estimate). At the end of the schedule ``σ = σ_min``
(≥ the noise σ_n) it is the Gaussian combination of the prior's estimate and the data, weighted by
their variances: a data-consistency step at the right strength, which the one-step estimate lacks.

For a mask-conditioned ambient prior the denoiser sees ``A``'s own mask (as the one-step estimate
and :class:`~ambient_imaging.sampling.AmbientMMPS`): ``D = E[x | A x_t]``, a consistent estimate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

from .cg import conjugate_gradient
from .denoiser import ConditionedDenoiser, Reconstruction
from .posterior import PosteriorSampler, noise_variance, prior_type
from .schedule import image_noise
from .unconditional import edm_loop

__all__ = ["IsotropicMMPS", "IsotropicPosteriorDenoiser"]


class IsotropicPosteriorDenoiser:
    """``D + r² A^H (r² A A^H + Σ_y)^{-1} (y − A D)`` with ``r² = σ² σ_d²/(σ² + σ_d²)`` (one sampling run).

    Holds the run's warm start (the solution changes slowly along the ODE) and its CG counters.
    """

    def __init__(self, den: ConditionedDenoiser, y: Tensor, op: LinearOperator, var_y: float | Tensor,
                 sigma_data: float, *, cg_iters: int, cg_tol: float):
        self.den, self.y, self.op, self.var_y, self.sigma_data = den, y, op, var_y, sigma_data
        self.cg_iters, self.cg_tol = cg_iters, cg_tol
        self.iterations = self.solves = 0
        self._u: Tensor | None = None

    def radius2(self, sigma: float) -> float:
        """``r² = σ² σ_d² / (σ² + σ_d²)``: the variance per real component of ``x`` given ``x_t``
        under an isotropic Gaussian prior of variance ``σ_d²``."""
        return sigma**2 * self.sigma_data**2 / (sigma**2 + self.sigma_data**2)

    def __call__(self, x_t: Tensor, sigma: float) -> Tensor:
        op, r2 = self.op, self.radius2(sigma)
        with torch.no_grad():
            d = self.den(x_t, sigma)

            def system(v: Tensor) -> Tensor:  # (r² A A^H + Σ_y) v: symmetric positive definite
                return r2 * op.restrict(op.forward(op.adjoint(v))) + self.var_y * v

            r = op.restrict(self.y - op.forward(d))
            x0 = self._u if (self._u is not None and self._u.shape == r.shape) else None
            u, it = conjugate_gradient(system, r, x0=x0, max_iter=self.cg_iters, tol=self.cg_tol)
            self.iterations += it
            self.solves += 1
            self._u = u
            return d + r2 * op.adjoint(u)

    def info(self) -> dict[str, float]:
        """CG counts of the run."""
        return {"cg_iterations": self.iterations, "cg_iterations_per_solve": self.iterations / max(self.solves, 1)}


@dataclass
class IsotropicMMPS(PosteriorSampler):
    """Moment-matching posterior sampling with ``Σ_t = r_t² I`` (module docs): Jacobian-free, cannot diverge.

    Every prior type: plain priors see ``x_t`` (all-ones mask channels), mask-conditioned ambient
    priors ``A``'s own mask (set by :meth:`fit`). Defaults: 50 Heun steps (99 network evaluations per
    sample), CG to ``cg_tol = 1e-4`` (≤ ``cg_iters = 50``, warm-started; ``A A^H`` only, no network
    call), ``s_churn = 0`` (deterministic ODE: the samples differ by their starting noise);
    ``sigma_data`` from the prior (the isotropic prior's spread per real component).
    """

    name: ClassVar[str] = "mmps-iso"

    cg_iters: int = 50
    cg_tol: float = 1e-4
    sigma_y_floor: float = 1e-3
    sigma_data: float = 0.5
    ambient: bool = False

    def fit(self, prior: Any | None) -> IsotropicMMPS:
        """:meth:`PosteriorSampler.fit`, the prior's ``σ_d`` and whether it is ambient."""
        out = super().fit(prior)
        if prior is None:
            return out  # type: ignore[return-value]
        sd = float(getattr(prior, "sigma_data", self.sigma_data) or self.sigma_data)
        return dataclasses.replace(out, ambient=prior_type(prior) == "ambient",  # type: ignore[return-value]
                                   sigma_data=sd if math.isfinite(sd) and sd > 0 else self.sigma_data)

    def prior_denoiser(self, net, op: LinearOperator, mask_channels: int) -> ConditionedDenoiser:
        """``x_t`` itself for plain priors; ``A``'s own mask for ambient ones (as the one-step estimate)."""
        if not self.ambient or mask_channels == 0:
            return ConditionedDenoiser(net, None, mask_channels)
        if op.mask_channels() is None:
            raise TypeError(f"{self.name}: the ambient prior expects mask channels but {op!r} provides none")
        return ConditionedDenoiser(net, op)

    def run(self, net, y, op, *, mask_channels, generator):
        """Integrate the EDM ODE with the :class:`IsotropicPosteriorDenoiser` of ``y``."""
        den = self.prior_denoiser(net, op, mask_channels)
        tmpl = self.image_template(y, op)
        post = IsotropicPosteriorDenoiser(den, y, op, noise_variance(op, y, self.sigma_y_floor), self.sigma_data,
                                          cg_iters=self.cg_iters, cg_tol=self.cg_tol)
        sig = self.sigmas()
        x = float(sig[0]) * image_noise(tuple(tmpl.shape), tmpl.dtype, tmpl.device, generator)
        x = edm_loop(post, x, sig, heun=self.heun, s_churn=self.s_churn, generator=generator,
                     progress=self.progress, desc=type(self).__name__)
        info: dict[str, Any] = {"sampler": self.name, **post.info()}
        if not math.isfinite(float(x.abs().max())):
            info["diverged"] = True
        return Reconstruction(x.detach(), nfe=den.nfe, info=info)
