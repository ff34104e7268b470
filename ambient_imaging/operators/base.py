"""The forward-operator contract.

Every measurement model in ambient-imaging is a :class:`LinearOperator`: a
linear map ``A`` acting on a batch of images plus an additive Gaussian noise
model ``y = A x + ε``. Conventions (all operators follow them):

* **Images** are tensors of shape ``(B, C, H, W)``; real (``float32``/``float64``)
  or complex (``complex64``/``complex128``). MRI images are ``(B, 1, H, W)``
  complex, sky images ``(B, 1, H, W)`` real.
* **Batching.** Operator parameters (masks, coil maps, uv-coverage) carry a
  leading batch dimension ``B_op``. ``B_op == 1`` broadcasts over any input
  batch, otherwise it must equal the input batch: one operator object holds a
  different mask / coil-map set / coverage for each batch element.
  ``A[i]`` selects elements, :func:`stack` concatenates operators (a DataLoader
  ``collate_fn``).
* **Adjoint.** ``adjoint`` is the adjoint under the real inner product
  ``<a, b> = Re sum(conj(a) * b)``, so the dot-product identity
  ``Re<A x, y> == Re<x, A^H y>`` holds for real and complex images alike
  (for a complex operator on real images the adjoint returns ``Re(A^H y)``).
* **Noise.** ``noise_sigma`` is the standard deviation of the measurement noise
  (a float, or a tensor broadcastable to the measurements). For complex
  measurements the noise is circular with ``E|ε|² = σ²`` (each of the real
  and imaginary parts has std ``σ/√2``).
* **Devices and dtypes.** Parameters live on ``A.device``; an input on another
  device is an error (call ``A.to(x.device)``). Parameters are cast to the
  precision of the input on the fly, so one operator serves float32 and float64.
* **Subsampling operators** (rows that are either measured or not: pixels,
  k-space lines, visibilities) additionally expose ``mask`` and
  ``subsample(delta, generator, keep)``; see :class:`SubsamplingOperator`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

__all__ = [
    "LinearOperator",
    "SubsamplingOperator",
    "ComposedOperator",
    "ScaledOperator",
    "stack",
    "real_inner",
    "complex_dtype_like",
    "real_dtype_like",
    "expand_sigma",
    "randn_like",
]

OpT = TypeVar("OpT", bound="LinearOperator")


# --------------------------------------------------------------------------- helpers
def real_dtype_like(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of the same precision (complex64 -> float32, ...)."""
    return {
        torch.complex64: torch.float32,
        torch.complex128: torch.float64,
        torch.complex32: torch.float16,
    }.get(dtype, dtype)


