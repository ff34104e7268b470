"""Where a mask says data is: the mask domains a denoiser is told about (no network code here).

A network given mask channels can treat an unobserved entry as one observed at infinite
noise (``networks/precond.py``). For that it needs to know *what* the mask marks: pixels of
``x`` itself, or locations of some transform of ``x`` (Cartesian k-space: the centred
orthonormal 2-D FFT of the MRI operators). The operators' side owns that knowledge; a
network receives a :class:`MaskDomain` object at construction and records its ``name``, and
:func:`mask_domain` turns a recorded name back into the object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .mri import fft2c, ifft2c

__all__ = ["MaskDomain", "NO_MASK_DOMAIN", "PIXEL_DOMAIN", "KSPACE_DOMAIN", "MASK_DOMAINS", "mask_domain"]


@dataclass(frozen=True)
class MaskDomain:
    """What mask channels mark as observed.

    Attributes:
        name: recorded with a prior (``"none"``, ``"pixel"``, ``"kspace"``).
        active: unobserved entries get the σ → ∞ preconditioning (``False``: plain EDM).
        transform, inverse: the mask lives on ``transform(x)`` (``None``: on ``x`` itself).
    """

    name: str
    active: bool = True
    transform: Callable[[Tensor], Tensor] | None = None
    inverse: Callable[[Tensor], Tensor] | None = None

    def channel_counts(self, image_channels: int) -> tuple[int, ...] | None:
        """The mask channel counts this domain accepts (``None``: any)."""
        if not self.active:
            return None
        return (1,) if self.transform is not None else (1, int(image_channels))


#: plain EDM: the mask is only an input
NO_MASK_DOMAIN = MaskDomain("none", active=False)
#: per-pixel masks aligned with ``x`` (inpainting)
PIXEL_DOMAIN = MaskDomain("pixel")
#: a mask over the centred orthonormal 2-D FFT of ``x`` (Cartesian MRI)
KSPACE_DOMAIN = MaskDomain("kspace", transform=fft2c, inverse=ifft2c)

MASK_DOMAINS: dict[str, MaskDomain] = {d.name: d for d in (NO_MASK_DOMAIN, PIXEL_DOMAIN, KSPACE_DOMAIN)}


def mask_domain(name: str | MaskDomain) -> MaskDomain:
    """The :class:`MaskDomain` recorded as ``name`` (an object is returned as is)."""
    if isinstance(name, MaskDomain):
        return name
    if name not in MASK_DOMAINS:
        raise ValueError(f"mask_domain must be one of {', '.join(MASK_DOMAINS)}, got {name!r}")
    return MASK_DOMAINS[name]
