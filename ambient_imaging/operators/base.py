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
  k-space lines, visibilities) additionally expose ``mask`` and their rows;
  see :class:`SubsamplingOperator`.
* **Closed algebra.** Every operator, composites included, answers the
  questions the losses, the normalisation and the samplers ask:
  :meth:`~LinearOperator.replace`, :meth:`~LinearOperator.with_rows`,
  :meth:`~LinearOperator.with_noise`, :meth:`~LinearOperator.subsample` (one
  Ã draw, per-sample δ and seeds), :attr:`~LinearOperator.family`,
  :attr:`~LinearOperator.image_domain`, :meth:`~LinearOperator.mask_channels`,
  :meth:`~LinearOperator.transformed` (dihedral augmentation) and
  :meth:`~LinearOperator.subsampling_factor`. :class:`~.composite.ComposedOperator`
  and :class:`~.composite.ScaledOperator` (module :mod:`.composite`) implement
  each once, so nobody outside ``operators/`` walks a composite.
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
    #: acts elementwise on measurements and keeps their layout (e.g. :class:`~.pixels.GaussianNoise`):
    #: a composition ``self @ B`` then has ``B``'s rows
    elementwise: ClassVar[bool] = False

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
        """Shallow copy with some attributes replaced (``A.replace(mask=m)``)."""
        new = copy.copy(self)
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    # ---- questions every operator answers ----------------------------------------
    @property
    def family(self) -> str:
        """The instrument family a prior records: ``"mri"``, ``"interferometry"``, ``"mask"`` or
        ``"noise"`` (subclasses set it; composites answer with their data's family)."""
        return type(self).__name__

    @property
    def image_domain(self) -> bool:
        """True when the measurements are images of ``x`` itself (pixel masks, Gaussian noise and
        their compositions): the Tweedie and consistency losses and the dihedral augmentation
        need that."""
        return False

    def subsampling_factor(self) -> SubsamplingOperator | None:
        """The factor whose rows are this operator's rows (``None``: no rows to subsample)."""
        return None

    def with_rows(self: OpT, rows: Tensor) -> OpT:
        """Copy measuring only ``rows`` (the layout of the subsampling factor's ``row_mask()``)."""
        raise TypeError(
            f"{type(self).__name__} has no subsampling rows (pixels, k-space lines, visibilities); "
            "ambient subsampling needs a SubsamplingOperator (optionally composed with noise)"
        )

    def with_noise(self: OpT, sigma: float | Tensor | None = None, *, factor: float | Tensor | None = None) -> OpT:
        """Copy with the measurement noise std set to ``sigma``, or multiplied by ``factor``
        (a float or a per-sample ``(B,)`` tensor; a per-row ``noise_sigma`` keeps its shape)."""
        if (sigma is None) == (factor is None):
            raise ValueError("with_noise: give exactly one of sigma and factor")
        if sigma is not None:
            return self.replace(noise_sigma=sigma)
        return self.replace(noise_sigma=_scaled_sigma(self.noise_sigma, factor, self.device))

    def subsample(
        self: OpT,
        delta: float | Tensor,
        generator: torch.Generator | None = None,
        keep: Tensor | None | bool = None,
        seeds: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> OpT:
        """Further-corrupted operator ``Ã`` for ambient training (Daras et al. 2023): the one Ã draw.

        Each measured row of the subsampling factor survives independently with probability
        ``1 - delta``; rows in the protected set ``keep`` always survive (``None``: the
        operator's :meth:`~SubsamplingOperator.default_keep`, e.g. MRI ACS lines; ``False``:
        none; or a boolean tensor broadcastable to the rows). The rows of ``Ã`` are a subset of
        ``A``'s; noise and everything else are unchanged.

        Args:
            delta: a float, or a per-sample ``(B,)`` tensor.
            generator: the random stream (unused with ``seeds``).
            seeds: one int per sample: each sample's draw is then a deterministic function of it.
            batch_size: expand an operator of batch 1 to this many independent draws (default:
                the operator's batch, or the length of ``delta``/``seeds``).
        """
        sub = self.subsampling_factor()
        if sub is None:
            return self.with_rows(torch.zeros(0))  # raises the clear TypeError
        return self.with_rows(sub.draw_rows(delta, generator, keep, seeds, batch_size))

    def transformed(self: OpT, ks: int | Sequence[int]) -> OpT:
        """The operator for dihedrally transformed images: ``A'(T x) = T(A x)`` with ``T`` element
        ``k`` (per sample) of :func:`dihedral`. Exact for image-space operators only."""
        raise NotImplementedError(
            f"augment: {type(self).__name__} is not supported. Flips/rotations are implemented exactly for "
            "image-space operators (PixelMask, GaussianNoise and their compositions). For k-space or uv-plane "
            "operators an image flip is a conjugate reflection of the sampling pattern (with a one-sample shift "
            "for even sizes); it is not implemented — train without augmentation."
        )

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
        from .composite import ComposedOperator

        if not isinstance(other, LinearOperator):
            return NotImplemented
        return ComposedOperator(self, other)

    def __mul__(self, scale: float) -> LinearOperator:
        from .composite import ScaledOperator

        return ScaledOperator(self, float(scale))

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch={self.batch_size}, noise_sigma={_fmt_sigma(self.noise_sigma)})"


