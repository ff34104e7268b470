"""Checks for operator implementations (used by our tests; useful for yours)."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import LinearOperator, real_inner

__all__ = ["dot_product_test", "random_like_measurements"]


def _rand(shape, dtype, generator) -> Tensor:
    if dtype.is_complex:
        rdt = {torch.complex64: torch.float32, torch.complex128: torch.float64}[dtype]
        return torch.complex(
            torch.randn(shape, dtype=rdt, generator=generator), torch.randn(shape, dtype=rdt, generator=generator)
        )
    return torch.randn(shape, dtype=dtype, generator=generator)


def random_like_measurements(op: LinearOperator, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random tensor in the measurement space of ``op`` (restricted to measured rows)."""
    y0 = op.forward(x)
    y = _rand(y0.shape, y0.dtype, generator).to(y0.device)
    return op.restrict(y)


def dot_product_test(
    op: LinearOperator,
    x_shape: tuple[int, ...],
    dtype: torch.dtype = torch.complex128,
    seed: int = 0,
) -> float:
    """Relative error of the adjoint identity ``Re<A x, y> = Re<x, A^H y>``.

    ``x`` and ``y`` are random; the error is normalised by ``‖A x‖ ‖y‖``.
    Returns the relative error (should be ~1e-15 in double precision).
    """
    g = torch.Generator().manual_seed(seed)
    x = _rand(x_shape, dtype, g)
    dev = op.device
    if dev is not None:
        x = x.to(dev)
    ax = op.forward(x)
    y = random_like_measurements(op, x, g)
    aty = op.adjoint(y)
    lhs = real_inner(ax, y)
    rhs = real_inner(x, aty)
    scale = torch.linalg.vector_norm(ax) * torch.linalg.vector_norm(y)
    if float(scale) == 0.0:
        raise ValueError("dot_product_test: A x or y is zero; cannot test")
    return float(torch.abs(lhs - rhs) / scale)


