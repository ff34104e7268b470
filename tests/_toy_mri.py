"""A small multi-coil Cartesian MRI setup for tests (uses MultiCoilMRI when it exists)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ambient_imaging.operators import SubsamplingOperator


def fft2c(x: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def ifft2c(x: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class ToyMRI(SubsamplingOperator):
    """Stand-in with the MultiCoilMRI contract (sens_maps (B,Nc,H,W), mask (B,H,W))."""

    _batched = ("sens_maps", "mask")
    family = "mri"

    def __init__(self, sens_maps: Tensor, mask: Tensor, noise_sigma: float = 0.0, acs: Tensor | None = None):
        if mask.ndim == 2:  # (B, W) phase-encode lines
            mask = mask[:, None, :].expand(mask.shape[0], sens_maps.shape[-2], -1).clone()
        self.sens_maps, self.mask, self.noise_sigma = sens_maps, mask.bool(), noise_sigma

    def forward(self, x: Tensor) -> Tensor:
        return fft2c(self.sens_maps.to(x.dtype) * x) * self.mask[:, None]

    def adjoint(self, y: Tensor) -> Tensor:
        return (self.sens_maps.conj().to(y.dtype) * ifft2c(y * self.mask[:, None])).sum(1, keepdim=True)

    def restrict(self, y: Tensor) -> Tensor:
        return y * self.mask[:, None]

    def mask_channels(self) -> Tensor:
        return self.mask[:, None].float()


def coil_maps(nc: int, h: int, w: int, dtype=torch.complex128) -> Tensor:
    """Smooth Gaussian coil profiles with linear phase, normalised to Σ|S|² = 1."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                            torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
    maps = []
    for c in range(nc):
        ang = 2 * math.pi * c / nc
        cy, cx = 1.2 * math.sin(ang), 1.2 * math.cos(ang)
        mag = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.5)
        maps.append(mag * torch.exp(1j * (0.5 * c + 0.3 * xx)))
    s = torch.stack(maps)
    s = s / torch.sqrt((s.abs() ** 2).sum(0, keepdim=True))
    return s[None].to(dtype)


def line_mask(h: int, w: int, acceleration: int, center: int, seed: int = 0) -> Tensor:
    """(1, H, W) random phase-encode lines (columns) with a fully sampled centre."""
    g = torch.Generator().manual_seed(seed)
    cols = torch.rand(w, generator=g) < (w / acceleration - center) / (w - center)
    c0 = (w - center) // 2
    cols[c0 : c0 + center] = True
    return cols[None, None, :].expand(1, h, w).clone()


def mri_class() -> type:
    """MultiCoilMRI (exported or from its module), or the stand-in while it is being written."""
    try:
        from ambient_imaging.operators import MultiCoilMRI
    except ImportError:
        try:
            from ambient_imaging.operators.mri import MultiCoilMRI
        except ImportError:
            return ToyMRI
    return MultiCoilMRI


def make_mri(maps: Tensor, mask: Tensor, noise_sigma: float = 0.0):
    return mri_class()(maps, mask, noise_sigma=noise_sigma)


def phantom(n: int = 64) -> Tensor:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    p = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True)
    return torch.as_tensor(p)[None, None].to(torch.complex128)
