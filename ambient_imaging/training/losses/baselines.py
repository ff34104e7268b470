"""The baselines every comparison needs: the oracle (clean data, evaluation only) and the naive model.

Both are the plain EDM loss (Karras et al. 2022) on an image: the clean reference (oracle) or
``A.measurements_to_image(y)`` treated as if clean (naive).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch

from ..sigma import WEIGHTINGS, LogNormalSigma
from .base import (
    Loss,
    LossOutput,
    b4,
    check_mask_mode,
    check_sigma_data,
    check_sigma_dist,
    config_sigma_data,
    mask_for,
    randn_image,
    register_loss,
    sample_sigma,
    sq,
    weighted_output,
)

__all__ = ["OracleLoss", "NaiveLoss", "edm_on_images"]


def edm_on_images(
    net: Any,
    x: Tensor,
    mask: Tensor | None,
    sigma_dist: LogNormalSigma,
    sigma_data: float,
    generator: torch.Generator | None,
    weighting: str = "edm",
) -> LossOutput:
    """Plain EDM denoising loss ``λ(σ) ‖D(x + σ η, σ) − x‖² / dof`` per sample."""
    b = x.shape[0]
    sigma = sample_sigma(sigma_dist, b, x, generator)
    x_t = x + b4(sigma, x.ndim) * randn_image(x, generator)
    logvar = None
    if weighting == "uncertainty":
        d, logvar = net(x_t, sigma, mask=mask, return_logvar=True)
    else:
        d = net(x_t, sigma, mask=mask)
    n = x[0].numel() * (2 if x.is_complex() else 1)
    return weighted_output(sq(d - x) / n, sigma, sigma_data, weighting, None, 0.0, logvar)


class _ImageBaseline(Loss):
    """What the two baselines share: built from a config with all-ones mask channels for a network
    that takes a mask (so that every loss trains the same network)."""

    @classmethod
    def from_config(cls, cfg: Any, noise_sigma: float = 0.0, mask_channels: int = 0, family: Any = None) -> Loss:
        return cls(sigma_data=config_sigma_data(cfg), mask="ones" if mask_channels > 0 else "none",
                   weighting=cfg.weighting)

    @classmethod
    def learns_uncertainty(cls, cfg: Any) -> bool:
        return cfg.weighting == "uncertainty"


@register_loss
class OracleLoss(_ImageBaseline):
    r"""Plain EDM loss on the clean images ``batch.reference`` (evaluation / upper-bound baseline only).

    ``L = λ(σ) ‖D(x + σ η, σ) − x‖² / dof`` (Karras et al. 2022, Eq. 2 with Table 1 weighting).
    ``mask="ones"`` feeds all-ones mask channels (shaped like ``op.mask_channels()``) to networks
    that expect a mask.
    """

    def __init__(self, sigma_dist: LogNormalSigma | None = None, sigma_data: float = 0.5, mask: str = "none",
                 weighting: str = "edm"):
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"OracleLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.mask = check_mask_mode(mask, ("none", "ones"))

    name = "oracle"
    needs_reference = True

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The EDM loss on the clean references of one batch."""
        if batch.reference is None:
            raise ValueError(
                "OracleLoss needs clean images in batch.reference; it is an evaluation/baseline loss and real "
                "measurement data has none (use AmbientLoss or AmbientTweedieLoss)"
            )
        x = batch.reference
        return edm_on_images(net, x, mask_for(batch.op, self.mask, x, net), self.sigma_dist,
                             self.sigma_data, generator, self.weighting)


@register_loss
class NaiveLoss(_ImageBaseline):
    r"""Naive baseline: treat ``x̂ = A.measurements_to_image(y)`` (masked / zero-filled image) as clean.

    ``L = λ(σ) ‖D(x̂ + σ η, σ) − x̂‖² / dof``. Learns the distribution of corrupted images.
    ``mask``: ``"none"`` (no mask to the network), ``"ones"``, or ``"operator"`` (A's mask channels).
    Also the right loss for *clean* samples (A = identity) in a :class:`MixtureLoss`.
    """

    def __init__(self, sigma_dist: LogNormalSigma | None = None, sigma_data: float = 0.5, mask: str = "none",
                 weighting: str = "edm"):
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"NaiveLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.weighting = weighting
        self.mask = check_mask_mode(mask, ("none", "ones", "operator"))

    name = "naive"

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The EDM loss on ``A.measurements_to_image(y)`` of one batch."""
        x = batch.op.measurements_to_image(batch.y).detach()
        return edm_on_images(net, x, mask_for(batch.op, self.mask, x, net), self.sigma_dist,
                             self.sigma_data, generator, self.weighting)
