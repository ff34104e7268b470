"""Training losses that learn a denoiser from measurements only (plus the baselines to compare with).

Every loss is a :class:`~.base.Loss`: ``loss.evaluate(net, batch, generator=None)`` returns a
:class:`~.base.LossOutput` (the per-sample loss ``(B,)``, already weighted, with the σ each sample
was trained at and the band values of the trainer's diagnostics); ``loss(net, batch, generator)``
returns the per-sample loss alone. ``net`` is a Denoiser (``net(x, sigma, mask=None)``, e.g.
:class:`~ambient_imaging.networks.EDMPrecond`), ``batch`` a
:class:`~ambient_imaging.datasets.MeasurementBatch`. Randomness comes only from ``generator``
(on the batch's device), so a step is reproducible.

Conventions (see ``docs/losses.md`` for the derivations):

* VE diffusion ``x_t = x + σ η``; for complex images ``η = η_re + i η_im`` with both parts
  standard normal ("σ per real channel", matching the 2-real-channel network).
* Squared errors are averaged over the *real degrees of freedom that are scored* (a complex
  entry counts twice), so losses of samples with different sampling patterns weigh alike and the
  weighted loss is O(1) at initialisation, like EDM's.
* ``σ ~ LogNormal(P_mean, P_std)`` and ``λ(σ) = (σ² + σ_d²)/(σ σ_d)²`` (Karras et al. 2022).

Files, one idea each: :mod:`.base` (record, base class, registry :data:`LOSSES`, helpers),
:mod:`.ambient` (:class:`AmbientLoss`: Daras et al. 2023; A-DPS, Aali et al. 2025),
:mod:`.tweedie` (:class:`AmbientTweedieLoss`, :class:`ConsistencyLoss`: arXiv 2404.10177,
2411.02780), :mod:`.baselines` (:class:`OracleLoss`, :class:`NaiveLoss`), :mod:`.mixture`
(:class:`MixtureLoss`, :class:`CompleteLoss`) and :mod:`.augment` (:func:`augment`).
"""

from .ambient import AmbientLoss
from .augment import augment
from .base import LOSSES, Loss, LossOutput, NoiseGate, image_noise_sigma, loss_class, register_loss
from .baselines import NaiveLoss, OracleLoss
from .mixture import CompleteLoss, MixtureLoss
from .tweedie import AmbientTweedieLoss, ConsistencyLoss

__all__ = [
    "Loss",
    "LossOutput",
    "LOSSES",
    "NoiseGate",
    "loss_class",
    "register_loss",
    "AmbientLoss",
    "AmbientTweedieLoss",
    "ConsistencyLoss",
    "OracleLoss",
    "NaiveLoss",
    "MixtureLoss",
    "CompleteLoss",
    "augment",
    "image_noise_sigma",
]
