"""DDPM++ U-Net backbone (Song et al. 2021, as configured in Karras et al. 2022 / NVlabs ``edm``).

``UNet`` implements the :class:`~ambient_imaging.networks.precond.Backbone`
protocol: ``forward(x (B, Cin, H, W) real, c_noise (B,)) -> (B, Cout, H, W)``
with attributes ``in_channels``, ``out_channels`` and ``stride`` (H and W must
be multiples of ``stride``; :class:`~ambient_imaging.networks.precond.EDMPrecond`
pads to it). It is fully convolutional: the nominal ``img_resolution`` only
decides at which levels attention sits (level ``i`` has resolution
``img_resolution / 2**i``), any input size that is a multiple of ``stride``
works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import FourierEmbedding, PositionalEmbedding, UNetBlock, conv2d, group_norm, linear

__all__ = ["UNet"]


class UNet(nn.Module):
    """DDPM++ U-Net.

    Args:
        in_channels: input channels (image channels, complex counted as 2, plus mask channels).
        out_channels: output channels (image channels, complex counted as 2).
        model_channels: base channel count.
        channel_mult: channel multiplier per level; ``len(channel_mult) - 1`` downsamplings.
        num_blocks: residual blocks per level.
        attn_resolutions: nominal resolutions (see ``img_resolution``) with self-attention.
        img_resolution: nominal training resolution, used only to place attention.
        dropout: dropout probability in the residual blocks.
        channel_mult_emb: noise-embedding width as a multiple of ``model_channels``.
        channels_per_head: attention head width.
        embedding: ``"positional"`` (DDPM++) or ``"fourier"`` (NCSN++) noise embedding.
        gated: use gated convolutions (``conv ⊙ sigmoid(gate)``) inside the residual blocks.
        mid_attention: self-attention in the first decoder block at the lowest resolution (DDPM++
            always has it; at a high lowest resolution, e.g. 32x32 for the 2-level ``tiny`` network at
            64x64, it costs ~20 % of a CPU training step).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 2, 2, 2),
        num_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        img_resolution: int = 64,
        dropout: float = 0.1,
        channel_mult_emb: int = 4,
        channels_per_head: int = 64,
        embedding: str = "positional",
        gated: bool = False,
        mid_attention: bool = True,
    ):
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"UNet: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        if model_channels < 4 or model_channels % 4:
            raise ValueError(f"UNet: model_channels must be a positive multiple of 4, got {model_channels}")
        if len(channel_mult) < 1 or any(int(m) < 1 for m in channel_mult):
            raise ValueError(f"UNet: channel_mult must be a non-empty list of positive ints, got {channel_mult}")
        if num_blocks < 1:
            raise ValueError(f"UNet: num_blocks must be >= 1, got {num_blocks}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNet: dropout must be in [0, 1), got {dropout}")
        if embedding not in ("positional", "fourier"):
            raise ValueError(f"UNet: embedding must be 'positional' or 'fourier', got {embedding!r}")
        self._config: dict[str, Any] = dict(
            in_channels=int(in_channels),
            out_channels=int(out_channels),
            model_channels=int(model_channels),
            channel_mult=[int(m) for m in channel_mult],
            num_blocks=int(num_blocks),
            attn_resolutions=[int(r) for r in attn_resolutions],
            img_resolution=int(img_resolution),
            dropout=float(dropout),
            channel_mult_emb=int(channel_mult_emb),
            channels_per_head=int(channels_per_head),
            embedding=embedding,
            gated=bool(gated),
            mid_attention=bool(mid_attention),
        )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.stride = 2 ** (len(channel_mult) - 1)
        emb_ch = model_channels * channel_mult_emb
        block = dict(emb_channels=emb_ch, dropout=dropout, channels_per_head=channels_per_head, gated=gated)

        self.map_noise = (
            PositionalEmbedding(model_channels) if embedding == "positional" else FourierEmbedding(model_channels)
        )
        self.map_layer0 = linear(model_channels, emb_ch)
        self.map_layer1 = linear(emb_ch, emb_ch)

        # encoder: each entry's output is kept as a skip connection
        self.conv_in = conv2d(in_channels, model_channels, 3)
        self.enc = nn.ModuleList()
        skips = [model_channels]
        cout = model_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level > 0:
                self.enc.append(UNetBlock(cout, cout, down=True, **block))
                skips.append(cout)
            for _ in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc.append(UNetBlock(cin, cout, attention=res in attn_resolutions, **block))
                skips.append(cout)

        # decoder: blocks flagged True concatenate the next skip connection first
        self.dec = nn.ModuleList()
        self._dec_cat: list[bool] = []
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec.append(UNetBlock(cout, cout, attention=bool(mid_attention), **block))
                self.dec.append(UNetBlock(cout, cout, **block))
            else:
                self.dec.append(UNetBlock(cout, cout, up=True, **block))
            self._dec_cat += [False] * (len(self.dec) - len(self._dec_cat))
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                attn = idx == num_blocks and res in attn_resolutions
                self.dec.append(UNetBlock(cin, cout, attention=attn, **block))
                self._dec_cat.append(True)
        self.out_norm = group_norm(cout)
        self.out_conv = conv2d(cout, out_channels, 3, init_scale=1e-5)

    # ---- presets -----------------------------------------------------------------
    @classmethod
    def tiny(cls, in_channels: int, out_channels: int, **kwargs: Any) -> UNet:
        """< 1M parameters: tests, CPU smoke runs and the CPU quickstart. No self-attention: with one
        downsampling the lowest level is half the image (32x32 at 64x64), where the mid-block attention
        cost ~20 % of a CPU training step for -0.08 dB held-out denoising NMSE at equal steps
        (``benchmarks/results/training_bands.md``)."""
        cfg = dict(model_channels=32, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(), dropout=0.0,
                   mid_attention=False)
        return cls(in_channels, out_channels, **{**cfg, **kwargs})

    @classmethod
    def small(cls, in_channels: int, out_channels: int, **kwargs: Any) -> UNet:
        """About 4M parameters: CPU quickstart at 64-128 px (attention at 16 px of a 64 px image)."""
        cfg = dict(
            model_channels=48, channel_mult=(1, 2, 2), num_blocks=2, attn_resolutions=(16,), img_resolution=64,
            dropout=0.1,
        )
        return cls(in_channels, out_channels, **{**cfg, **kwargs})

    @classmethod
    def paper(cls, in_channels: int, out_channels: int, **kwargs: Any) -> UNet:
        """DDPM++ as in EDM / Ambient Diffusion at 64 px (about 50M parameters)."""
        cfg = dict(
            model_channels=128, channel_mult=(1, 2, 2, 2), num_blocks=3, attn_resolutions=(16,), img_resolution=64,
            dropout=0.1,
        )
        return cls(in_channels, out_channels, **{**cfg, **kwargs})

    # ---- serialisation -------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain dict (JSON/TOML friendly)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> UNet:
        """Rebuild from :meth:`config`."""
        return cls(**cfg)

    # ---- forward -------------------------------------------------------------------
    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet: expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % self.stride or x.shape[-1] % self.stride:
            raise ValueError(
                f"UNet: H and W must be multiples of {self.stride}, got {tuple(x.shape[-2:])} (EDMPrecond pads)"
            )
        emb = self.map_noise(c_noise.reshape(-1).expand(x.shape[0]))
        emb = F.silu(self.map_layer0(emb.to(self.map_layer0.weight.dtype)))
        emb = F.silu(self.map_layer1(emb))

        if self.conv_in.weight.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1:
            x = x.contiguous(memory_format=torch.channels_last)  # a channels-last network (Trainer(channels_last))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.enc:
            h = blk(h, emb)
            skips.append(h)
        for blk, cat in zip(self.dec, self._dec_cat):
            if cat:
                h = torch.cat([h, skips.pop()], dim=1)
            h = blk(h, emb)
        return self.out_conv(F.silu(self.out_norm(h)))
