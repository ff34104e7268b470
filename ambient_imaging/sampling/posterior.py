"""Shared machinery of the posterior samplers (``y = A x + ε``, any operator)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator
from ambient_imaging.operators.base import expand_sigma, stack

from .denoiser import Denoiser, repeat_operator
from .method import Method
from .schedule import edm_sigmas, sigma_range

__all__ = ["PosteriorSampler", "expand_measurements", "learned_complete", "noise_variance", "per_sample_operator",
           "prior_type"]


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


def prior_type(prior: Any) -> str:
    """``"ambient"`` for a mask-conditioned ambient prior (it estimates ``E[x | Ã x_t, Ã]``, not
    ``E[x | x_t]``), ``"plain"`` for priors that denoise the whole ``x_t`` (oracle, naive, Tweedie)."""
    loss = str((getattr(prior, "config", None) or {}).get("loss", "")).lower()
    if loss and loss != "ambient":
        return "plain"
    ambient = int(getattr(prior, "mask_channels", 0) or 0) > 0 and (
        float(getattr(prior, "delta", 0.0) or 0.0) > 0 or loss == "ambient")
    return "ambient" if ambient else "plain"


def learned_complete(prior: Any) -> bool:
    """Whether a prior trained on a mixed set learned complete samples beside corrupted ones
    (``info["data_mix"]``: clean samples and another kind): it then knows ``E[x | x_t]`` too, from the
    complete samples it saw with all-ones mask channels (:class:`~ambient_imaging.training.losses.CompleteLoss`)."""
    mix = (getattr(prior, "info", None) or {}).get("data_mix") or {}
    others = int(mix.get("corrupted_slices", 0) or 0) + int(mix.get("noisy_complete_slices", 0) or 0)
    return int(mix.get("clean_slices", 0) or 0) > 0 and others > 0


@dataclass
class PosteriorSampler(Method):
    """Base class: EDM ρ-schedule and the batching of ``B`` measurements × ``K`` samples.

    Subclasses implement :meth:`run` on the expanded batch. :meth:`for_prior` builds one with the
    user's options and :meth:`fit` keeps it inside the σ range the prior was trained for.
    """

    needs_prior = True
    options = frozenset({"steps"})
    #: the prior types it evaluates correctly (:func:`prior_type`): ``"ambient"``, ``"plain"``
    prior_types: ClassVar[frozenset[str]] = frozenset({"ambient", "plain"})

    steps: int = 50
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    heun: bool = True
    s_churn: float = 0.0
    progress: bool = False

    def sigmas(self) -> Tensor:
        """The EDM ρ-schedule of this sampler (``steps + 1`` values ending in 0)."""
        return edm_sigmas(self.steps, self.sigma_min, self.sigma_max, self.rho)

    @classmethod
    def suits(cls, prior: Any) -> bool:
        """Whether this sampler evaluates ``prior``'s type (:func:`prior_type`) the way it was trained."""
        return prior_type(prior) in cls.prior_types

    def fit(self, prior: Any | None) -> PosteriorSampler:
        """A copy kept inside the prior's σ range (σ_min ≥ its σ_min and noise σ_n, σ_max ≤ its σ_max).
        Idempotent; subclasses add what else they take from the prior (A-DPS: its δ)."""
        if prior is None:
            return self
        lo, hi = sigma_range(prior, self.sigma_min, self.sigma_max)
        return dataclasses.replace(self, sigma_min=lo, sigma_max=hi)

    @classmethod
    def for_prior(cls, prior: Any | None = None, **options: Any) -> PosteriorSampler:
        """The sampler for ``prior`` with the user's validated options, fitted to the prior (:meth:`fit`)."""
        return cls(**cls.accepted(prior, **options)).fit(prior)

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
