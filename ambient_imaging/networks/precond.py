"""EDM preconditioning (Karras et al. 2022, Table 1) around any backbone: the Denoiser.

``D(x, σ) = c_skip(σ) x + c_out(σ) F([c_in(σ) x, mask], c_noise(σ))`` with

* ``c_skip = σ_d² / (σ² + σ_d²)``
* ``c_out  = σ σ_d / √(σ² + σ_d²)``
* ``c_in   = 1 / √(σ² + σ_d²)``
* ``c_noise = ln(σ) / 4``

Unobserved entries (``mask_domain``): when the mask channels say which entries of ``x``
were observed — pixels (``"pixel"``, inpainting) or Cartesian k-space locations of the
centred orthonormal FFT of ``x`` (``"kspace"``, MRI) — an unobserved entry is treated as
one observed at infinite noise, i.e. the σ → ∞ limit of the coefficients above is used
there: ``c_skip → 0`` and ``c_out → σ_d``. For pixels,
``D = m (c_skip x + c_out F) + (1 − m) σ_d F``; for k-space,
``D = c_skip x + F⁻¹[(m c_out + (1 − m) σ_d) · F(F_net)]`` (the input of an ambient MRI
prior, ``Ã^H Ã x_t``, has no energy at unobserved k-space lines anyway). With the plain
form the output at an unobserved entry is ``c_out F`` and ``c_out → 0`` as σ → 0, so the
backbone would have to output values of size ``σ_d / c_out`` (≈ 250 at σ = 0.002) to fill
it: ambient priors then keep holes (grey pixels, zero-filled k-space) at small σ. The loss
(a function of D) is unchanged; only the parameterisation of D is, so the minimiser
``E[x | Ã x_t, Ã]`` is unchanged too.

Complex images (MRI) pass through the backbone as 2 real channels per image
channel (real, imaginary), interleaved channel by channel. The diffusion
noise convention for complex images is therefore "σ per real channel":
``x_t = x + σ (η_re + i η_im)`` with ``η_re, η_im ~ N(0, 1)``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ambient_imaging.operators.domains import MaskDomain
from ambient_imaging.operators.domains import mask_domain as resolve_mask_domain

__all__ = ["Backbone", "EDMPrecond", "edm_coefficients", "backbone_classes", "register_backbone"]


@runtime_checkable
class Backbone(Protocol):
    """What :class:`EDMPrecond` needs from a network.

    ``forward(x, c_noise)``: ``x`` real ``(B, in_channels, H, W)`` with H and W
    multiples of ``stride``, ``c_noise`` real ``(B,)``; returns real
    ``(B, out_channels, H, W)``. For :meth:`EDMPrecond.config` round trips the
    backbone also provides ``config() -> dict`` and a classmethod
    ``from_config(dict)``.
    """

    in_channels: int
    out_channels: int
    stride: int

    def __call__(self, x: Tensor, c_noise: Tensor) -> Tensor: ...


def edm_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` of Karras et al. 2022, Table 1 (elementwise in ``sigma``).

    ``c_noise`` uses ``ln(max(σ, 1e-20)) / 4`` so that σ = 0 is allowed (then ``c_out = 0``, D = x).
    """
    sd2 = sigma_data**2
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / torch.sqrt(sigma**2 + sd2)
    c_in = 1.0 / torch.sqrt(sigma**2 + sd2)
    c_noise = torch.log(sigma.clamp_min(1e-20)) / 4
    return c_skip, c_out, c_in, c_noise


def _to_real_channels(x: Tensor) -> Tensor:
    """(B, C, H, W) complex -> (B, 2C, H, W) real, channels (re_0, im_0, re_1, im_1, ...)."""
    b, c, h, w = x.shape
    return torch.view_as_real(x).permute(0, 1, 4, 2, 3).reshape(b, 2 * c, h, w)


