"""Cartesian MRI: single- and multi-coil SENSE forward model with a k-space mask.

``y = M ⊙ F(S x) + ε`` where ``x`` is a complex image ``(B, 1, H, W)``, ``S``
the coil sensitivities ``(B, Nc, H, W)``, ``F`` the centred orthonormal 2-D
FFT (:func:`fft2c`) and ``M`` a binary k-space mask. Following fastMRI, the
phase-encode direction is the last axis ``W``: a 1-D "line" mask selects
columns (constant along the readout axis ``H``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import SubsamplingOperator, complex_dtype_like, real_dtype_like

__all__ = ["fft2c", "ifft2c", "MultiCoilMRI"]

_DIMS = (-2, -1)


def fft2c(x: Tensor) -> Tensor:
    """Centred orthonormal 2-D FFT over the last two dims: ``fftshift(fft2(ifftshift(x)))``."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS), norm="ortho"), dim=_DIMS)


def ifft2c(x: Tensor) -> Tensor:
    """Centred orthonormal inverse 2-D FFT; the exact adjoint (and inverse) of :func:`fft2c`."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(x, dim=_DIMS), norm="ortho"), dim=_DIMS)


def _checkerboard(h: int, w: int, dtype: torch.dtype, device: torch.device, sign: float = 1.0) -> Tensor:
    """``sign · (-1)^(i+j)`` as an ``(H, W)`` real tensor."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j) % 2).to(dtype).mul_(-2.0 * sign).add_(sign)


