"""The gridded fast path of interferometry: visibilities on the image's uv grid (one FFT).

:class:`GriddedInterferometer` shares the conventions of :mod:`.interferometry` (the sign of
the exponent, the centred grid, the real-sky adjoint); ``Interferometer.to_gridded`` builds
one from a coverage. Also the argument checks both interferometers use.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import SubsamplingOperator, check_image, complex_dtype_like, real_dtype_like

__all__ = ["GriddedInterferometer"]


def _check_pixel_scale(pixel_scale: float, cls: str) -> float:
    ps = float(pixel_scale)
    if not (math.isfinite(ps) and ps > 0):
        raise ValueError(f"{cls}: pixel_scale must be a positive number of radians, got {pixel_scale}")
    return ps


def _complex_image(x: Tensor, name: str, cls: str, shape: tuple[int, int]) -> Tensor:
    check_image(x, name)
    if x.shape[1] != 1 or tuple(x.shape[-2:]) != tuple(shape):
        raise ValueError(f"{cls}: {name} must have shape (B, 1, {shape[0]}, {shape[1]}), got {tuple(x.shape)}")
    return x


def _add_conjugate_cells(mask: Tensor, sigma: float | Tensor) -> tuple[Tensor, float | Tensor]:
    """Mark cell ``-k`` wherever ``k`` is measured (centred grid; the Nyquist row/column
    of an even size has no mirror and is left as is). Cells measured both ways keep
    their own sigma."""
    h, w = mask.shape[-2:]
    mirror = torch.zeros_like(mask)
    # centred index c = i - h//2  ->  -c = (h - i) - h//2 + ... ; for i in [i0, h) with i0 = 1 if h even else 0
    i0, j0 = (1 if h % 2 == 0 else 0), (1 if w % 2 == 0 else 0)
    mirror[..., i0:, j0:] = mask[..., i0:, j0:].flip(-2, -1)
    new_mask = mask | mirror
    if isinstance(sigma, Tensor):
        ms = torch.zeros_like(sigma)
        ms[..., i0:, j0:] = sigma[..., i0:, j0:].flip(-2, -1)
        sigma = torch.where(mask, sigma, ms)
    return new_mask, sigma


class GriddedInterferometer(SubsamplingOperator):
    """FFT fast path: visibilities on the ``H×W`` uv grid, ``y = M ⊙ F_c x + ε``.

    ``F_c`` is the centred, un-normalised 2-D DFT with the operator's sign
    ``Y[k_v, k_u] = Σ x[i, j] exp(+2πi (k_u (j-W//2)/W + k_v (i-H//2)/H))`` with the
    zero frequency at index ``(H//2, W//2)``; cell ``(r, c)`` is the uv point
    ``u = (c - W//2)/(WΔ)``, ``v = (r - H//2)/(HΔ)``, where :class:`Interferometer`
    gives exactly the same value.

    Args:
        uv_mask: ``(B, 1, H, W)`` (or ``(H, W)``) bool, measured uv cells; rows are cells.
        pixel_scale: pixel size ``Δ`` in radians (sets the uv coordinates of the cells).
        noise_sigma: float, ``(B,)`` or ``(B, 1, H, W)`` per-cell std.
        real_image: the sky is real (default): the adjoint returns the real part.

    Measured cells ``k`` and ``-k`` of a real sky carry conjugate (redundant)
    values; the mask is used as given (see :meth:`Interferometer.to_gridded`).
    """

    _batched = ("mask",)
    family = "interferometry"

    def __init__(
        self, uv_mask: Tensor, pixel_scale: float, noise_sigma: float | Tensor = 0.0, *, real_image: bool = True
    ):
        if not isinstance(uv_mask, Tensor):
            raise TypeError(f"GriddedInterferometer: uv_mask must be a torch.Tensor, got {type(uv_mask).__name__}")
        if uv_mask.ndim == 2:
            uv_mask = uv_mask[None, None]
        if uv_mask.ndim != 4 or uv_mask.shape[1] != 1:
            raise ValueError(f"GriddedInterferometer: uv_mask must have shape (B, 1, H, W), got {tuple(uv_mask.shape)}")
        if uv_mask.dtype != torch.bool:
            if uv_mask.is_complex() or not torch.all((uv_mask == 0) | (uv_mask == 1)):
                raise ValueError("GriddedInterferometer: uv_mask must be boolean (or 0/1)")
            uv_mask = uv_mask.bool()
        self.mask = uv_mask
        self.pixel_scale = _check_pixel_scale(pixel_scale, "GriddedInterferometer")
        if isinstance(noise_sigma, Tensor):
            if not torch.isfinite(noise_sigma).all() or (noise_sigma < 0).any():
                raise ValueError("GriddedInterferometer: noise_sigma must be finite and >= 0")
            if noise_sigma.ndim == 0:
                noise_sigma = float(noise_sigma)
        elif not (math.isfinite(float(noise_sigma)) and float(noise_sigma) >= 0):
            raise ValueError(f"GriddedInterferometer: noise_sigma must be finite and >= 0, got {noise_sigma}")
        self.noise_sigma = noise_sigma
        self.real_image = bool(real_image)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.mask.shape[-2], self.mask.shape[-1])

    def uv_grid(self) -> Tensor:
        """uv coordinates (wavelengths) of the cells, ``(H, W, 2)`` with ``[..., 0] = u``."""
        h, w = self.image_shape
        u = (torch.arange(w, dtype=torch.float64) - w // 2) / (w * self.pixel_scale)
        v = (torch.arange(h, dtype=torch.float64) - h // 2) / (h * self.pixel_scale)
        return torch.stack(torch.broadcast_tensors(u[None, :], v[:, None]), dim=-1).to(self.mask.device)

    def _m(self, t: Tensor) -> Tensor:
        return self.mask.to(real_dtype_like(t.dtype))

    def forward(self, x: Tensor) -> Tensor:
        x = _complex_image(x, "x", "GriddedInterferometer", self.image_shape)
        self._check_input(x)
        h, w = self.image_shape
        y = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(x, dim=(-2, -1))), dim=(-2, -1)) * (h * w)
        return y * self._m(y)

    def adjoint(self, y: Tensor) -> Tensor:
        y = self._check_grid(y)
        z = torch.fft.ifftshift(y * self._m(y), dim=(-2, -1))
        x = torch.fft.fftshift(torch.fft.fft2(z), dim=(-2, -1))
        return x.real if self.real_image else x

    def _check_grid(self, y: Tensor, name: str = "y") -> Tensor:
        if not isinstance(y, Tensor):
            raise TypeError(f"GriddedInterferometer: {name} must be a torch.Tensor, got {type(y).__name__}")
        h, w = self.image_shape
        if y.ndim != 4 or y.shape[1] != 1 or tuple(y.shape[-2:]) != (h, w):
            raise ValueError(f"GriddedInterferometer: {name} must have shape (B, 1, {h}, {w}), got {tuple(y.shape)}")
        self._check_input(y, name)
        return y if y.is_complex() else y.to(complex_dtype_like(y.dtype))

    def restrict(self, y: Tensor) -> Tensor:
        y = self._check_grid(y)
        return y * self._m(y)

    def measurements_to_image(self, y: Tensor) -> Tensor:
        """Dirty image with a unit-peak dirty beam: ``A^H y / (number of measured cells)``
        (uniform weights)."""
        n = self.mask.reshape(self.mask.shape[0], -1).sum(1).clamp_min(1).to(real_dtype_like(y.dtype))
        return self.adjoint(y) / n.reshape(-1, 1, 1, 1)

    def mask_channels(self) -> Tensor:
        """The uv-cell mask as float ``(B, 1, H, W)``."""
        return self.mask.float()

    def __repr__(self) -> str:
        cells = self.n_rows.tolist()
        return f"GriddedInterferometer(batch={self.batch_size}, image_shape={self.image_shape}, cells={cells})"