def _from_real_channels(x: Tensor) -> Tensor:
    """Inverse of :func:`_to_real_channels`."""
    b, c2, h, w = x.shape
    x = x.reshape(b, c2 // 2, 2, h, w).permute(0, 1, 3, 4, 2).contiguous()
    return torch.view_as_complex(x)


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


#: backbones registered with :func:`register_backbone` (besides our own, see :func:`backbone_classes`)
_REGISTERED: dict[str, type] = {}


def backbone_classes() -> dict[str, type]:
    """The allow-list used by :meth:`EDMPrecond.from_config`: recorded name → class.

    Our own backbones under their recorded ``"module:Name"`` path and their short name, plus
    classes registered in this process with :func:`register_backbone`. A configuration (e.g. a
    checkpoint's ``state.json``) can only *name* one of these; nothing is ever imported from it.
    """
    from .unet import UNet

    ours: dict[str, type] = {}
    for cls in (UNet,):
        ours[f"{cls.__module__}:{cls.__qualname__}"] = cls
        ours[cls.__qualname__] = cls
    return {**ours, **_REGISTERED}


def register_backbone(cls: type, name: str | None = None) -> type:
    """Allow :meth:`EDMPrecond.from_config` to rebuild networks around your own backbone class.

    ``cls`` needs ``config()`` and a classmethod ``from_config(dict)`` (see :class:`Backbone`);
    it is registered under its ``"module:Name"`` path (what :meth:`EDMPrecond.config` records)
    and under ``name`` if given. Usable as a class decorator. Only code you run registers
    classes: a checkpoint cannot.
    """
    if not isinstance(cls, type) or not callable(getattr(cls, "from_config", None)):
        raise TypeError(f"register_backbone: {cls!r} is not a class with a from_config() classmethod")
    _REGISTERED[f"{cls.__module__}:{cls.__qualname__}"] = cls
    if name:
        _REGISTERED[str(name)] = cls
    return cls


def _resolve_backbone(name: Any) -> type:
    """The allow-listed class recorded as ``name`` (never an import)."""
    allowed = backbone_classes()
    if not isinstance(name, str) or name not in allowed:
        known = ", ".join(sorted(k for k in allowed if ":" in k))
        raise ValueError(
            f"EDMPrecond.from_config: backbone class {name!r} is not a known backbone (known: {known}); "
            "for your own backbone call ambient_imaging.networks.register_backbone(cls) first, or pass "
            "backbone_cls="
        )
    return allowed[name]


class EDMPrecond(nn.Module):
    """The Denoiser: EDM-preconditioned estimate of ``E[x | x_t]`` (or ``E[x | Ã x_t, Ã]`` with a mask).

    Args:
        backbone: any :class:`Backbone`; its ``in_channels`` must equal
            ``image_channels * (2 if is_complex else 1) + mask_channels`` and its
            ``out_channels`` the image part of that.
        image_channels: image channels C (a complex channel counts once).
        is_complex: images are complex (MRI); they go through the backbone as 2 real channels.
        mask_channels: number k of mask channels concatenated to ``c_in x`` (not scaled);
            0 = the network sees no mask.
        sigma_data, sigma_min, sigma_max: EDM constants (σ range for samplers).
        pad_mode: how H, W are padded up to the backbone stride: ``"reflect"``
            (default; falls back to ``"replicate"`` when the image is smaller than
            the pad) or ``"zeros"``/``"replicate"``. Mask channels are always
            zero-padded (no data in the padding); the output is cropped back.
        mask_domain: what the mask channels mark as observed, for the σ → ∞ treatment of
            unobserved entries (module docstring): a
            :class:`~ambient_imaging.operators.domains.MaskDomain` handed in by whoever knows the
            data (``"none"``: plain EDM; ``"pixel"``: 1 or ``image_channels`` per-pixel masks
            aligned with ``x``; ``"kspace"``: 1 channel, a mask over the domain's transform of
            ``x``), or its recorded name. The network applies the domain's transform; it
            knows no instrument.

    ``forward(x, sigma, mask=None)``: ``x`` (B, C, H, W) real or complex,
    ``sigma`` a float, 0-d, (B,) or (B, 1, 1, 1) tensor (σ ≥ 0; σ = 0 returns x, at the
    observed entries only with a ``mask_domain``),
    ``mask`` (B or 1, k, H, W) real/bool. Returns the shape and dtype of ``x``.
    A mask given to a network with ``mask_channels == 0`` is ignored (samplers
    may pass ``A.mask_channels()`` generically).
    """

    def __init__(
        self,
        backbone: nn.Module,
        image_channels: int,
        is_complex: bool = False,
        mask_channels: int = 0,
        sigma_data: float = 0.5,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        pad_mode: str = "reflect",
        mask_domain: str | MaskDomain = "none",
        logvar_channels: int = 0,
    ):
        super().__init__()
        for attr in ("in_channels", "out_channels", "stride"):
            if not hasattr(backbone, attr):
                raise TypeError(f"EDMPrecond: backbone {type(backbone).__name__} has no attribute {attr!r}")
        if image_channels < 1 or mask_channels < 0:
            raise ValueError(f"EDMPrecond: need image_channels >= 1 and mask_channels >= 0, "
                             f"got {image_channels}, {mask_channels}")
        if not (sigma_data > 0 and 0 <= sigma_min < sigma_max and math.isfinite(sigma_max)):
            raise ValueError(f"EDMPrecond: need sigma_data > 0 and 0 <= sigma_min < sigma_max < inf, got "
                             f"{sigma_data}, {sigma_min}, {sigma_max}")
        if pad_mode not in ("reflect", "zeros", "replicate"):
            raise ValueError(f"EDMPrecond: pad_mode must be 'reflect', 'zeros' or 'replicate', got {pad_mode!r}")
        try:
            domain = resolve_mask_domain(mask_domain)
        except ValueError as err:
            raise ValueError(f"EDMPrecond: {err}") from None
        allowed = domain.channel_counts(image_channels)
        if allowed is not None and mask_channels not in allowed:
            counts = " or ".join(map(str, sorted(set(allowed))))
            raise ValueError(
                f"EDMPrecond: mask_domain={domain.name!r} needs {counts} mask channel(s), got {mask_channels}"
            )
        real_ch = image_channels * (2 if is_complex else 1)
        if backbone.in_channels != real_ch + mask_channels or backbone.out_channels != real_ch:
            raise ValueError(
                f"EDMPrecond: backbone has in/out channels {backbone.in_channels}/{backbone.out_channels}, "
                f"expected {real_ch + mask_channels}/{real_ch} for {image_channels} "
                f"{'complex' if is_complex else 'real'} image channel(s) and {mask_channels} mask channel(s)"
            )
        self.backbone = backbone
        self.image_channels = int(image_channels)
        self.is_complex = bool(is_complex)
        self.mask_channels = int(mask_channels)
        self.sigma_data = float(sigma_data)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.pad_mode = pad_mode
        self.domain = domain
        self.stride = int(backbone.stride)
        # EDM2's learned per-σ uncertainty u(σ) (training only; Karras et al. 2024, Sec. 5)
        self.logvar_channels = int(logvar_channels)
        if self.logvar_channels < 0 or self.logvar_channels % 2:
            raise ValueError(f"EDMPrecond: logvar_channels must be an even number >= 0, got {logvar_channels}")
        if self.logvar_channels:
            from .layers import FourierEmbedding

            self.logvar_fourier = FourierEmbedding(self.logvar_channels, scale=1.0)
            self.logvar_linear = nn.Linear(self.logvar_channels, 1)
            nn.init.zeros_(self.logvar_linear.weight)
            nn.init.zeros_(self.logvar_linear.bias)

    @property
    def mask_domain(self) -> str:
        """The recorded name of :attr:`domain` (``"none"``, ``"pixel"``, ``"kspace"``)."""
        return self.domain.name

    # ---- serialisation ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Plain dict (TOML/JSON friendly) that rebuilds this network with :meth:`from_config`."""
        if not hasattr(self.backbone, "config"):
            raise TypeError(f"EDMPrecond.config: backbone {type(self.backbone).__name__} has no config() method")
        return {
            "image_channels": self.image_channels,
            "is_complex": self.is_complex,
            "mask_channels": self.mask_channels,
            "sigma_data": self.sigma_data,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "pad_mode": self.pad_mode,
            "mask_domain": self.domain.name,
            "logvar_channels": self.logvar_channels,
            "backbone": {"class": _class_path(self.backbone), "config": self.backbone.config()},
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any], backbone_cls: type | None = None) -> EDMPrecond:
        """Rebuild from :meth:`config` (fresh weights; load a state dict afterwards).

        The backbone class is looked up by its recorded ``"module:Name"`` in the allow-list
        :func:`backbone_classes` (our own backbones and those registered with
        :func:`register_backbone`) unless ``backbone_cls`` is given; nothing named in ``cfg``
        is ever imported, so a configuration read from a checkpoint cannot run code.
        """
        cfg = dict(cfg)
        if "pixel_mask" in cfg:  # checkpoints of 2026-11-29 development builds
            cfg.setdefault("mask_domain", "pixel" if cfg.pop("pixel_mask") else "none")
        try:
            bb = cfg.pop("backbone")
            if not isinstance(bb, dict):
                raise TypeError(f"expected a table with 'class' and 'config', got {type(bb).__name__}")
            klass = backbone_cls if backbone_cls is not None else _resolve_backbone(bb["class"])
            bb_cfg = bb["config"]
            if not isinstance(bb_cfg, dict):
                raise TypeError(f"'config' must be a table, got {type(bb_cfg).__name__}")
            backbone = klass.from_config(dict(bb_cfg))
        except (KeyError, TypeError) as err:
            raise ValueError(f"EDMPrecond.from_config: malformed 'backbone' entry: {err}") from err
        return cls(backbone, **cfg)

    # ---- the maths -------------------------------------------------------------------
    def _sigma(self, sigma: float | Tensor, b: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        sigma = torch.as_tensor(sigma, device=device, dtype=dtype)
        if sigma.numel() == 1:
            sigma = sigma.reshape(1).expand(b)
        elif sigma.numel() == b:
            sigma = sigma.reshape(b)
        else:
            raise ValueError(f"EDMPrecond: sigma must be a scalar or have {b} elements, got shape {tuple(sigma.shape)}")
        if not bool(torch.all(torch.isfinite(sigma) & (sigma >= 0))):
            raise ValueError("EDMPrecond: sigma must be finite and >= 0")
        return sigma

    def _mask(self, mask: Tensor | None, x: Tensor) -> Tensor | None:
        if self.mask_channels == 0:
            return None
        if mask is None:
            raise ValueError(
                f"EDMPrecond: this network was trained with {self.mask_channels} mask channel(s); pass mask= "
                "(e.g. A.mask_channels())"
            )
        if not isinstance(mask, Tensor) or mask.ndim != 4:
            raise ValueError(f"EDMPrecond: mask must be a (B, k, H, W) tensor, got {getattr(mask, 'shape', mask)}")
        if mask.is_complex():
            raise TypeError("EDMPrecond: mask must be real or boolean, got a complex tensor")
        if mask.shape[1] != self.mask_channels or mask.shape[-2:] != x.shape[-2:] or mask.shape[0] not in (
            1,
            x.shape[0],
        ):
            raise ValueError(
                f"EDMPrecond: mask has shape {tuple(mask.shape)}, expected ({x.shape[0]} or 1, "
                f"{self.mask_channels}, {x.shape[-2]}, {x.shape[-1]})"
            )
        return mask.expand(x.shape[0], -1, -1, -1)

    def _pad(self, t: Tensor, ph: int, pw: int, mode: str) -> Tensor:
        if ph == 0 and pw == 0:
            return t
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        if mode == "zeros":
            return F.pad(t, pad)
        if mode == "reflect" and (ph // 2 + ph % 2 >= t.shape[-2] or pw // 2 + pw % 2 >= t.shape[-1]):
            mode = "replicate"
        return F.pad(t, pad, mode=mode)

    def logvar(self, sigma: Tensor) -> Tensor:
        """The learned per-σ log-variance ``u(σ)`` ``(B,)`` used by ``weighting="uncertainty"`` (0 without a head)."""
        sigma = torch.as_tensor(sigma).reshape(-1)
        if not self.logvar_channels:
            return torch.zeros_like(sigma, dtype=torch.float32)
        c_noise = torch.log(sigma.clamp_min(1e-20)) / 4
        return self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1)

    def forward(
        self, x: Tensor, sigma: float | Tensor, mask: Tensor | None = None, return_logvar: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``D(x, σ)``; with ``return_logvar=True`` also the learned ``u(σ)`` ``(B,)`` (training losses)."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise ValueError(f"EDMPrecond: x must be a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x))}")
        if x.shape[1] != self.image_channels:
            raise ValueError(f"EDMPrecond: x has {x.shape[1]} channels, the network expects {self.image_channels}")
        if x.is_complex() != self.is_complex:
            kind = "complex" if self.is_complex else "real"
            raise TypeError(f"EDMPrecond: this network takes {kind} images, got dtype {x.dtype}")
        if not (x.is_complex() or x.is_floating_point()):
            raise TypeError(f"EDMPrecond: x must be float or complex, got {x.dtype}")
        b, _, h, w = x.shape
        xr = _to_real_channels(x) if self.is_complex else x
        sig = self._sigma(sigma, b, x.device, xr.dtype)
        m = self._mask(mask, x)
        c_skip, c_out, c_in, c_noise = edm_coefficients(sig, self.sigma_data)
        c4 = lambda c: c.reshape(-1, 1, 1, 1)  # noqa: E731

        p = next(self.backbone.parameters(), None)
        wdtype = p.dtype if p is not None else xr.dtype
        inp = (c4(c_in) * xr).to(wdtype)
        ph, pw = (-h) % self.stride, (-w) % self.stride
        inp = self._pad(inp, ph, pw, self.pad_mode)
        if m is not None:
            inp = torch.cat([inp, self._pad(m.to(wdtype), ph, pw, "zeros")], dim=1)
        f = self.backbone(inp, c_noise.to(wdtype))
        f = f[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w].to(xr.dtype)
        if m is not None and self.domain.active and self.domain.transform is None:
            # unobserved pixels: the σ → ∞ limit (c_skip = 0, c_out = σ_d); module docstring
            mr = m.to(xr.dtype)
            if self.is_complex and mr.shape[1] > 1:
                mr = mr.repeat_interleave(2, dim=1)
            d = mr * (c4(c_skip) * xr + c4(c_out) * f) + (1.0 - mr) * self.sigma_data * f
        elif m is not None and self.domain.active:
            # unobserved transform-domain (k-space) locations: the σ → ∞ limit of c_out, applied there
            fc = _from_real_channels(f) if self.is_complex else f.to(torch.promote_types(f.dtype, torch.complex64))
            scale = m.to(xr.dtype) * c4(c_out) + (1.0 - m.to(xr.dtype)) * self.sigma_data
            g = self.domain.inverse(scale * self.domain.transform(fc))
            g = _to_real_channels(g) if self.is_complex else g.real
            d = c4(c_skip) * xr + g
        else:
            d = c4(c_skip) * xr + c4(c_out) * f
        out = _from_real_channels(d) if self.is_complex else d
        if return_logvar:
            return out, self.logvar(sig)
        return out
