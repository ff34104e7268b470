"""Regularisation chosen from the data: k-space cross-validation on held-out measured lines.

No reference image is needed. A fraction of the measured rows of ``A`` (MRI: phase-encode lines
outside the ACS, which is always kept) is held out; each candidate λ (and, for CG-SENSE, each
iteration count) reconstructs from the remaining rows, and the one whose image best *predicts the
held-out measurements* wins: ``err(λ) = ‖A_held x_λ − y_held‖²``. The noise in ``y_held`` is
independent of the fit, so the expected error is the prediction error plus a constant: it is
minimal where the reconstruction is closest to the truth on those k-space lines (Ward 2001; the
"k-space cross-validation" used for CS-MRI, e.g. Ward, J. Magn. Reson. Imaging 2001). The final
image uses every measured line and the chosen λ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ambient_imaging.operators import LinearOperator

__all__ = ["HoldOut", "split_rows", "prediction_error", "cross_validate", "cg_path", "can_hold_out"]


def can_hold_out(op: LinearOperator) -> bool:
    """Whether ``op`` has measured rows outside its protected set (ACS) in every sample, so that
    :func:`split_rows` can hold some out (a centre-only mask has none: then no cross-validation)."""
    rows = op.row_mask().bool()
    keep = op.default_keep()
    free = rows & ~keep.bool() if keep is not None else rows
    return bool(free.reshape(free.shape[0], -1).any(1).all())


@dataclass
class HoldOut:
    """A split of an operator's measured rows: ``fit`` (the operator on the rows kept) and ``held``
    (the operator on the held-out rows), with the measurements restricted to each."""

    fit: LinearOperator
    held: LinearOperator
    y_fit: Tensor
    y_held: Tensor
    fraction: float
    info: dict = field(default_factory=dict)


def split_rows(y: Tensor, op: LinearOperator, fraction: float = 0.2, seed: int = 0, fold: int = 0) -> HoldOut:
    """Hold out ``fraction`` of the measured rows of ``op`` that are not protected (ACS), per sample.

    The unprotected rows are dealt, in a seeded random order, into ``round(1 / fraction)`` disjoint
    folds; ``fold`` picks the one held out (so folds ``0 … 1/fraction − 1`` together hold out every
    such row once: K-fold cross-validation). At least one row is held out when any unprotected row
    exists; ``ValueError`` when there is none (fully protected data).
    """
    rows = op.row_mask().bool()
    keep = op.default_keep()
    free = rows & ~keep.bool() if keep is not None else rows.clone()
    g = torch.Generator().manual_seed(int(seed))
    u = torch.rand(free.shape, generator=g).to(free.device)
    n_folds = max(1, int(round(1.0 / float(fraction))))
    held = torch.zeros_like(free)
    for b in range(free.shape[0]):
        idx = torch.nonzero(free[b].reshape(-1)).reshape(-1)
        if idx.numel() == 0:
            raise ValueError("k-space cross-validation: every measured row is protected (ACS); nothing to hold out")
        order = idx[torch.argsort(u[b].reshape(-1)[idx])]
        pick = order[int(fold) % min(n_folds, order.numel()) :: min(n_folds, order.numel())]
        held[b].view(-1)[pick] = True
    fit_op, held_op = op.with_rows(rows & ~held), op.with_rows(held)
    return HoldOut(fit_op, held_op, fit_op.restrict(y), held_op.restrict(y), float(fraction),
                   {"held_rows": int(held.sum()), "rows": int(rows.sum()), "fold": int(fold)})


def prediction_error(split: HoldOut, x: Tensor) -> Tensor:
    """``‖A_held x − y_held‖² / ‖y_held‖²`` per sample ``(B,)``."""
    with torch.no_grad():
        r = split.held.forward(x) - split.y_held
        num = (r.abs() ** 2).reshape(r.shape[0], -1).sum(1)
        den = (split.y_held.abs() ** 2).reshape(r.shape[0], -1).sum(1).clamp_min(1e-300)
    return (num / den).to(torch.float64).cpu()


def cross_validate(y: Tensor, op: LinearOperator, solve: Callable[[Tensor, LinearOperator, float], Tensor],
                   grid: Sequence[float], fraction: float = 0.2, seed: int = 0, folds: int = 1
                   ) -> tuple[float, dict[float, float]]:
    """The λ of ``grid`` whose reconstructions ``solve(y_fit, op_fit, λ)`` best predict the held-out rows,
    averaged over the first ``folds`` folds of :func:`split_rows` (one λ for the whole batch: the mean
    relative error over samples and folds). Returns ``(λ, {λ: error})``."""
    errors = {float(lam): 0.0 for lam in grid}
    for fold in range(int(folds)):
        split = split_rows(y, op, fraction, seed, fold)
        for lam in grid:
            err = prediction_error(split, solve(split.y_fit, split.fit, float(lam)))
            errors[float(lam)] += float(err.mean()) / int(folds)
    return min(errors, key=errors.get), errors


def cg_path(apply: Callable[[Tensor], Tensor], b: Tensor, max_iter: int) -> list[Tensor]:
    """The conjugate-gradient iterates ``x_1 … x_n`` of ``apply(x) = b`` (batched, real inner product
    ``Re Σ conj(a) b``; an element whose residual vanishes stops moving): what CG-SENSE returns after
    ``n`` iterations, for every ``n`` at once."""
    def inner(u: Tensor, v: Tensor) -> Tensor:
        return (u.conj() * v).real.reshape(u.shape[0], -1).sum(1)

    shape = (-1,) + (1,) * (b.ndim - 1)
    x, r = torch.zeros_like(b), b.clone()
    p, rs = r.clone(), inner(r, r)
    out = []
    for _ in range(int(max_iter)):
        ap = apply(p)
        alpha = torch.where(rs > 0, rs / inner(p, ap).clamp_min(1e-300), torch.zeros_like(rs))
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * ap
        rs_new = inner(r, r)
        beta = torch.where(rs > 0, rs_new / rs.clamp_min(1e-300), torch.zeros_like(rs))
        p, rs = r + beta.reshape(shape) * p, rs_new
        out.append(x)
    return out
