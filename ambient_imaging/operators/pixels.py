"""Image-domain operators: pixel masks (inpainting) and Gaussian noise (denoising)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import LinearOperator, SubsamplingOperator, check_image, dihedral, real_dtype_like

__all__ = ["PixelMask", "GaussianNoise", "dust_mask", "box_mask"]


class PixelMask(SubsamplingOperator):
    """Inpainting: ``y = M ⊙ x + ε`` with a per-sample binary pixel mask.

    Args:
        mask: boolean (or 0/1) tensor of shape ``(B, 1, H, W)`` (one mask for
            all channels) or ``(B, C, H, W)``; ``True`` where a pixel is measured.
            A ``(H, W)`` mask is taken as ``(1, 1, H, W)``.
        noise_sigma: std of the measurement noise on observed pixels.

    Measurements keep the image layout: ``y`` is ``(B, C, H, W)`` with zeros
    at missing pixels. ``A`` is an orthogonal projection, so ``A^H = A`` and
    ``A^H A = A``. The rows are pixels (shared by all channels when the mask
    has one channel).
    """

    _batched = ("mask",)
    family = "mask"
    image_domain = True

    def __init__(self, mask: Tensor, noise_sigma: float | Tensor = 0.0):
        if not isinstance(mask, Tensor):
            raise TypeError(f"PixelMask: mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.ndim == 2:
            mask = mask[None, None]
        elif mask.ndim == 3:
            mask = mask[:, None]
        if mask.ndim != 4:
            raise ValueError(f"PixelMask: mask must have shape (B, 1|C, H, W), got {tuple(mask.shape)}")
        if mask.is_complex():
            raise TypeError("PixelMask: mask must be boolean or real 0/1, got a complex tensor")
        if mask.dtype != torch.bool:
            if not torch.all((mask == 0) | (mask == 1)):
                raise ValueError("PixelMask: mask must contain only 0 and 1 (or be boolean)")
            mask = mask.bool()
        self.mask = mask
        self.noise_sigma = noise_sigma

    def _apply(self, x: Tensor, name: str) -> Tensor:
        check_image(x, name)
        self._check_input(x, name)
        m = self.mask
        if m.shape[-2:] != x.shape[-2:] or m.shape[1] not in (1, x.shape[1]):
            raise ValueError(
                f"PixelMask: mask of shape {tuple(m.shape)} does not match {name} of shape "
                f"{tuple(x.shape)} (need (B, 1 or C, H, W) with the same H, W)"
            )
        return x * m.to(real_dtype_like(x.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return self._apply(x, "x")

    def adjoint(self, y: Tensor) -> Tensor:
        return self._apply(y, "y")

    def normal(self, x: Tensor) -> Tensor:
        return self._apply(x, "x")

    def restrict(self, y: Tensor) -> Tensor:
        return self._apply(y, "y")

    def mask_channels(self) -> Tensor:
        """The mask itself (as float), one channel per mask channel."""
        return self.mask.float()

    def transformed(self, ks: int | Sequence[int]) -> PixelMask:
        """The mask flipped/rotated with the images (element ``ks[i]`` of the dihedral group for sample ``i``)."""
        if isinstance(ks, int):
            return self.replace(mask=dihedral(self.mask, ks))
        b = len(ks)
        m = self.mask.expand(b, *self.mask.shape[1:]) if self.mask.shape[0] == 1 else self.mask
        return self.replace(mask=torch.stack([dihedral(m[i], k) for i, k in enumerate(ks)]))


class GaussianNoise(LinearOperator):
    """Denoising: ``y = x + ε``, ``ε ~ N(0, σ²)``; the identity with noise.

    ``sigma`` is a float or a per-sample tensor of shape ``(B,)``. Composes
    elementwise: ``GaussianNoise(σ) @ PixelMask(m)`` is noisy inpainting.
    """

    elementwise = True
    _batched = ("noise_sigma",)
    family = "noise"
    image_domain = True

    def __init__(self, sigma: float | Tensor):
        if isinstance(sigma, Tensor):
            if torch.any(sigma < 0):
                raise ValueError("GaussianNoise: sigma must be >= 0")
            if sigma.ndim > 1:
                raise ValueError(
                    f"GaussianNoise: sigma must be a float or a (B,) tensor, got shape {tuple(sigma.shape)}"
                )
            if sigma.ndim == 0:
                sigma = float(sigma)
        elif float(sigma) < 0:
            raise ValueError(f"GaussianNoise: sigma must be >= 0, got {sigma}")
        else:
            sigma = float(sigma)
        self.noise_sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        check_image(x)
        self._check_input(x)
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        check_image(y, "y")
        self._check_input(y, "y")
        return y

    def normal(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def transformed(self, ks: int | Sequence[int]) -> GaussianNoise:
        """Itself: the identity commutes with every geometric transform."""
        return self


def dust_mask(
    shape: tuple[int, ...],
    corruption: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Random "dust" masks: each pixel is missing independently with prob. ``corruption``.

    Args:
        shape: ``(B, H, W)`` or ``(B, C, H, W)``; a 3-tuple gives ``(B, 1, H, W)``.
        corruption: fraction of pixels erased, in ``[0, 1)``.
    Returns:
        boolean mask, ``True`` where measured.
    """
    if not 0.0 <= corruption < 1.0:
        raise ValueError(f"dust_mask: corruption must be in [0, 1), got {corruption}")
    if len(shape) == 3:
        shape = (shape[0], 1, shape[1], shape[2])
    if len(shape) != 4:
        raise ValueError(f"dust_mask: shape must be (B, H, W) or (B, C, H, W), got {shape}")
    return torch.rand(shape, generator=generator, device=device) >= corruption


def box_mask(
    shape: tuple[int, ...],
    box_size: int | tuple[int, int],
    n_boxes: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Masks with ``n_boxes`` random axis-aligned boxes erased per sample.

    Args:
        shape: ``(B, H, W)`` or ``(B, C, H, W)``.
        box_size: box side (or ``(h, w)``) in pixels; must fit inside the image.
    """
    if len(shape) == 3:
        shape = (shape[0], 1, shape[1], shape[2])
    b, c, h, w = shape
    bh, bw = (box_size, box_size) if isinstance(box_size, int) else box_size
    if not (0 < bh <= h and 0 < bw <= w):
        raise ValueError(f"box_mask: box {bh}x{bw} does not fit in a {h}x{w} image")
    mask = torch.ones(shape, dtype=torch.bool, device=device)
    top = torch.randint(0, h - bh + 1, (b, n_boxes), generator=generator, device=device)
    left = torch.randint(0, w - bw + 1, (b, n_boxes), generator=generator, device=device)
    for i in range(b):
        for k in range(n_boxes):
            t, l_ = int(top[i, k]), int(left[i, k])
            mask[i, :, t : t + bh, l_ : l_ + bw] = False
    return mask
