"""Mixed collections: a few clean samples, many corrupted ones, each trained with its own loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch

from ..sigma import LogNormalSigma
from .base import (
    Loss,
    LossOutput,
    NoiseGate,
    b4,
    check_sigma_data,
    check_sigma_dist,
    image_noise_sigma,
    mask_for,
    randn_image,
    real_dtype,
    sq,
    weighted_output,
)

__all__ = ["MixtureLoss", "CompleteLoss", "as_output", "select"]


def as_output(loss: Any, net: Any, batch: MeasurementBatch, generator: torch.Generator | None) -> LossOutput:
    """The record of any loss: ``loss.evaluate`` for :class:`Loss` objects, else a plain per-sample tensor."""
    if isinstance(loss, Loss):
        return loss.evaluate(net, batch, generator)
    return LossOutput(loss(net, batch, generator))


class MixtureLoss(Loss):
    """Mixture of clean and corrupted samples: ``meta[i][key]`` truthy selects ``clean_loss``.

    Typical use: ``MixtureLoss(NaiveLoss(mask="ones"), AmbientLoss(...))`` — for clean samples
    ``A^H y`` is the clean image, so the plain EDM loss applies. Returns the (B,) per-sample losses
    in the batch order. Samples without the key are corrupted. :meth:`evaluate` merges the
    parts' records, so the per-σ-band diagnostics cover both kinds of samples.

    ``gate`` (a :class:`~.base.NoiseGate`): Ambient Omni's noise-level gating — a noisy sample
    (σ_n > 0) trains only at σ at or above its crossing point, with σ drawn from the same
    distribution as the clean samples'; clean samples train at every σ. Typical use:
    ``MixtureLoss(NaiveLoss(), AmbientTweedieLoss(sigma_n=None), gate=NoiseGate())``: then at
    every σ the loss is minimised by the clean data's denoiser ``E[x | x_t]`` (below the crossing
    point only the clean samples speak; above it the Tweedie loss has the same minimiser).
    """

    def __init__(self, clean_loss: Any, corrupted_loss: Any, key: str = "clean", gate: NoiseGate | None = None):
        if not callable(clean_loss) or not callable(corrupted_loss):
            raise TypeError("MixtureLoss: clean_loss and corrupted_loss must be losses (callables)")
        if gate is not None:
            if not hasattr(corrupted_loss, "gated"):
                raise TypeError(f"MixtureLoss: gate needs a corrupted loss that trains noisy samples above a "
                                f"crossing point (AmbientTweedieLoss), got {type(corrupted_loss).__name__}")
            corrupted_loss = corrupted_loss.gated(gate)
        self.clean_loss = clean_loss
        self.corrupted_loss = corrupted_loss
        self.key = key
        self.gate = gate

    name = "mixture"

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """Each part on its samples; one record in the batch order (σ and band values merged)."""
        b = len(batch)
        flags = [bool(batch.meta[i].get(self.key, False)) if i < len(batch.meta) else False for i in range(b)]
        parts: list[tuple[list[int], LossOutput]] = []
        for want, loss in ((True, self.clean_loss), (False, self.corrupted_loss)):
            idx = [i for i in range(b) if flags[i] == want]
            if idx:
                parts.append((idx, as_output(loss, net, select(batch, idx), generator)))
        return LossOutput.merge(parts, b)


class CompleteLoss(Loss):
    r"""The loss of *complete* samples (every pixel, or every k-space line inside the band, measured),
    clean or noisy: DESIGN.md's loss 2 (Ambient Tweedie) with Ambient Omni's gate.

    With ``x̂ = A.measurements_to_image(y)`` and σ_n' the sample's noise per real image channel
    (:func:`~.base.image_noise_sigma`; a ``(B,)`` operator noise gives one level per sample)::

        x_t = x̂ + √(σ² − σ_n'²) η,    a = σ_n'²/σ²
        L = w(σ) ‖(1 − a) D(x_t, σ) + a x_t − x̂‖² / dof

    A clean sample (σ_n' = 0) gets the plain EDM loss at every σ. A noisy one trains only at σ at or
    above its crossing point ``gate.factor · σ_n'`` (σ drawn from the same distribution for every
    sample, the sample gated out below: :class:`~.base.NoiseGate`), where Tweedie makes the clean
    denoiser ``E[x | x_t]`` the minimiser. ``gate=None`` (``--gate off``, an ablation and the
    behaviour before the gate): every sample trains at every σ as if clean (plain EDM on ``x̂``).

    ``mask="operator"``: the network sees the operator's mask channels (all ones for a complete
    sample; the band for fully sampled MRI). For MRI ``x̂ = A^H y`` is band-limited and zero where the
    coil maps vanish, so the noise of ``x̂`` is white only inside the band and the support (the
    Tweedie identity is exact there, approximate at the few padded columns).
    """

    name = "complete"

    def __init__(self, sigma_dist: LogNormalSigma | None = None, sigma_data: float = 0.5,
                 gate: NoiseGate | None = None, weighting: str = "edm", mask: str = "operator"):
        if gate is not None and not isinstance(gate, NoiseGate):
            raise TypeError(f"CompleteLoss: gate must be a NoiseGate or None, got {type(gate).__name__}")
        if weighting not in ("edm", "uncertainty"):
            raise ValueError(f"CompleteLoss: weighting must be 'edm' or 'uncertainty', got {weighting!r}")
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)
        self.gate = gate
        self.weighting = weighting
        self.mask = mask

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The (gated) Tweedie loss of complete samples; EDM for the clean ones."""
        op = batch.op
        x = op.measurements_to_image(batch.y).detach()
        b, rdt = x.shape[0], real_dtype(x)
        sn = torch.as_tensor(image_noise_sigma(op, batch.y, x), device=x.device, dtype=rdt).reshape(-1).expand(b)
        active = None
        if self.gate is None:  # as if clean: no Tweedie correction, every σ
            sn = torch.zeros_like(sn)
            sigma = self.sigma_dist.sample(b, generator=generator, device=x.device, dtype=rdt)
        else:
            sigma, active = self.gate.draw(self.sigma_dist, sn, generator)
        x_t = x + b4(torch.sqrt((sigma**2 - sn**2).clamp_min(0)), x.ndim) * randn_image(x, generator)
        mask = mask_for(op, self.mask, x, net)
        logvar = None
        if self.weighting == "uncertainty":
            d, logvar = net(x_t, sigma, mask=mask, return_logvar=True)
        else:
            d = net(x_t, sigma, mask=mask)
        a = b4(sn**2 / sigma**2, x.ndim)
        n = x[0].numel() * (2 if x.is_complex() else 1)
        out = weighted_output(sq((1 - a) * d + a * x_t - x) / n, sigma, self.sigma_data, self.weighting, None, 0.0,
                              logvar)
        if active is not None:  # below its crossing point a sample does not train at this σ
            keep = active.to(out.per_sample.dtype)
            out = LossOutput(out.per_sample * keep, out.sigma, None if out.weighted is None else out.weighted * keep,
                             active)
        return out


def select(batch: MeasurementBatch, idx: list[int]) -> MeasurementBatch:
    if len(idx) == len(batch):
        return batch
    t = torch.tensor(idx, device=batch.y.device)
    op = batch.op if batch.op.batch_size == 1 else batch.op[t]
    ref = batch.reference[t] if isinstance(batch.reference, Tensor) else batch.reference
    meta = [batch.meta[i] for i in idx] if batch.meta else []
    return MeasurementBatch(batch.y[t], op, batch.scale[t.to(batch.scale.device)], meta, ref)
