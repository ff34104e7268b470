"""Shared machinery of the posterior samplers (``y = A x + ε``, any operator)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator
from ambient_imaging.operators.base import expand_sigma, real_dtype_like, stack

from .denoiser import Denoiser, repeat_operator
from .schedule import edm_sigmas

__all__ = ["PosteriorSampler", "expand_measurements", "noise_variance", "per_sample_operator"]


def expand_measurements(y: Tensor, op: LinearOperator, samples: int) -> tuple[Tensor, LinearOperator]:
    """Repeat each of the ``B`` measurements ``samples`` times: ``(B·K, ...)`` and the matching operator."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if op.batch_size not in (1, y.shape[0]):
        raise ValueError(
            f"the operator holds {op.batch_size} elements but there are {y.shape[0]} measurements"
        )
    return y.repeat_interleave(samples, dim=0), repeat_operator(op, y.shape[0], samples)


def per_sample_operator(op: LinearOperator, n: int) -> LinearOperator:
    """``op`` with one element per row (a batch-1 operator is copied ``n`` times where it can be)."""
    if op.batch_size == n or n == 1:
        return op
    try:
        out = stack([op] * n)
    except (TypeError, ValueError):
        return op
    return out if out.batch_size == n else op


def noise_variance(op: LinearOperator, y: Tensor, floor: float) -> float | Tensor:
    """Variance of the measurement noise per real component, broadcastable to ``y``.

    Real data: ``σ²``. Complex data (circular noise, ``E|ε|² = σ²``): ``σ²/2`` for
    each of the real and imaginary parts. ``σ`` is floored at ``floor``
    (noiseless data are treated as very slightly noisy, which keeps the linear
    systems well posed).
    """
    sigma = expand_sigma(op.noise_sigma, y)
    if isinstance(sigma, Tensor):
        var = sigma.clamp_min(floor) ** 2
    else:
        var = max(float(sigma), floor) ** 2
    return var / 2 if y.is_complex() else var


@dataclass
class PosteriorSampler:
    """Base class: EDM ρ-schedule and the batching of ``B`` measurements × ``K`` samples.

    Subclasses implement :meth:`run` on the expanded batch.
    """

    steps: int = 50
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    heun: bool = True
    s_churn: float = 0.0
    progress: bool = False

    def sigmas(self) -> Tensor:
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)

    @staticmethod
    def image_template(y: Tensor, op: LinearOperator) -> Tensor:
        """An image-shaped tensor (``A^H y``) giving the shape and dtype of the unknown."""
        with torch.no_grad():
            return op.adjoint(y)

    def __call__(
        self,
        net: Denoiser,
        y: Tensor,
        op: LinearOperator,
        *,
        samples: int = 1,
        mask_channels: int = 0,
        generator: torch.Generator | None = None,
    ):
        """Draw ``samples`` posterior samples for each of the ``B`` measurements ``y``.

        Args:
            net: the prior (Denoiser protocol).
            y: measurements ``(B, ...)`` in the prior's units (normalised).
            op: their operator (batch 1 or B), noise included.
            samples: K.
            mask_channels: mask channels the network expects (0 for plain priors).
        Returns:
            :class:`~ambient_imaging.sampling.Reconstruction` with samples ``(B, K, C, H, W)``.
        """
        b = y.shape[0]
        yk, opk = expand_measurements(y, op, samples)
        rec = self.run(net, yk, opk, mask_channels=mask_channels, generator=generator)
        s = rec.samples
        rec.samples = s.reshape(b, samples, *s.shape[1:])
        return rec

    def run(self, net, y, op, *, mask_channels, generator):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def real_dtype(x: Tensor) -> torch.dtype:
        return real_dtype_like(x.dtype)
