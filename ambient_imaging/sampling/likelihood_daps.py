"""Decoupled annealing with any differentiable likelihood (closure phases, log closure amplitudes, ...).

:class:`~ambient_imaging.sampling.daps.DAPS` (Zhang et al., CVPR 2025) alternates a prior step and
a data step at decreasing noise levels ``σ_i``; for the linear Gaussian likelihoods of MRI its data
step is Langevin dynamics. Closure likelihoods are too badly conditioned for a plain Langevin chain
(a log closure amplitude's curvature grows as ``1/|V|²`` on faint baselines: a step that suits those
stalls everywhere else; measured on a simulated EHT crescent, the chains either did not move or
diverged). Here the data step is the *mode* of the same decoupled conditional, as ReSample
(Song et al., ICLR 2024) does, found by L-BFGS on a positive parametrisation of ``x``
(``x = softplus(z)`` by default, ``x = exp(z)`` as RML does; see ``positivity`` below):

1. ``x̂_0 = D(x_t, σ_i)``;
2. ``x_0 = argmin_{x > 0}  L(s x) + ‖x − x̂_0‖² / (2 r_i²)`` from ``x̂_0`` (``L`` the weighted negative
   log-likelihood of a Jy/pixel image, ``s`` the prior-units → Jy scale, ``r_i = σ_i``), ``iters``
   L-BFGS iterations;
3. ``x_{t_{i+1}} = x_0 + σ_{i+1} ε``.

Early levels (``r`` large) let the data shape ``x_0``; late ones keep it near the prior's estimate.

**Positivity.** With ``x = exp(z)`` the gradient in ``z`` is ``x ∇_x``, so L-BFGS moves every pixel
multiplicatively, faint ones included: at mid levels (``r`` ≈ 1–7) a data step could grow isolated faint
pixels into bright points, which the denoiser (trained on skies with point sources) then kept. On the five
simulated EHT crescents of ``benchmarks/interferometry.py`` (8 samples each, seeds 0 and 1) 9 of 80 samples
ended with closure χ² of 2.4–38 and a few bright pixels off the ring (``docs/figures/interferometry.png`` of
2026-12-07); with ``x = softplus(z)`` (gradient ``sigmoid(z) ∇_x``: additive away from zero) 3 of 80 did. The
rate is lower, not zero: :func:`~.likelihood_posterior.failed_samples` names such samples and warns.
**Spread.** The mode of the decoupled conditional is not a draw from it: with the mode, the samples differ
through the re-noising only, and on a Gaussian toy (``tests/test_likelihood_daps.py``) their std is 0.65 of
the exact posterior's. ``randomize=True`` makes each data step a *randomize-then-optimize* draw (Bardsley
et al., SIAM J. Sci. Comput. 2014): every sample minimises its own perturbed problem, data + noise from the
likelihood's noise model (:meth:`~.likelihoods.Likelihood.perturbed`) and the centre ``x̂_0 + r ε``. For a
linear Gaussian likelihood that minimiser is an exact draw of ``∝ N(x; x̂_0, r²) p(y | x)``; on the toy the
std becomes 1.01–1.19 of the exact one. For closure likelihoods it is an approximation (they are not
Gaussian in ``x``). The benchmark reports how often the spread covers the true ring diameter.

Everything else — compact-flux handling, the prior's ``k`` and δ, flux rescaling and centring of the
final samples, χ² reporting — is :class:`~ambient_imaging.sampling.likelihood_posterior.LikelihoodSampler`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .likelihood_posterior import LikelihoodPosterior, LikelihoodSampler
from .rml import POSITIVITY, positive, positive_inverse
from .schedule import edm_sigmas

__all__ = ["LikelihoodDAPS"]


@dataclass
class LikelihoodDAPS(LikelihoodSampler):
    """Decoupled annealing with a proximal data step for interferometric likelihoods (module docs).

    Args (besides :class:`~.likelihood_posterior.LikelihoodSampler`'s): steps: annealing levels (default 30).
    iters: L-BFGS iterations of each data step (default 50). floor: the smallest pixel of ``x̂_0`` kept
    positive, as a fraction of its maximum (default 1e-4). positivity: ``"softplus"`` (default) or
    ``"exp"``, the parametrisation of the data step (module docs). randomize: randomize-then-optimize data
    steps (module docs, "Spread").
    """

    name = "likelihood-daps"
    options = frozenset({"steps", "data_terms", "flux"})

    steps: int = 30
    iters: int = 50
    floor: float = 1e-4
    positivity: str = "softplus"
    randomize: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.positivity not in POSITIVITY:
            raise ValueError(f"likelihood-daps: positivity must be 'softplus' or 'exp', got {self.positivity!r}")

    def settings(self) -> dict[str, Any]:
        """``iters``, ``floor``, ``positivity`` and ``randomize`` (recorded in ``Reconstruction.info``)."""
        return {"iters": self.iters, "floor": self.floor, "positivity": self.positivity, "randomize": self.randomize}

    def data_step(self, ctx: LikelihoodPosterior, x0_hat: Tensor, r: float, generator=None) -> Tensor:
        """``argmin_{x>0} L(s x) + ‖x − x̂_0‖²/(2r²)`` by L-BFGS on ``z`` (``x = softplus(z)`` or ``exp(z)``), from
        ``x̂_0`` (clipped positive). With ``randomize``, each sample minimises its own perturbed problem
        (randomize-then-optimize): data + noise from the likelihood's noise model, and centre
        ``x̂_0 + r ε``: for a linear Gaussian likelihood the minimiser is an exact draw of the decoupled
        conditional ``∝ N(x; x̂_0, r²) p(y | x)``, not its mode."""
        nll, centre = ctx.nll, x0_hat
        if self.randomize and ctx.randomized is not None:
            nll = ctx.randomized(x0_hat.shape[0], generator)
            centre = x0_hat + r * torch.randn(x0_hat.shape, dtype=x0_hat.dtype, generator=generator)
        peak = x0_hat.flatten(1).amax(1).clamp_min(1e-30).reshape(-1, 1, 1, 1)
        start = torch.maximum(x0_hat, self.floor * peak)
        z = positive_inverse(start, self.positivity).detach().requires_grad_(True)
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=int(self.iters), history_size=10,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

        def objective() -> Tensor:
            opt.zero_grad()
            x = positive(z, self.positivity)
            obj = (nll(x * ctx.scale) + ((x - centre) ** 2).sum(dim=(1, 2, 3)) / (2 * r**2)).sum()
            obj.backward()
            return obj

        with torch.enable_grad():
            opt.step(objective)
        return positive(z, self.positivity).detach()

    def _sample(self, ctx: LikelihoodPosterior, k: int, generator) -> Tensor:
        """Anneal: denoise, the proximal data step around the estimate, re-noise."""
        h, w = ctx.shape
        sig = edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho, append_zero=False)
        x_t = float(sig[0]) * torch.randn(k, 1, h, w, dtype=torch.float32, generator=generator)
        x0 = x_t.to(torch.float64)
        for i in range(len(sig)):
            s = float(sig[i])
            with torch.no_grad():
                x0_hat = ctx.den(x_t, s).to(torch.float64)
            x0 = self.data_step(ctx, x0_hat, s, generator)
            if i + 1 < len(sig):
                x_t = (x0 + float(sig[i + 1]) * torch.randn(x0.shape, dtype=x0.dtype, generator=generator)).float()
        return x0
