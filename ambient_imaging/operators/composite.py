"""The composite algebra: ``A @ B`` (:class:`ComposedOperator`), ``c · A`` (:class:`ScaledOperator`), :func:`stack`.

Each composite answers every question of the operator contract once, the way sigpy's
``linop.py`` does (``Compose``/``Multiply``): rows, noise, family, mask channels, the Ã draw,
the dihedral transform. Nobody outside ``operators/`` looks inside a composite.

Rows of a composition: ``outer ∘ inner`` has ``outer``'s rows when ``outer`` is a
subsampling operator, and ``inner``'s rows when ``outer`` acts elementwise on the
measurements (``GaussianNoise(σ) @ PixelMask(m)``); otherwise it has none.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import LinearOperator, OpT, SubsamplingOperator

__all__ = ["ComposedOperator", "ScaledOperator", "stack"]


class ComposedOperator(LinearOperator):
    """``outer ∘ inner``: ``x -> outer(inner(x))``; noise is the outer operator's.

    Subsampling (``mask``, ``subsample``, ``with_rows``) is delegated to ``outer`` when it is a
    subsampling operator, or to ``inner`` when ``outer`` acts elementwise on the
    measurements (e.g. ``GaussianNoise(σ) @ PixelMask(m)``).
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        self.outer = outer
        self.inner = inner
        bo, bi = outer.batch_size, inner.batch_size
        if bo != 1 and bi != 1 and bo != bi:
            raise ValueError(f"cannot compose operators with batch sizes {bo} and {bi}")
        if outer.device is not None and inner.device is not None and outer.device != inner.device:
            raise ValueError(f"cannot compose operators on {outer.device} and {inner.device}")

    # ---- the maths -------------------------------------------------------------------
    @property
    def noise_sigma(self):  # type: ignore[override]
        return self.outer.noise_sigma

    @property
    def batch_size(self) -> int:
        return max(self.outer.batch_size, self.inner.batch_size)

    @property
    def device(self) -> torch.device | None:
        return self.outer.device if self.outer.device is not None else self.inner.device

    def forward(self, x: Tensor) -> Tensor:
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))

    def restrict(self, y: Tensor) -> Tensor:
        return self.outer.restrict(self.inner.restrict(y)) if self.outer.elementwise else self.outer.restrict(y)

    # ---- questions -------------------------------------------------------------------
    @property
    def family(self) -> str:
        """The subsampling factor's family, else the inner operator's (``"noise"`` for noise on the identity)."""
        sub = self.subsampling_factor()
        return sub.family if sub is not None else self.inner.family

    @property
    def image_domain(self) -> bool:
        return self.outer.image_domain and self.inner.image_domain

    def mask_channels(self) -> Tensor | None:
        sub = self.subsampling_factor()
        return sub.mask_channels() if sub is not None else self.inner.mask_channels()

    def subsampling_factor(self) -> SubsamplingOperator | None:
        if isinstance(self.outer, SubsamplingOperator):
            return self.outer
        if self.outer.elementwise:
            return self.inner.subsampling_factor()
        return None

    @property
    def mask(self) -> Tensor:
        sub = self.subsampling_factor()
        if sub is None:
            raise AttributeError("this composition has no subsampling factor, so no mask")
        return sub.mask

    def with_rows(self, rows: Tensor) -> ComposedOperator:
        """The composition with its subsampling factor measuring only ``rows``."""
        if isinstance(self.outer, SubsamplingOperator):
            return ComposedOperator(self.outer.with_rows(rows), self.inner)
        if self.outer.elementwise:
            return ComposedOperator(self.outer, self.inner.with_rows(rows))
        raise TypeError(f"{self!r} has no subsampling factor whose rows are the composition's rows")

    def with_noise(self, sigma=None, *, factor=None) -> ComposedOperator:
        """The outer operator's noise (the composition's) set or scaled."""
        return ComposedOperator(self.outer.with_noise(sigma, factor=factor), self.inner)

    def transformed(self, ks: int | Sequence[int]) -> ComposedOperator:
        if not self.outer.elementwise:
            return super().transformed(ks)  # raises the clear NotImplementedError
        return ComposedOperator(self.outer.transformed(ks), self.inner.transformed(ks))

    # ---- bookkeeping -----------------------------------------------------------------
    def to(self, device=None, dtype=None):
        return ComposedOperator(self.outer.to(device, dtype), self.inner.to(device, dtype))

    def __getitem__(self, index):
        return ComposedOperator(self.outer[index], self.inner[index])

    def stack_batch(self, ops: Sequence[ComposedOperator]) -> ComposedOperator:
        """:func:`stack` support: the outer and the inner factors are stacked separately."""
        return ComposedOperator(stack([o.outer for o in ops]), stack([o.inner for o in ops]))

    def __repr__(self) -> str:
        return f"({self.outer!r} @ {self.inner!r})"


