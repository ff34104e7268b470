"""Evaluating an ambient prior with masks of its training distribution drawn independently of ``A``.

A mask-conditioned ambient prior learned ``h(x_t, Ã) = E[x | Ã x_t, Ã]`` for masks ``Ã`` across its
training distribution, including rows outside any one measurement's ``A``. Evaluated only through
``Ã ⊆ A`` it says nothing about the null space of ``A``; evaluated through *fresh* masks it does:

* :func:`fresh_operator` draws training-type operators independent of ``A``: every unprotected row
  kept with the probability that gives ``A``'s number of rows, the protected rows (MRI ACS) always,
  then ``subsample(δ)`` as in ambient training;
* :class:`MaskEnsembleDenoiser` averages ``h(x_t, Ã_k)`` over ``k`` fresh masks, drawn anew at every
  call (``k = 1``: one fresh mask per call, a stochastic denoiser), as an estimate of
  ``E[x | x_t] = E_Ã[E[x | x_t, Ã]]`` when the masks cover the rows (``docs/sampling.md`` derives
  where it is exact and how it is biased).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

from .denoiser import ConditionedDenoiser, Denoiser

__all__ = ["fresh_operator", "MaskEnsembleDenoiser"]


def fresh_operator(op: LinearOperator, n: int, delta: float = 0.0, generator: torch.Generator | None = None,
                   with_own: bool = False) -> LinearOperator:
    """``n`` training-type operators with rows drawn independently of ``op``'s (batch ``n``).

    Each unprotected row is kept with probability ``(rows − protected) / (all − protected)`` of
    ``op`` (so a fresh operator has ``op``'s number of rows on average), protected rows always;
    then ``subsample(delta)`` keeps each with ``1 − δ`` (protected rows kept), as ambient training
    draws ``Ã``. ``with_own``: add ``op``'s own rows to the fresh ones before the δ draw (a mask that
    sees everything ``A`` measures plus rows of ``A``'s null space).
    """
    sub = op.subsampling_factor()
    if sub is None:
        raise TypeError(f"fresh masks need an operator with rows to draw, got {op!r}")
    rows = sub.row_mask().bool()
    prot = sub.protected_rows()
    prot_t = torch.zeros_like(rows) if prot is None else torch.broadcast_to(prot.to(rows.device).bool(), rows.shape)
    flat, pflat = rows.reshape(rows.shape[0], -1).float(), prot_t.reshape(rows.shape[0], -1).float()
    free = (flat.shape[1] - pflat.sum(1)).clamp_min(1.0)
    p = ((flat.sum(1) - pflat.sum(1)) / free).clamp(0.0, 1.0)
    shape = (n, *rows.shape[1:])
    u = torch.rand(shape, generator=generator, device=rows.device)
    p = p.reshape(-1, *([1] * (len(shape) - 1)))
    new = (u < p) | (prot_t[:1] if prot_t.shape[0] == 1 else prot_t)
    if with_own:
        new = new | rows
    out = op.with_rows(new)
    return out.subsample(delta, generator) if delta > 0 else out


class MaskEnsembleDenoiser:
    """``(1/k) Σ_j h(x_t, Ã_j)`` over ``k`` fresh training-type masks (:func:`fresh_operator`) per call.

    Args:
        net: the ambient prior (``net(u, σ, mask)``); op: the measurement's operator (batch ``n``),
            whose row count and protected rows define the fresh masks; k: masks per call;
        delta: the prior's training δ; generator: the random source of the masks.

    ``nfe`` counts network evaluations (``k`` per call).
    """

    def __init__(self, net: Denoiser, op: LinearOperator, k: int = 4, delta: float = 0.0,
                 generator: torch.Generator | None = None, with_own: bool = False):
        if int(k) < 1:
            raise ValueError(f"MaskEnsembleDenoiser: k must be >= 1, got {k}")
        self.net, self.op, self.k, self.delta, self.generator = net, op, int(k), float(delta), generator
        self.with_own = bool(with_own)
        self.nfe = 0

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        out = None
        for _ in range(self.k):
            fresh = fresh_operator(self.op, x.shape[0], self.delta, self.generator, self.with_own)
            den = ConditionedDenoiser(self.net, fresh)
            d = den(x, sigma)
            out = d if out is None else out + d
        self.nfe += self.k
        return out / self.k  # type: ignore[operator]
