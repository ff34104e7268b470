"""A denoiser with its conditioning fixed, and the result type shared by all samplers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator
from ambient_imaging.operators.base import real_dtype_like

__all__ = ["Denoiser", "ConditionedDenoiser", "SupportDenoiser", "Reconstruction", "repeat_operator", "restrict_to"]


class Denoiser(Protocol):
    """The network protocol: ``net(x, sigma, mask) -> E[x | x_t]`` with the shape and dtype of ``x``."""

    def __call__(self, x: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor: ...


class ConditionedDenoiser:
    """``D(x_t, σ)`` with the conditioning fixed for a whole sampling run.

    Args:
        net: a :class:`Denoiser`.
        op: an operator ``Ã`` (ambient priors): the network sees the restricted
            image ``Ã.measurements_to_image(Ã x_t)`` (``Ã^H Ã x_t`` for masks and
            MRI) and ``Ã.mask_channels()``, exactly as in ambient training
            (Daras et al. 2023, Sec. 4; Aali et al. 2025). ``None``: the network
            sees ``x_t`` itself.
        mask_channels: number of mask channels the network expects (0: none). Used
            only when ``op`` is ``None``: the mask is then all ones ("everything
            observed", the full-data limit of an ambient prior).

    ``nfe`` counts network evaluations (one per batched call).
    """

    def __init__(self, net: Denoiser, op: LinearOperator | None = None, mask_channels: int = 0):
        self.net = net
        self.op = op
        self.mask_channels = int(mask_channels)
        self.nfe = 0

    def _mask(self, x: Tensor) -> Tensor | None:
        rdt = real_dtype_like(x.dtype)
        if self.op is not None:
            m = self.op.mask_channels()
            if m is None:
                return None
            m = m.to(device=x.device, dtype=rdt)
            return m.expand(x.shape[0], *m.shape[1:]) if m.shape[0] == 1 else m
        if self.mask_channels > 0:
            return torch.ones(x.shape[0], self.mask_channels, *x.shape[-2:], dtype=rdt, device=x.device)
        return None

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        rdt = real_dtype_like(x.dtype)
        s = torch.as_tensor(sigma, dtype=rdt, device=x.device)
        s = s.expand(x.shape[0]) if s.ndim == 0 else s
        x_in = self.op.measurements_to_image(self.op.restrict(self.op.forward(x))) if self.op is not None else x
        self.nfe += 1
        return self.net(x_in, s, self._mask(x))


def restrict_to(x: Tensor, support: Tensor | None) -> Tensor:
    """``x · support`` (``support`` boolean ``(B_s, 1, H, W)``, repeated when ``x`` holds ``B_s × K`` rows);
    ``None``: ``x``. The image outside the support (e.g. where coil maps vanish) is set to 0."""
    if support is None:
        return x
    s = support.to(device=x.device, dtype=real_dtype_like(x.dtype))
    lead = x.shape[0]
    if s.shape[0] not in (1, lead):
        s = s.repeat_interleave(lead // s.shape[0], dim=0)
    return x * s.reshape(s.shape[0], *([1] * (x.ndim - s.ndim)), *s.shape[1:])


class SupportDenoiser(torch.nn.Module):
    """A prior restricted to an image support: ``net(x, σ, mask) · support``.

    For multi-coil MRI the image is only defined where the coil maps are non-zero: there ``A x = 0``
    for every ``x`` (the null space of ``A``) and the SENSE-1 reference is 0. Restricting the
    denoiser's output there makes every sampler's ODE take those pixels to 0 as ``σ → 0`` instead of
    painting structure the data cannot see (``docs/sampling.md``)."""

    def __init__(self, net: Denoiser, support: Tensor):
        super().__init__()
        self.net = net
        self.support = support.bool()

    def forward(self, x: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor:
        return restrict_to(self.net(x, sigma, mask), self.support)


def repeat_operator(op: LinearOperator, batch: int, samples: int) -> LinearOperator:
    """The operator for ``batch × samples`` rows: element ``i`` repeated ``samples`` times."""
    if op.batch_size == 1 or samples == 1:
        return op
    idx = torch.arange(batch, device=op.device).repeat_interleave(samples)
    return op[idx]


@dataclass
class Reconstruction:
    """Output of every sampler and baseline.

    Attributes:
        samples: ``(B, K, C, H, W)``: K samples per measurement (K = 1 for point estimates).
        nfe: network evaluations per sample (0 for classical methods).
        info: method-specific numbers (CG iterations, vector-Jacobian products, seconds, ...).
    """

    samples: Tensor
    nfe: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> Tensor:
        """Posterior mean estimate ``(B, C, H, W)``."""
        return self.samples.mean(dim=1)

    @property
    def std(self) -> Tensor:
        """Pixelwise posterior std ``(B, C, H, W)`` (real; ``sqrt(E|x - mean|²)`` for complex), 0 when K = 1."""
        k = self.samples.shape[1]
        if k == 1:
            return torch.zeros(self.samples[:, 0].shape, dtype=real_dtype_like(self.samples.dtype),
                               device=self.samples.device)
        d = self.samples - self.mean[:, None]
        return (d.abs() ** 2).sum(dim=1).div(k - 1).sqrt()

    def scaled(self, scale: Tensor) -> Reconstruction:
        """Copy with samples multiplied by a per-measurement scale ``(B,)``."""
        s = scale.to(device=self.samples.device, dtype=real_dtype_like(self.samples.dtype))
        return Reconstruction(self.samples * s.reshape(-1, 1, 1, 1, 1), self.nfe, dict(self.info))