class ScaledOperator(LinearOperator):
    """``c · A`` for a real scalar ``c`` (noise scales with it)."""

    def __init__(self, op: LinearOperator, scale: float):
        self.op = op
        self.scale = scale

    @property
    def noise_sigma(self):  # type: ignore[override]
        return self.op.noise_sigma * abs(self.scale)

    @property
    def batch_size(self) -> int:
        return self.op.batch_size

    @property
    def device(self) -> torch.device | None:
        return self.op.device

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.op.forward(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return self.scale * self.op.adjoint(y)

    def normal(self, x: Tensor) -> Tensor:
        return self.scale**2 * self.op.normal(x)

    def restrict(self, y: Tensor) -> Tensor:
        return self.op.restrict(y)

    # ---- questions -------------------------------------------------------------------
    @property
    def family(self) -> str:
        return self.op.family

    @property
    def image_domain(self) -> bool:
        """False: the measurements are ``c`` times an image, not an image of ``x``."""
        return False

    def mask_channels(self) -> Tensor | None:
        return self.op.mask_channels()

    def subsampling_factor(self) -> SubsamplingOperator | None:
        return self.op.subsampling_factor()

    def with_rows(self, rows: Tensor) -> ScaledOperator:
        return ScaledOperator(self.op.with_rows(rows), self.scale)

    def with_noise(self, sigma=None, *, factor=None) -> ScaledOperator:
        """``factor`` scales the noise; ``sigma`` sets the scaled operator's noise (``c σ_A = sigma``)."""
        if sigma is not None and factor is None:
            return ScaledOperator(self.op.with_noise(_divide(sigma, abs(self.scale))), self.scale)
        return ScaledOperator(self.op.with_noise(sigma, factor=factor), self.scale)

    def transformed(self, ks: int | Sequence[int]) -> ScaledOperator:
        return ScaledOperator(self.op.transformed(ks), self.scale)

    # ---- bookkeeping -----------------------------------------------------------------
    def to(self, device=None, dtype=None):
        return ScaledOperator(self.op.to(device, dtype), self.scale)

    def __getitem__(self, index):
        return ScaledOperator(self.op[index], self.scale)

    def stack_batch(self, ops: Sequence[ScaledOperator]) -> ScaledOperator:
        """:func:`stack` support: operators of one scale."""
        if len({float(o.scale) for o in ops}) != 1:
            raise ValueError("stack: ScaledOperators must share their scale")
        return ScaledOperator(stack([o.op for o in ops]), ops[0].scale)

    def __repr__(self) -> str:
        return f"({self.scale:.4g} * {self.op!r})"


def _divide(sigma: float | Tensor, c: float) -> float | Tensor:
    return sigma / c if c != 0 else sigma


# --------------------------------------------------------------------------- stacking
def stack(ops: Sequence[OpT]) -> OpT:
    """Concatenate operators of one class along the batch dimension.

    Use as (part of) a DataLoader ``collate_fn``. Shared attributes (e.g. an
    image shape) must agree; batched tensors must agree in all but the
    leading dimension (pad visibilities to a common length first). Classes with
    their own rules (composites, MRI, interferometry) implement ``stack_batch``.
    """
    if len(ops) == 0:
        raise ValueError("stack: need at least one operator")
    first = ops[0]
    cls = type(first)
    for op in ops[1:]:
        if type(op) is not cls:
            raise TypeError(f"stack: cannot mix {cls.__name__} and {type(op).__name__}")
    if hasattr(first, "stack_batch"):
        return first.stack_batch(ops)  # type: ignore[attr-defined]
    changes = {}
    for name in cls._batched:
        ts = [getattr(op, name) for op in ops]
        if not all(isinstance(t, Tensor) for t in ts):
            continue
        shapes = {tuple(t.shape[1:]) for t in ts}
        if len(shapes) != 1:
            raise ValueError(
                f"stack: {cls.__name__}.{name} has different shapes {sorted(shapes)}; "
                "operators in one batch must share image size (and coil count / visibility count)"
            )
        changes[name] = torch.cat(ts, dim=0)
    sig = [op.noise_sigma for op in ops]
    if any(isinstance(s, Tensor) for s in sig) or len({float(s) for s in sig}) > 1:
        # per-sample sigmas: a (B,) tensor, or (B, ...) when each op has per-row sigmas
        parts = [torch.as_tensor(s, dtype=torch.float64) for s in sig]
        parts = [p.reshape(1) if p.ndim == 0 else p for p in parts]
        changes["noise_sigma"] = torch.cat(parts, dim=0).to(first.device)
    return first.replace(**changes)