def _scaled_sigma(sig: float | Tensor, factor: float | Tensor, device: torch.device | None) -> float | Tensor:
    """``sig * factor`` for a noise std (float, ``(B,)`` or per-row) and a float or ``(B,)`` factor."""
    f = torch.as_tensor(factor, dtype=torch.float64).reshape(-1)
    if isinstance(sig, Tensor) and sig.ndim >= 1:
        return sig * f.to(sig.device).reshape(-1, *([1] * (sig.ndim - 1)))
    s = float(sig)
    if f.numel() == 1:
        return s * float(f)
    return (s * f).to(device or "cpu")


def dihedral(x: Tensor, k: int) -> Tensor:
    """Element ``k`` ∈ {0..7} of the dihedral group on the last two dims: rot90^(k mod 4), then flip W if k ≥ 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


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
    :meth:`with_rows` to map between the stored mask and the "rows" that
    :meth:`subsample` draws independently (e.g. whole k-space lines for a 1-D
    Cartesian mask). They may define a default protected set
    :meth:`default_keep` (MRI: the ACS lines).
    """

    mask: Tensor

    def subsampling_factor(self) -> SubsamplingOperator:
        """Itself: its rows are the operator's rows."""
        return self

    def row_mask(self) -> Tensor:
        """Boolean tensor of rows: True where a row is measured (default: ``mask``)."""
        return self.mask.bool()

    def with_rows(self: OpT, rows: Tensor) -> OpT:
        """Copy of this operator measuring only ``rows`` (same layout as :meth:`row_mask`)."""
        return self.replace(mask=rows)

    def default_keep(self) -> Tensor | None:
        """Rows that :meth:`subsample` keeps unless ``keep`` says otherwise."""
        return None

    def protected_rows(self, keep: Tensor | None | bool = None) -> Tensor | None:
        """The protected set for a ``keep`` argument (``None``: :meth:`default_keep`; ``False``: none)."""
        if keep is None:
            return self.default_keep()
        return None if keep is False else keep

    @property
    def n_rows(self) -> Tensor:
        """Number of measured rows per batch element (shape ``(B_op,)``)."""
        r = self.row_mask()
        return r.reshape(r.shape[0], -1).sum(dim=1)

    def draw_rows(
        self,
        delta: float | Tensor,
        generator: torch.Generator | None = None,
        keep: Tensor | None | bool = None,
        seeds: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> Tensor:
        """The rows of ``Ã`` (see :meth:`LinearOperator.subsample`, which passes them to :meth:`with_rows`)."""
        rows = self.row_mask()
        d = torch.as_tensor(delta, dtype=torch.float64).reshape(-1)
        if not bool(torch.all((d >= 0) & (d < 1))):
            raise ValueError(f"subsample: delta must be in [0, 1), got {delta}")
        b = _draw_batch(rows.shape[0], d.numel(), seeds, batch_size)
        if d.numel() not in (1, b):
            raise ValueError(f"subsample: need one delta per sample ({b}), got {d.numel()}")
        if rows.shape[0] == 1 and b > 1:
            rows = rows.expand(b, *rows.shape[1:])
        if seeds is None:
            u = torch.rand(rows.shape, generator=generator, device=rows.device)
        else:
            if len(seeds) != b:
                raise ValueError(f"subsample: need {b} seeds, got {len(seeds)}")
            u = torch.stack([
                torch.rand(rows.shape[1:], generator=torch.Generator(device=rows.device).manual_seed(int(s)),
                           device=rows.device)
                for s in seeds
            ])
        p = (1.0 - d).to(device=rows.device, dtype=u.dtype)
        survive = u < p.reshape(p.shape + (1,) * (u.ndim - 1))
        prot = self.protected_rows(keep)
        if prot is not None:
            try:
                survive = survive | torch.broadcast_to(prot.to(rows.device).bool(), rows.shape)
            except RuntimeError as err:
                raise ValueError(
                    f"subsample: keep has shape {tuple(prot.shape)}, which does not broadcast "
                    f"to the operator's rows {tuple(rows.shape)}"
                ) from err
        return rows & survive


def _draw_batch(b_op: int, n_delta: int, seeds: Sequence[int] | None, batch_size: int | None) -> int:
    """The number of independent Ã draws: ``batch_size``, else the per-sample δ/seeds, else the operator's."""
    b = batch_size if batch_size is not None else max(n_delta, len(seeds) if seeds is not None else 1, b_op)
    if b_op not in (1, b):
        raise ValueError(f"subsample: operator batch {b_op} does not match batch size {b}")
    return int(b)


# the composite algebra lives in its own module; re-exported here for ``from .base import ...``
from .composite import ComposedOperator, ScaledOperator, stack  # noqa: E402
