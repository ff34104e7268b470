"""One-step reconstruction with an ambient prior (A-OS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ambient_imaging.operators.base import real_dtype_like

from .denoiser import Reconstruction
from .posterior import PosteriorSampler

__all__ = ["OneStep"]


@dataclass
class OneStep(PosteriorSampler):
    """``x̂ = D(A^H y, A, σ_min)``: the ambient prior's MMSE estimate given the measurement's own mask.

    An ambient prior learned ``E[x | Ã x_t, Ã]``; at ``σ → 0`` with ``Ã = A``
    this is ``E[x | y]`` (Daras et al. 2023; Aali et al. 2025, "A-OS"). One
    network evaluation; deterministic, so ``K`` samples are identical (std 0).
    Plain (non-ambient) priors get ``D(A^H y, σ_min)`` — a denoiser applied
    to the zero-filled image, a weak baseline.
    """

    name: ClassVar[str] = "onestep"
    options = frozenset()

    steps: int = 1

    def run(self, net, y, op, *, mask_channels, generator):
        with torch.no_grad():
            x_in = op.measurements_to_image(y)
            s = torch.full((x_in.shape[0],), self.sigma_min, dtype=real_dtype_like(x_in.dtype), device=x_in.device)
            mask = None
            if mask_channels > 0:
                mask = op.mask_channels()
                if mask is None:
                    raise TypeError(f"OneStep: the prior expects mask channels but {op!r} provides none")
                mask = mask.to(device=x_in.device, dtype=s.dtype)
                mask = mask.expand(x_in.shape[0], *mask.shape[1:]) if mask.shape[0] == 1 else mask
            x = net(x_in, s, mask)
        return Reconstruction(x, nfe=1, info={"sampler": "OneStep"})
