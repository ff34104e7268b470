"""Ambient MMPS: moment matching for mask-conditioned ambient priors, consistent by construction.

An ambient prior estimates ``D = E[x | Ã x_t, Ã]`` from ``u = Ã^H Ã x_t`` and ``Ã``'s mask.
With ``Π`` the projection onto ``Ã``'s rows and ``C = Cov[x | Ã x_t]``, Tweedie gives
``∂D/∂x_t = C Π / σ²`` (only ``Π x_t`` enters). :class:`AmbientMMPS` evaluates the prior with
the measurement's own operator, ``Ã = A`` — the choice :class:`~ambient_imaging.sampling.OneStep`
(A-OS) makes at σ → 0 — so that ``Π`` covers every row of ``A`` (``A Π = A``). Then

* the system ``A (σ² J^T) A^H = A Π C A^H = A C A^H`` is symmetric positive semi-definite
  (vector-Jacobian products, CG as in MMPS), and
* the correction uses a Jacobian-vector product: ``σ² J A^H u = C Π A^H u = C A^H u``
  (a vector-Jacobian product would return ``Π C A^H u``, which never corrects the null space
  of ``A``),

so ``D + C A^H (A C A^H + Σ_y)^{-1}(y − A D) = E[x | A x_t, y]`` exactly for a Gaussian prior.
Driving the EDM ODE with it samples the row space of ``A`` exactly from ``p(· | y)``; the null
space of ``A`` gets the exact posterior mean but only the part of its posterior covariance that
is explained by the rows, i.e. ``Cov[x | y] − Cov[x | A x]``. No sampler that evaluates the
prior only through ``Ã ⊆ A`` can do better: ``E[x | Ã x_t]`` depends on the prior covariance
only through its columns on ``Ã``'s rows, so ``Cov[x | A x]`` is not identifiable from such
evaluations (``docs/sampling.md``, with the toy's numbers).

The network must have seen masks like ``A``'s (train over a range of accelerations): ``A``'s
own mask is what the one-step estimate uses too. ``subsample_delta > 0`` instead draws one
``Ã = A.subsample(δ)`` per sample (protected rows kept) and runs the same scheme on ``Ã``:
then rows of ``A`` outside ``Ã`` only inform the estimate through ``C``'s columns on ``Ã``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .denoiser import ConditionedDenoiser
from .mmps import MMPS
from .posterior import per_sample_operator

__all__ = ["AmbientMMPS"]


@dataclass
class AmbientMMPS(MMPS):
    """MMPS for mask-conditioned ambient priors: the prior sees ``A``'s own mask, JVP correction.

    Same knobs as :class:`~ambient_imaging.sampling.MMPS` (50 Heun steps, CG to ``cg_tol``,
    warm start, ``sigma_y_floor``); the extra cost is one Jacobian-vector product per
    denoiser call (forward-mode AD). ``subsample_delta`` (default 0: ``Ã = A``) draws
    ``Ã = A.subsample(δ)`` per sample instead (the operator's protected rows are kept).
    Not a default sampler: exact on the toy, it diverged with trained networks (``docs/sampling.md``).
    """

    name: ClassVar[str] = "ambient-mmps"
    prior_types = frozenset({"ambient"})

    subsample_delta: float = 0.0

    def prior_denoiser(self, net, op, mask_channels: int, generator, n: int) -> ConditionedDenoiser:
        """The prior evaluated through ``Ã = A`` (or ``A.subsample(subsample_delta)``): the ambient conditioning."""
        if mask_channels > 0 and op.mask_channels() is None:
            raise TypeError(f"AmbientMMPS: the prior expects mask channels but {op!r} provides none")
        if self.subsample_delta > 0:
            if not hasattr(op, "subsample"):
                raise TypeError(f"AmbientMMPS: subsample_delta needs a subsampling operator, got {op!r}")
            return ConditionedDenoiser(net, per_sample_operator(op, n).subsample(self.subsample_delta, generator))
        return ConditionedDenoiser(net, op)

    def correct_with_jvp(self) -> bool:
        return True