class MultiCoilMRI(SubsamplingOperator):
    """Multi-coil Cartesian MRI ``y = M ⊙ F(S x) + ε`` (single-coil: ``Nc = 1``, ``S = 1``).

    Args:
        sens_maps: complex coil sensitivities ``(B, Nc, H, W)`` (``B = 1`` broadcasts), or ``M`` sets of
            maps ``(B, M, Nc, H, W)`` (ESPIRiT soft SENSE for reduced-FOV data, BART ``ecalib -m M``):
            the image then has ``M`` components, ``y = M ⊙ F(Σ_m S_m x_m)``.
        mask: k-space sampling mask, bool or 0/1: ``(B, H, W)``, ``(B, 1, H, W)``, or a
            ``(B, W)`` line mask (phase-encode columns). A mask that is constant along ``H``
            is a *line mask*: its rows (what :meth:`subsample` drops) are whole lines; any
            other mask (e.g. 2-D Poisson-disc) has single k-space points as rows.
        noise_sigma: std of the complex k-space noise (float or per-sample ``(B,)``).
        acs: protected rows (auto-calibration signal), kept by :meth:`subsample`:
            ``(B, W)`` lines or ``(B, H, W)`` / ``(B, 1, H, W)`` points; must lie inside ``mask``.
        lines: force (``True``/``False``) or auto-detect (``None``) the line layout.

    Shapes: image ``x`` ``(B, M, H, W)`` complex (``M = 1`` for one set of maps; a real ``x`` is
    promoted to complex);
    k-space ``y`` ``(B, Nc, H, W)`` complex, zero outside the mask. ``self.mask`` is always
    the full ``(B, H, W)`` boolean pattern; :meth:`row_mask` is ``(B, W)`` for line masks.
    Parameters are cast to the input's precision on the fly (complex64 / complex128).

    For even ``H`` and ``W`` the centring shifts are replaced by a checkerboard modulation,
    ``fftshift(fft2(ifftshift(z))) = (-1)^((H+W)/2) D fft2(D z)`` with ``D = diag((-1)^(i+j))``:
    the image-side ``D`` acts on ``x`` (Nc times smaller than the coil images) and the
    k-space side is folded into the mask, so no full-size roll is ever done.
    """

    _batched = ("sens_maps", "mask", "acs")
    family = "mri"

    def __init__(
        self,
        sens_maps: Tensor,
        mask: Tensor,
        noise_sigma: float | Tensor = 0.0,
        acs: Tensor | None = None,
        *,
        lines: bool | None = None,
    ):
        name = type(self).__name__
        if not isinstance(sens_maps, Tensor):
            raise TypeError(f"{name}: sens_maps must be a torch.Tensor, got {type(sens_maps).__name__}")
        if not sens_maps.is_complex():
            raise TypeError(
                f"{name}: sens_maps must be complex (complex64/complex128), got {sens_maps.dtype}; "
                "for a single coil use MultiCoilMRI.single_coil(mask)"
            )
        if sens_maps.ndim not in (4, 5):
            raise ValueError(
                f"{name}: sens_maps must have shape (B, Nc, H, W) or (B, M, Nc, H, W) for M sets, got "
                f"{tuple(sens_maps.shape)} (add a batch dimension with maps[None])"
            )
        if sens_maps.ndim == 5 and sens_maps.shape[1] == 1:
            sens_maps = sens_maps[:, 0]  # one set: the plain layout
        h, w = sens_maps.shape[-2:]
        self.sens_maps = sens_maps
        self.mask, self.lines = _as_mask(mask, h, w, sens_maps.device, lines, name)
        b_maps, b_mask = sens_maps.shape[0], self.mask.shape[0]
        if b_maps != 1 and b_mask != 1 and b_maps != b_mask:
            raise ValueError(f"{name}: sens_maps hold {b_maps} samples but mask holds {b_mask} (need equal, or 1)")
        if acs is not None and isinstance(acs, Tensor) and acs.shape[0] not in (1, b_mask):
            raise ValueError(f"{name}: acs holds {acs.shape[0]} samples but mask holds {b_mask} (need equal, or 1)")
        self.acs = None if acs is None else _as_acs(acs, self.mask, self.lines, name)
        self.noise_sigma = _check_sigma(noise_sigma, name)

    @classmethod
    def single_coil(
        cls,
        mask: Tensor,
        noise_sigma: float | Tensor = 0.0,
        acs: Tensor | None = None,
        *,
        height: int | None = None,
        dtype: torch.dtype = torch.complex64,
        lines: bool | None = None,
    ) -> MultiCoilMRI:
        """Single-coil Cartesian MRI (``S = 1``, ``Nc = 1``); ``height`` is needed for a ``(B, W)`` line mask."""
        if not isinstance(mask, Tensor):
            raise TypeError(f"single_coil: mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.ndim == 2:
            if height is None:
                raise ValueError("single_coil: a (B, W) line mask needs height=H (the readout length)")
            h, w = int(height), mask.shape[-1]
        else:
            h, w = mask.shape[-2:]
        maps = torch.ones(1, 1, h, w, dtype=complex_dtype_like(dtype), device=mask.device)
        return cls(maps, mask, noise_sigma, acs, lines=lines)

    # ---- shapes and checks ------------------------------------------------------------
    @property
    def n_coils(self) -> int:
        """Number of receive coils ``Nc``."""
        return self.sens_maps.shape[-3]

    @property
    def n_sets(self) -> int:
        """Number of sets of maps ``M`` (the image's components; 1 for ordinary SENSE)."""
        return 1 if self.sens_maps.ndim == 4 else int(self.sens_maps.shape[1])

    @property
    def image_channels(self) -> int:
        """Channels of the image ``x``: :attr:`n_sets`."""
        return self.n_sets

    def combine_sets(self, x: Tensor) -> Tensor:
        """The displayed image ``(B, 1, H, W)`` of ``x`` ``(B, M, H, W)``: ``x`` itself for one set, the
        root-sum-of-squares over the sets for several (BART ``rss`` over the map dimension)."""
        if self.n_sets == 1:
            return x
        return torch.sqrt((x.abs() ** 2).sum(1, keepdim=True))

    def rss_estimate(self, x: Tensor, y: Tensor, band: tuple[int, int] | None = None) -> Tensor:
        """The estimate ``(B, H, W)`` of the fully sampled root-sum-of-squares image (fastMRI's target)
        that an image ``x`` ``(B, M, H, W)`` implies, given the measurements ``y`` ``(B, Nc, H, W)``.

        fastMRI scores against ``RSS = sqrt(Σ_c |F⁻¹ k_c|²)`` of the *noisy* fully sampled k-space
        ``k = F(S x) + ε``. Given ``y``, the measured entries of ``k`` are known exactly (their noise
        included); an unmeasured entry is ``F(S x) + ε`` with fresh noise of variance ``σ²``
        (:attr:`noise_sigma`, complex). With ``u`` the unmeasured fraction of k-space and the orthonormal
        FFT, that noise adds ``u σ²`` per coil and pixel in expectation, so

            ``RSŜ = sqrt(Σ_c |F⁻¹(M ⊙ y_c + (1 - M) ⊙ F(S x)_c)|² + Nc u σ²)``.

        ``band``: the acquired phase-encode columns ``(lo, hi)``; columns outside are zero padding in
        the fully sampled k-space (no signal, no noise), so they stay zero and add no floor.

        Scoring ``|x|`` itself against the RSS would compare a noise-free, map-weighted image with a
        target that carries the coils' noise floor everywhere (the background above all), and would
        rank methods by how much residual junk they leave there. Every method's image goes through
        this one map, so comparisons stay fair."""
        x = self._check_image(x)
        y = self._check_kspace(y)
        k = fft2c(_expand(self._maps(x.dtype), x))
        h, w = self.image_shape
        measured = self.mask.to(k.device)
        in_band = torch.ones(w, dtype=torch.bool, device=k.device)
        if band is not None:
            in_band[:] = False
            in_band[int(band[0]):int(band[1])] = True
        k = torch.where(in_band, k, torch.zeros((), dtype=k.dtype, device=k.device))
        coil = ifft2c(torch.where(measured[:, None], y.to(k.dtype), k))
        unmeasured = (~measured & in_band).flatten(1).float().mean(1)  # (B,)
        sigma = torch.as_tensor(self.noise_sigma, dtype=unmeasured.dtype, device=unmeasured.device).reshape(-1)
        floor = self.n_coils * unmeasured * sigma**2
        return (coil.abs().pow(2).sum(1) + floor[:, None, None]).sqrt()

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.sens_maps.shape[-2:])  # type: ignore[return-value]

    @property
    def batch_size(self) -> int:
        sizes = [t.shape[0] for t in (self.sens_maps, self.mask, self.acs) if isinstance(t, Tensor)]
        return max(sizes)

    def _check_image(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
        if not (x.is_complex() or x.is_floating_point()):
            raise TypeError(f"{name}: x must be a float or complex tensor, got {x.dtype}")
        h, w = self.image_shape
        m = self.n_sets
        if x.ndim != 4 or x.shape[1] != m or tuple(x.shape[-2:]) != (h, w):
            raise ValueError(f"{name}: x must be an image of shape (B, {m}, {h}, {w}), got {tuple(x.shape)}"
                             + (f" ({m} sets of coil maps: one image component per set)" if m > 1 else ""))
        self._check_input(x, "x")
        return x if x.is_complex() else x.to(complex_dtype_like(x.dtype))

    def _check_kspace(self, y: Tensor, name_y: str = "y") -> Tensor:
        name = type(self).__name__
        if not isinstance(y, Tensor):
            raise TypeError(f"{name}: {name_y} must be a torch.Tensor, got {type(y).__name__}")
        if not (y.is_complex() or y.is_floating_point()):
            raise TypeError(f"{name}: {name_y} (k-space) must be complex, got {y.dtype}")
        h, w = self.image_shape
        nc = self.n_coils
        if y.ndim != 4 or tuple(y.shape[-2:]) != (h, w):
            raise ValueError(f"{name}: {name_y} must be k-space of shape (B, {nc}, {h}, {w}), got {tuple(y.shape)}")
        if y.shape[1] != nc:
            raise ValueError(f"{name}: {name_y} has the wrong coil count: expected {nc} coils, got {y.shape[1]}")
        self._check_input(y, name_y)
        return y if y.is_complex() else y.to(complex_dtype_like(y.dtype))

    def _maps(self, dtype: torch.dtype) -> Tensor:
        return self.sens_maps if self.sens_maps.dtype == dtype else self.sens_maps.to(dtype)

    def _even(self) -> bool:
        h, w = self.image_shape
        return h % 2 == 0 and w % 2 == 0

    def _kmask(self, dtype: torch.dtype, modulated: bool) -> Tensor:
        """Real ``(B, 1, H, W)`` mask (times the k-space checkerboard when ``modulated``)."""
        rdt = real_dtype_like(dtype)
        m = self.mask.to(rdt)
        if modulated:
            m = m * _checkerboard(*self.image_shape, rdt, m.device)
        return m[:, None]

    def _image_mod(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        h, w = self.image_shape
        return _checkerboard(h, w, real_dtype_like(dtype), device, sign=(-1.0) ** ((h + w) // 2))

    # ---- the maths --------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """k-space ``M ⊙ F(S x)``, shape ``(B, Nc, H, W)``."""
        x = self._check_image(x)
        maps = self._maps(x.dtype)
        if self._even():
            k = torch.fft.fft2(_expand(maps, x * self._image_mod(x.dtype, x.device)), norm="ortho")
            return k.mul_(self._kmask(x.dtype, True))  # k is a fresh temporary (autograd-safe: FFT saves nothing)
        return fft2c(_expand(maps, x)).mul_(self._kmask(x.dtype, False))

    def adjoint(self, y: Tensor) -> Tensor:
        """Coil-combined image ``Σ_c conj(S_c) F^H(M ⊙ y_c)``, shape ``(B, 1, H, W)``."""
        y = self._check_kspace(y)
        maps = self._maps(y.dtype)
        if self._even():
            z = torch.fft.ifft2(_mul_real(y, self._kmask(y.dtype, True)), norm="ortho")
            return _coil_combine(maps, z) * self._image_mod(y.dtype, y.device)
        return _coil_combine(maps, ifft2c(_mul_real(y, self._kmask(y.dtype, False))))

    def normal(self, x: Tensor) -> Tensor:
        """``A^H A x`` in one pass (the k-space checkerboards cancel: ``D M D = M``)."""
        x = self._check_image(x)
        maps = self._maps(x.dtype)
        m = self._kmask(x.dtype, False)
        if self._even():
            d = self._image_mod(x.dtype, x.device)
            k = torch.fft.fft2(_expand(maps, x * d), norm="ortho")
            return _coil_combine(maps, torch.fft.ifft2(k.mul_(m), norm="ortho")) * d
        return _coil_combine(maps, ifft2c(fft2c(_expand(maps, x)).mul_(m)))

    def restrict(self, y: Tensor) -> Tensor:
        """Zero the unmeasured k-space entries of ``y`` ``(B, Nc, H, W)``."""
        y = self._check_kspace(y)
        return _mul_real(y, self._kmask(y.dtype, False))

    def mask_channels(self) -> Tensor:
        """The k-space mask as a float ``(B, 1, H, W)`` channel."""
        return self.mask[:, None].float()

    # ---- rows ---------------------------------------------------------------------------
    def row_mask(self) -> Tensor:
        """``(B, W)`` sampled lines for a line mask, ``(B, H, W)`` sampled points otherwise."""
        return self.mask[:, 0, :] if self.lines else self.mask

    def with_rows(self, rows: Tensor) -> MultiCoilMRI:
        h, w = self.image_shape
        rows = rows.bool()
        if self.lines:
            if rows.ndim != 2 or rows.shape[-1] != w:
                raise ValueError(f"{type(self).__name__}: line rows must have shape (B, {w}), got {tuple(rows.shape)}")
            mask = rows[:, None, :].expand(rows.shape[0], h, w)
        else:
            if rows.ndim != 3 or tuple(rows.shape[-2:]) != (h, w):
                raise ValueError(
                    f"{type(self).__name__}: point rows must have shape (B, {h}, {w}), got {tuple(rows.shape)}"
                )
            mask = rows
        return self.replace(mask=mask)

    def default_keep(self) -> Tensor | None:
        """The ACS rows (same layout as :meth:`row_mask`), or ``None``."""
        return self.acs

    # ---- batching -----------------------------------------------------------------------
    def stack_batch(self, ops: Sequence[MultiCoilMRI]) -> MultiCoilMRI:
        """:func:`~ambient_imaging.operators.stack` for MRI operators (same coil count and H, W)."""
        first = ops[0]
        for i, op in enumerate(ops):
            if op.n_coils != first.n_coils or op.image_shape != first.image_shape or op.n_sets != first.n_sets:
                raise ValueError(
                    f"stack: MultiCoilMRI #{i} has {op.n_coils} coils of size {op.image_shape} ({op.n_sets} map "
                    f"sets), #0 has {first.n_coils} coils of size {first.image_shape} ({first.n_sets} map sets); "
                    "operators in one batch must share coil count, map sets and image size"
                )
            if op.device != first.device:
                raise ValueError(f"stack: MultiCoilMRI #{i} is on {op.device}, #0 on {first.device}")
        sizes = [op.batch_size for op in ops]

        def expand(t: Tensor, b: int) -> Tensor:
            return t.expand(b, *t.shape[1:]) if t.shape[0] == 1 and b > 1 else t

        dtype = first.sens_maps.dtype
        for op in ops:
            dtype = torch.promote_types(dtype, op.sens_maps.dtype)
        maps = [op.sens_maps.to(dtype) for op in ops]
        if all(m.shape[0] == 1 for m in maps) and all(torch.equal(m, maps[0]) for m in maps[1:]) and len(ops) > 1:
            sens = maps[0]  # one shared set of maps (e.g. single coil): keep broadcasting
        else:
            sens = torch.cat([expand(m, b) for m, b in zip(maps, sizes, strict=True)])
        mask = torch.cat([expand(op.mask, b) for op, b in zip(ops, sizes, strict=True)])
        lines = all(op.lines for op in ops)
        acs = None
        if any(op.acs is not None for op in ops):
            parts = []
            for op, b in zip(ops, sizes, strict=True):
                a = op.acs if op.acs is not None else torch.zeros_like(op.row_mask()[:1])
                if not lines and op.lines:
                    a = a[:, None, :].expand(a.shape[0], *op.image_shape)
                parts.append(expand(a, b))
            acs = torch.cat(parts)
        sig = [op.noise_sigma for op in ops]
        if any(isinstance(s, Tensor) for s in sig) or len({float(s) for s in sig}) > 1:
            per = [torch.as_tensor(s, dtype=torch.float64).reshape(-1) for s in sig]
            sigma: float | Tensor = torch.cat(
                [p.expand(b) if p.numel() == 1 else p for p, b in zip(per, sizes, strict=True)]
            ).to(first.device)
        else:
            sigma = float(sig[0])
        return first.replace(sens_maps=sens, mask=mask, acs=acs, lines=lines, noise_sigma=sigma)

    def __repr__(self) -> str:
        h, w = self.image_shape
        kind = "lines" if self.lines else "points"
        frac = float(self.mask.float().mean())
        return (
            f"MultiCoilMRI(batch={self.batch_size}, coils={self.n_coils}, "
            + (f"map_sets={self.n_sets}, " if self.n_sets > 1 else "")
            + f"shape=({h}, {w}), mask={kind}, "
            f"sampled={frac:.3f}, acs={'yes' if self.acs is not None else 'no'}, noise_sigma={self.noise_sigma!r})"
        )


# ------------------------------------------------------------------------------- helpers
def _mul_real(z: Tensor, m: Tensor) -> Tensor:
    """Complex ``z`` times a real tensor ``m`` (broadcasts ``m``; out of place)."""
    return z * m  # complex × real broadcasts in one kernel


def _expand(maps: Tensor, x: Tensor) -> Tensor:
    """Coil images ``Σ_m S_m x_m`` ``(B, Nc, H, W)`` of ``x`` ``(B, M, H, W)`` (``M = 1``: ``S x``)."""
    if maps.ndim == 4:
        return maps * x
    return (maps * x[:, :, None]).sum(1)


def _coil_combine(maps: Tensor, z: Tensor) -> Tensor:
    """``Σ_c conj(S_c) z_c`` over dim 1, keeping it (``(B, 1, H, W)``); ``M`` sets: ``(B, M, H, W)``."""
    if maps.ndim == 5:
        return (maps.conj() * z[:, None]).sum(2)
    if torch.is_grad_enabled() and (maps.requires_grad or z.requires_grad):
        return (maps.conj() * z).sum(1, keepdim=True)
    # z is a fresh temporary: Σ conj(S) z = conj(Σ S conj(z)), all in place (no materialised conj(S))
    return torch.conj_physical_(z).mul_(maps).sum(1, keepdim=True).conj_physical_()


def _as_mask(mask: Tensor, h: int, w: int, device: torch.device, lines: bool | None, name: str) -> tuple[Tensor, bool]:
    """Validate a mask and return it as ``(B, H, W)`` bool plus the line flag."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.is_complex():
        raise TypeError(f"{name}: mask must be boolean or real 0/1, got a complex tensor")
    if mask.device != device:
        raise ValueError(f"{name}: mask is on {mask.device} but sens_maps are on {device}; put them on one device")
    if mask.dtype != torch.bool:
        if not bool(torch.all((mask == 0) | (mask == 1))):
            raise ValueError(f"{name}: mask must contain only 0 and 1 (or be boolean)")
        mask = mask.bool()
    if mask.ndim == 4:
        if mask.shape[1] != 1:
            raise ValueError(f"{name}: a 4-D mask must be (B, 1, H, W), got {tuple(mask.shape)}")
        mask = mask[:, 0]
    if mask.ndim == 2:  # (B, W) phase-encode lines
        if mask.shape[-1] != w:
            raise ValueError(
                f"{name}: line mask of shape {tuple(mask.shape)} does not match the k-space width W={w} "
                f"(a 2-D mask is read as (B, W) phase-encode columns)"
            )
        if lines is False:
            return mask[:, None, :].expand(mask.shape[0], h, w).contiguous(), False
        return mask[:, None, :].expand(mask.shape[0], h, w), True
    if mask.ndim != 3:
        raise ValueError(f"{name}: mask must be (B, H, W), (B, 1, H, W) or (B, W) lines, got {tuple(mask.shape)}")
    if tuple(mask.shape[-2:]) != (h, w):
        raise ValueError(
            f"{name}: mask of shape {tuple(mask.shape)} does not match the coil maps' k-space size ({h}, {w})"
        )
    constant = bool(torch.all(mask == mask[:, :1]))
    if lines is None:
        lines = constant
    elif lines and not constant:
        raise ValueError(f"{name}: lines=True but the mask is not constant along H (not whole phase-encode lines)")
    return mask, bool(lines)


def _as_acs(acs: Tensor, mask: Tensor, lines: bool, name: str) -> Tensor:
    """Validate the ACS set and return it in the row layout (``(B, W)`` or ``(B, H, W)``)."""
    if not isinstance(acs, Tensor):
        raise TypeError(f"{name}: acs must be a torch.Tensor or None, got {type(acs).__name__}")
    if acs.device != mask.device:
        raise ValueError(f"{name}: acs is on {acs.device} but the mask is on {mask.device}")
    h, w = mask.shape[-2:]
    acs = acs.bool()
    if acs.ndim == 4 and acs.shape[1] == 1:
        acs = acs[:, 0]
    if acs.ndim == 2:
        if acs.shape[-1] != w:
            raise ValueError(f"{name}: acs of shape {tuple(acs.shape)} does not match the k-space width W={w}")
        full = acs[:, None, :].expand(acs.shape[0], h, w)
    elif acs.ndim == 3 and tuple(acs.shape[-2:]) == (h, w):
        full = acs
    else:
        raise ValueError(f"{name}: acs must be (B, W) lines or (B, H, W) points, got {tuple(acs.shape)}")
    if bool(torch.any(full & ~mask)):
        raise ValueError(f"{name}: acs marks k-space that the mask does not sample (acs must lie inside mask)")
    if lines:
        if not bool(torch.all(full == full[:, :1])):
            raise ValueError(f"{name}: the mask is a line mask, so acs must be whole lines (constant along H)")
        return full[:, 0, :]
    return full


def _check_sigma(sigma: float | Tensor, name: str) -> float | Tensor:
    if isinstance(sigma, Tensor):
        if sigma.ndim > 1:
            raise ValueError(f"{name}: noise_sigma must be a float or a (B,) tensor, got shape {tuple(sigma.shape)}")
        if bool(torch.any(sigma < 0)):
            raise ValueError(f"{name}: noise_sigma must be >= 0")
        return float(sigma) if sigma.ndim == 0 else sigma
    sigma = float(sigma)
    if sigma < 0:
        raise ValueError(f"{name}: noise_sigma must be >= 0, got {sigma}")
    return sigma