def complex_dtype_like(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype of the same precision (float32 -> complex64, ...)."""
    return {
        torch.float32: torch.complex64,
        torch.float64: torch.complex128,
        torch.float16: torch.complex32,
        torch.bfloat16: torch.complex64,
    }.get(dtype, dtype)


def real_inner(a: Tensor, b: Tensor) -> Tensor:
    """Real inner product ``Re sum(conj(a) b)`` over all elements (a 0-d tensor)."""
    if a.is_complex() or b.is_complex():
        return torch.sum(torch.conj(a) * b).real if a.is_complex() else torch.sum(a * b.real)
    return torch.sum(a * b)


def check_image(x: Tensor, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a floating/complex 4-D image batch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()):
        raise TypeError(
            f"{name} must be a float or complex tensor, got dtype {x.dtype}; "
            "convert integer images with x.float()"
        )
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- base class
class LinearOperator:
    """A batched linear measurement operator with additive Gaussian noise.

    Subclasses implement :meth:`forward` and :meth:`adjoint`, and list the
    names of their batched tensor attributes in ``_batched`` (leading dim is
    the operator batch). Everything else (device moves, indexing, stacking,
    composition, noisy measurement) is provided here.
    """

    #: names of tensor attributes whose leading dimension is the operator batch
    _batched: ClassVar[tuple[str, ...]] = ()
    #: names of tensor attributes that are shared by the whole batch (moved by ``to``)
    _shared: ClassVar[tuple[str, ...]] = ()

    noise_sigma: float | Tensor = 0.0

    # ---- the maths ------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Apply ``A`` to an image batch."""
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Apply ``A^H`` to a measurement batch."""
        raise NotImplementedError

    def normal(self, x: Tensor) -> Tensor:
        """``A^H A x`` (subclasses override with a fast path where one exists)."""
        return self.adjoint(self.forward(x))

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def measure(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Simulate a measurement ``y = A x + ε`` with ``ε ~ N(0, σ²)`` (circular if complex)."""
        y = self.forward(x)
        return self.add_noise(y, generator)

    def add_noise(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Add this operator's measurement noise to clean measurements ``y``."""
        sigma = self.noise_sigma
        if isinstance(sigma, (int, float)) and sigma == 0:
            return y
        noise = randn_like(y, generator)
        return self.restrict(y + expand_sigma(sigma, y) * noise)

    def restrict(self, y: Tensor) -> Tensor:
        """Zero the entries of a measurement-shaped tensor that are not measured.

        Dense-with-zeros layouts (masks) need this after adding noise; the
        default is the identity.
        """
        return y

    def measurements_to_image(self, y: Tensor) -> Tensor:
        """The image the denoiser sees for measurements ``y`` (default ``A^H y``)."""
        return self.adjoint(y)

    def mask_channels(self) -> Tensor | None:
        """Real ``(B_op, k, H, W)`` channels telling a network where data is (or ``None``)."""
        return None

    # ---- bookkeeping -----------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Operator batch ``B_op`` (1 when nothing is batched)."""
        for name in self._batched:
            t = getattr(self, name)
            if isinstance(t, Tensor):
                return t.shape[0]
        return 1

    @property
    def device(self) -> torch.device | None:
        """Device of the operator's tensors; ``None`` for operators that hold none
        (they accept inputs on any device)."""
        for name in self._batched + self._shared:
            t = getattr(self, name, None)
            if isinstance(t, Tensor):
                return t.device
        return None

    def replace(self: OpT, **changes) -> OpT:
        """Shallow copy with some attributes replaced."""
        new = copy.copy(self)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def to(self: OpT, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> OpT:
        """Copy of this operator with its tensors moved to ``device`` (and cast to the
        precision of ``dtype``, keeping real tensors real and complex tensors complex)."""
        changes = {}
        for name in self._batched + self._shared:
            t = getattr(self, name, None)
            if isinstance(t, Tensor):
                target = None
                if dtype is not None and (t.is_floating_point() or t.is_complex()):
                    target = complex_dtype_like(dtype) if t.is_complex() else real_dtype_like(dtype)
                changes[name] = t.to(device=device, dtype=target)
        if isinstance(self.noise_sigma, Tensor):
            changes["noise_sigma"] = self.noise_sigma.to(device=device)
        return self.replace(**changes)

    def __getitem__(self: OpT, index) -> OpT:
        """Select batch elements (an int keeps a batch dim of 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        changes = {}
        for name in self._batched:
            t = getattr(self, name)
            if isinstance(t, Tensor):
                changes[name] = t if t.shape[0] == 1 else t[index]
        sig = self.noise_sigma
        if "noise_sigma" not in self._batched and isinstance(sig, Tensor) and sig.ndim > 0 and sig.shape[0] > 1:
            changes["noise_sigma"] = sig[index]
        return self.replace(**changes)

    def _check_input(self, x: Tensor, name: str = "x") -> None:
        """Device and batch checks shared by all operators."""
        if self.device is not None and x.device != self.device:
            raise ValueError(
                f"{type(self).__name__}: {name} is on {x.device} but the operator is on "
                f"{self.device}; move one of them (e.g. A = A.to({name}.device))"
            )
        b = self.batch_size
        if b != 1 and x.shape[0] != b:
            raise ValueError(
                f"{type(self).__name__}: {name} has batch size {x.shape[0]} but the operator "
                f"holds {b} elements (one per sample); use A[i] or a batch of {b}"
            )

    # ---- algebra ----------------------------------------------------------------
    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        """Composition ``(A @ B) x = A(B x)``."""
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return ComposedOperator(self, other)

    def __mul__(self, scale: float) -> LinearOperator:
        return ScaledOperator(self, float(scale))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch={self.batch_size}, noise_sigma={_fmt_sigma(self.noise_sigma)})"


def _fmt_sigma(s: float | Tensor) -> str:
    if isinstance(s, Tensor):
        return f"tensor{tuple(s.shape)}" if s.numel() > 1 else f"{float(s):.3g}"
    return f"{s:.3g}"


def randn_like(y: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``y``; circular complex with ``E|n|² = 1``."""
    if y.is_complex():
        rdt = real_dtype_like(y.dtype)
        re = torch.randn(y.shape, generator=generator, device=y.device, dtype=rdt)
        im = torch.randn(y.shape, generator=generator, device=y.device, dtype=rdt)
        return torch.complex(re, im) / (2.0**0.5)
    return torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)


def image_noise(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device | str | None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Standard normal noise for diffusion in image space.

    Complex images are two real channels (the network sees them so): real and
    imaginary parts each get unit variance, i.e. ``E|n|² = 2``. This is the
    convention of ``x_t = x + σ n`` for complex priors throughout the package
    (samplers, losses, the denoising metric).
    """
    if dtype.is_complex:
        rdt = torch.float64 if dtype == torch.complex128 else torch.float32
        re = torch.randn(shape, dtype=rdt, device=device, generator=generator)
        im = torch.randn(shape, dtype=rdt, device=device, generator=generator)
        return torch.complex(re, im)
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)


def expand_sigma(sigma: float | Tensor, y: Tensor) -> float | Tensor:
    """Make ``sigma`` broadcast against measurements ``y``.

    A tensor sigma is read from the left (``(B,)`` per sample, ``(B, M)`` per
    visibility, ...) and padded with trailing singleton dimensions.
    """
    if not isinstance(sigma, Tensor):
        return sigma
    sigma = sigma.to(device=y.device, dtype=real_dtype_like(y.dtype))
    return sigma.reshape(sigma.shape + (1,) * (y.ndim - sigma.ndim))


def bernoulli_keep(
    shape: Sequence[int],
    keep_prob: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Boolean tensor with each entry True independently with probability ``keep_prob``."""
    return torch.rand(tuple(shape), generator=generator, device=device) < keep_prob


# --------------------------------------------------------------------------- subsampling
class SubsamplingOperator(LinearOperator):
    """An operator whose rows (pixels, k-space lines, visibilities) are measured or not.

    Subclasses store the selection as a boolean tensor attribute named
    ``mask`` (listed in ``_batched``) and implement :meth:`row_mask`/
    :meth:`_with_rows` to map between the stored mask and the "rows" that
    :meth:`subsample` draws independently (e.g. whole k-space lines for a 1-D
    Cartesian mask). They may define a default protected set
    :meth:`default_keep` (MRI: the ACS lines).
    """

    mask: Tensor

    def row_mask(self) -> Tensor:
        """Boolean tensor of rows: True where a row is measured (default: ``mask``)."""
        return self.mask.bool()

    def with_rows(self: OpT, rows: Tensor) -> OpT:
        """Copy of this operator measuring only ``rows`` (same layout as :meth:`row_mask`)."""
        return self.replace(mask=rows)

    def default_keep(self) -> Tensor | None:
        """Rows that :meth:`subsample` keeps unless ``keep`` says otherwise."""
        return None

    @property
    def n_rows(self) -> Tensor:
        """Number of measured rows per batch element (shape ``(B_op,)``)."""
        r = self.row_mask()
        return r.reshape(r.shape[0], -1).sum(dim=1)

    def subsample(
        self: OpT,
        delta: float,
        generator: torch.Generator | None = None,
        keep: Tensor | None | bool = None,
    ) -> OpT:
        """Further-corrupted operator ``Ã`` for ambient training (Daras et al. 2023).

        Each measured row of ``A`` survives independently with probability
        ``1 - delta``; rows in the protected set ``keep`` always survive.
        ``keep=None`` uses :meth:`default_keep` (e.g. MRI ACS lines),
        ``keep=False`` protects nothing, and a boolean tensor broadcastable to
        :meth:`row_mask` protects exactly those rows. The rows of ``Ã`` are a
        subset of the rows of ``A``; noise and everything else are unchanged.
        """
        if not 0.0 <= float(delta) < 1.0:
            raise ValueError(f"subsample: delta must be in [0, 1), got {delta}")
        rows = self.row_mask()
        if keep is None:
            keep = self.default_keep()
        elif keep is False:
            keep = None
        survive = bernoulli_keep(rows.shape, 1.0 - float(delta), generator, rows.device)
        if keep is not None:
            keep = keep.to(rows.device).bool()
            try:
                survive = survive | torch.broadcast_to(keep, rows.shape)
            except RuntimeError as err:
                raise ValueError(
                    f"subsample: keep has shape {tuple(keep.shape)}, which does not broadcast "
                    f"to the operator's rows {tuple(rows.shape)}"
                ) from err
        return self.with_rows(rows & survive)


# --------------------------------------------------------------------------- composition
class ComposedOperator(LinearOperator):
    """``outer ∘ inner``: ``x -> outer(inner(x))``; noise is the outer operator's.

    Subsampling (``mask``, ``subsample``) is delegated to ``outer`` when it is a
    subsampling operator, or to ``inner`` when ``outer`` acts elementwise on
    the measurements (e.g. ``GaussianNoise(σ) @ PixelMask(m)``).
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        self.outer = outer
        self.inner = inner
        bo, bi = outer.batch_size, inner.batch_size
        if bo != 1 and bi != 1 and bo != bi:
            raise ValueError(f"cannot compose operators with batch sizes {bo} and {bi}")
        if outer.device is not None and inner.device is not None and outer.device != inner.device:
            raise ValueError(f"cannot compose operators on {outer.device} and {inner.device}")

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
        return self.outer.restrict(self.inner.restrict(y)) if _elementwise(self.outer) else self.outer.restrict(y)

    def mask_channels(self) -> Tensor | None:
        return self.subsampling_factor().mask_channels() if self.subsampling_factor() is not None else self.inner.mask_channels()

    def subsampling_factor(self) -> SubsamplingOperator | None:
        if isinstance(self.outer, SubsamplingOperator):
            return self.outer
        if _elementwise(self.outer):
            inner = self.inner
            if isinstance(inner, ComposedOperator):
                return inner.subsampling_factor()
            if isinstance(inner, SubsamplingOperator):
                return inner
        return None

    @property
    def mask(self) -> Tensor:
        sub = self.subsampling_factor()
        if sub is None:
            raise AttributeError("this composition has no subsampling factor, so no mask")
        return sub.mask

    def subsample(self, delta: float, generator: torch.Generator | None = None, keep=None):
        """Subsample the rows of the subsampling factor (see :class:`ComposedOperator`)."""
        if isinstance(self.outer, SubsamplingOperator):
            return ComposedOperator(self.outer.subsample(delta, generator, keep), self.inner)
        if _elementwise(self.outer) and hasattr(self.inner, "subsample"):
            return ComposedOperator(self.outer, self.inner.subsample(delta, generator, keep))
        raise TypeError(
            f"{self!r} has no subsampling factor whose rows are the composition's rows"
        )

    def to(self, device=None, dtype=None):
        return ComposedOperator(self.outer.to(device, dtype), self.inner.to(device, dtype))

    def __getitem__(self, index):
        return ComposedOperator(self.outer[index], self.inner[index])

    def __repr__(self) -> str:
        return f"({self.outer!r} @ {self.inner!r})"


def _elementwise(op: LinearOperator) -> bool:
    """True for operators that act elementwise and keep the measurement layout."""
    return bool(getattr(op, "elementwise", False))


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

    def mask_channels(self) -> Tensor | None:
        return self.op.mask_channels()

    def to(self, device=None, dtype=None):
        return ScaledOperator(self.op.to(device, dtype), self.scale)

    def __getitem__(self, index):
        return ScaledOperator(self.op[index], self.scale)


# --------------------------------------------------------------------------- stacking
def stack(ops: Sequence[OpT]) -> OpT:
    """Concatenate operators of one class along the batch dimension.

    Use as (part of) a DataLoader ``collate_fn``. Shared attributes (e.g. an
    image shape) must agree; batched tensors must agree in all but the
    leading dimension (pad visibilities to a common length first).
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
