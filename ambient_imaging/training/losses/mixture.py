"""Mixed collections: a few clean samples, many corrupted ones, each trained with its own loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch

from .base import Loss, LossOutput, NoiseGate

__all__ = ["MixtureLoss", "as_output", "select"]


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


def select(batch: MeasurementBatch, idx: list[int]) -> MeasurementBatch:
    if len(idx) == len(batch):
        return batch
    t = torch.tensor(idx, device=batch.y.device)
    op = batch.op if batch.op.batch_size == 1 else batch.op[t]
    ref = batch.reference[t] if isinstance(batch.reference, Tensor) else batch.reference
    meta = [batch.meta[i] for i in idx] if batch.meta else []
    return MeasurementBatch(batch.y[t], op, batch.scale[t.to(batch.scale.device)], meta, ref)
