"""Denoiser networks: backbones and EDM preconditioning.

The Denoiser protocol used everywhere in ambient-imaging::

    net(x: Tensor (B, C, H, W) real or complex, sigma: Tensor (B,) | 0-d | float,
        mask: Tensor (B, k, H, W) | None) -> Tensor shaped and typed like x

returns the EDM-preconditioned estimate of ``E[x | x_t]`` (``E[x | Ã x_t, Ã]``
for networks that see a mask). :class:`EDMPrecond` implements it around any
:class:`Backbone`, e.g. the DDPM++ :class:`UNet`.
"""

from .precond import Backbone, EDMPrecond, backbone_classes, edm_coefficients, register_backbone
from .unet import UNet

__all__ = ["Backbone", "EDMPrecond", "UNet", "backbone_classes", "edm_coefficients", "register_backbone"]
