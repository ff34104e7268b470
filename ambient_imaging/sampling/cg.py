"""Batched conjugate gradients for Hermitian positive (semi-)definite systems.

Works for real and complex tensors under the real inner product
``<a, b> = Re Σ conj(a) b`` (per batch element), which is all that is needed
for operators that are self-adjoint in that sense (``A^H A + λ I``,
``A Σ A^H + Σ_y``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["conjugate_gradient", "batch_inner"]


def batch_inner(a: Tensor, b: Tensor) -> Tensor:
    """``Re <a_i, b_i>`` per batch element (leading dim), shape ``(B,)``."""
    if a.is_complex():
        prod = (torch.conj(a) * b).real
    else:
        prod = a * (b.real if b.is_complex() else b)
    return prod.reshape(a.shape[0], -1).sum(dim=1)


def conjugate_gradient(
    apply: Callable[[Tensor], Tensor],
    b: Tensor,
    x0: Tensor | None = None,
    max_iter: int = 20,
    tol: float = 1e-6,
) -> tuple[Tensor, int]:
    """Solve ``M x = b`` for each batch element with conjugate gradients.

    Args:
        apply: ``x -> M x`` on batched tensors shaped like ``b`` (Hermitian PSD per element).
        b: right-hand side ``(B, ...)``.
        x0: initial guess (zeros by default).
        max_iter: maximum number of iterations (each costs one ``apply``).
        tol: stop when every element's relative residual ``‖r‖/‖b‖`` is below ``tol``.

    Returns:
        ``(x, iterations)``. Elements that converged stop updating (their step is 0).
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = batch_inner(r, r)
    bnorm = batch_inner(b, b).clamp_min(torch.finfo(rs.dtype).tiny).sqrt()
    shape = (-1,) + (1,) * (b.ndim - 1)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        active = rs.sqrt() > tol * bnorm
        if not bool(active.any()):
            it -= 1
            break
        mp = apply(p)
        pmp = batch_inner(p, mp)
        alpha = torch.where(active & (pmp > 0), rs / pmp.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs))
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * mp
        rs_new = batch_inner(r, r)
        beta = torch.where(active, rs_new / rs.clamp_min(torch.finfo(rs.dtype).tiny), torch.zeros_like(rs))
        p = r + beta.reshape(shape) * p
        rs = rs_new
    return x, it
