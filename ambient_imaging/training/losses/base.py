"""What every loss shares: the record it returns, the base class, the registry and small helpers.

A loss is an object with ``evaluate(net, batch, generator=None) -> LossOutput``; calling it
(``loss(net, batch, generator)``) returns the per-sample loss ``(B,)`` alone. The trainer
averages ``LossOutput.per_sample`` and reads the per-σ-band diagnostics from the same record
(``sigma``, ``weighted``), so nothing travels through attributes of the loss.

:data:`LOSSES` maps a configured loss name (``TrainConfig.loss``) to its class; each class
builds itself from a config with :meth:`Loss.from_config` and answers the questions the
trainer asks (does it need clean references, which σ range does it train, ...).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.operators import LinearOperator

from ..sigma import LogNormalSigma, floor_weight

__all__ = ["LossOutput", "Loss", "LOSSES", "NoiseGate", "register_loss", "loss_class", "image_noise_sigma"]


# =========================================================================== the record
@dataclass
class LossOutput:
    """What one evaluation of a loss returns (all ``(B,)``, in the batch order).

    Attributes:
        per_sample: the loss to average (weighted; with a learned uncertainty ``λ L / e^u + u``).
        sigma: the diffusion noise level each sample was trained at (``None``: no σ, e.g. a
            custom loss); the trainer's per-σ-band columns need it.
        weighted: ``λ(σ) · error`` before a learned uncertainty (detached), the value the per-band
            loss columns report (``None``: ``per_sample`` is that value).
        active: boolean, the samples that trained at their σ (``None``: all). A sample gated out
            (:class:`NoiseGate`: σ below its crossing point) has loss 0 and is left out of the bands.
    """

    per_sample: Tensor
    sigma: Tensor | None = None
    weighted: Tensor | None = None
    active: Tensor | None = None

    def band_values(self) -> Tensor:
        """The per-sample values the per-σ-band loss columns average (detached)."""
        return (self.weighted if self.weighted is not None else self.per_sample).detach()

    @staticmethod
    def merge(parts: list[tuple[list[int], LossOutput]], b: int) -> LossOutput:
        """One record for a batch of ``b`` from records of index subsets (:class:`MixtureLoss`)."""
        ref = parts[0][1].per_sample
        fields: dict[str, Tensor | None] = {}
        if any(out.active is not None for _, out in parts):
            act = torch.ones(b, dtype=torch.bool, device=ref.device)
            for idx, out in parts:
                if out.active is not None:
                    act[torch.tensor(idx, device=ref.device)] = out.active.to(ref.device)
            fields["active"] = act
        for name in ("per_sample", "sigma", "weighted"):
            vals = [(idx, getattr(out, name)) for idx, out in parts]
            if name != "per_sample" and any(v is None for _, v in vals):
                # a part without this field: fall back to the per-sample loss (weighted) or drop it (sigma)
                if name == "weighted":
                    vals = [(idx, out.band_values()) for idx, out in parts]
                else:
                    fields[name] = None
                    continue
            dtype = functools.reduce(torch.promote_types, [v.dtype for _, v in vals])
            full = torch.zeros(b, dtype=dtype, device=ref.device)
            for idx, v in vals:
                full = full.index_copy(0, torch.tensor(idx, device=ref.device), v.to(dtype).reshape(-1))
            fields[name] = full
        return LossOutput(fields["per_sample"], fields["sigma"], fields["weighted"],  # type: ignore[arg-type]
                          fields.get("active"))


# =========================================================================== noise-level gating
@dataclass(frozen=True)
class NoiseGate:
    """Ambient Omni's gate (Daras et al., NeurIPS 2025): a sample whose data carry noise σ_n trains
    only at diffusion levels σ at or above its crossing point ``factor · σ_n``.

    For additive Gaussian noise of known σ_n the noised distributions of clean and noisy data
    coincide from σ = σ_n on (``y + √(σ² − σ_n²) η`` is distributed as ``x + σ η``), so
    ``factor = 1`` (default) is the exact crossing point; a larger factor is more cautious (e.g. for
    an uncertain σ_n). σ is drawn from the loss's full distribution, the same for every sample,
    and a noisy sample below its crossing point contributes nothing; clean samples (σ_n = 0)
    train at every σ.
    """

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 1.0):
            raise ValueError(f"NoiseGate: factor must be >= 1 (the crossing point is at least σ_n), got {self.factor}")

    def draw(self, dist: LogNormalSigma, sigma_n: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """σ for each sample from ``dist`` and the mask of samples at or above their crossing point.

        Gated-out samples get a stand-in σ above their σ_n (finite arithmetic; their loss is zeroed).
        """
        sigma = dist.sample(sigma_n.shape[0], generator=generator, device=sigma_n.device, dtype=sigma_n.dtype)
        cross = self.factor * sigma_n
        active = sigma >= cross
        return torch.where(active, sigma, 2.0 * cross.clamp_min(torch.finfo(sigma.dtype).tiny)), active


# =========================================================================== base class + registry
#: configured loss name -> class (:func:`register_loss`)
LOSSES: dict[str, type[Loss]] = {}


def register_loss(cls: type[Loss]) -> type[Loss]:
    """Class decorator: make ``cls`` buildable as ``LOSSES[cls.name].from_config(...)``."""
    LOSSES[cls.name] = cls
    return cls


def loss_class(name: str) -> type[Loss]:
    """The registered class for a configured loss name (clear error for unknown names)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


class Loss:
    """Base class of the training losses (``evaluate`` returns a :class:`LossOutput`).

    Class attributes answer what the trainer would otherwise test a name for:

    * ``name``: the configured name (:data:`LOSSES` key);
    * ``needs_reference``: the loss reads clean images (``batch.reference``); the trainer
      drops them for every other loss, so no other loss can peek at them;
    * ``subsamples``: it draws a further-corrupted ``Ã`` (records δ with the prior).
    """

    name: ClassVar[str] = ""
    needs_reference: ClassVar[bool] = False
    subsamples: ClassVar[bool] = False

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The per-sample loss and its diagnostics for one batch."""
        raise NotImplementedError

    def __call__(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> Tensor:
        """The per-sample loss ``(B,)`` (``evaluate(...).per_sample``)."""
        return self.evaluate(net, batch, generator).per_sample

    # ---- building from a run configuration ------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, noise_sigma: float = 0.0, mask_channels: int = 0, family: Any = None) -> Loss:
        """The loss a :class:`~ambient_imaging.training.TrainConfig` asks for.

        ``noise_sigma``: the data's measurement noise (training scale); ``mask_channels``: what the
        network takes; ``family``: the data's :class:`~ambient_imaging.training.families.Family`.
        """
        raise NotImplementedError

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        """A message when ``cfg`` cannot train with this loss (``None``: fine)."""
        return None

    @classmethod
    def learns_uncertainty(cls, cfg: Any) -> bool:
        """The network needs EDM2's learned per-σ uncertainty head for this loss and config."""
        return False

    @classmethod
    def weighting_of(cls, cfg: Any) -> str:
        """The per-σ weighting this loss trains with (recorded with the prior)."""
        return str(cfg.weighting)

    @classmethod
    def scoring(cls, cfg: Any, noisy: bool) -> str:
        """Which measured rows are scored (recorded with the prior; ``"n/a"``: not a row-scoring loss)."""
        return "n/a"

    @classmethod
    def sigma_min(cls, sigma_min: float, noise_sigma: float, noise_sigma_image_max: float) -> float:
        """The smallest σ the trained prior is valid at (samplers stop there)."""
        return float(sigma_min)


# =========================================================================== helpers
def config_sigma_data(cfg: Any) -> float:
    """The configured σ_data, or EDM's 0.5 when it is still unset (``train`` estimates it first)."""
    return float(cfg.sigma_data) if cfg.sigma_data is not None else 0.5


def real_dtype(t: Tensor) -> torch.dtype:
    """The real dtype of ``t``'s precision."""
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(t.dtype, t.dtype)


def randn_image(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``like``; complex: N(0, 1) in real AND imaginary part."""
    rdt = real_dtype(like)
    if like.is_complex():
        re = torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)
        im = torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)
        return torch.complex(re, im)
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=rdt)


def sq(r: Tensor) -> Tensor:
    """Per-sample sum of squared magnitudes (B,)."""
    a = r.abs() ** 2 if r.is_complex() else r**2
    return a.reshape(a.shape[0], -1).sum(dim=1)


def dof(support: Tensor) -> Tensor:
    """Per-sample number of real degrees of freedom where ``support`` is non-zero (B,)."""
    nz = (support != 0).reshape(support.shape[0], -1).sum(dim=1)
    return nz * (2 if support.is_complex() else 1)


def b4(t: Tensor, ndim: int) -> Tensor:
    """``t`` with trailing singleton dims up to ``ndim``."""
    return t.reshape(t.shape + (1,) * (ndim - t.ndim))


def check_sigma_dist(sigma_dist: Any) -> LogNormalSigma:
    """The σ distribution (default log-normal), checked for ``sample``."""
    if sigma_dist is None:
        return LogNormalSigma()
    if not hasattr(sigma_dist, "sample"):
        raise TypeError(f"sigma_dist must provide sample(n, generator, device), got {type(sigma_dist).__name__}")
    return sigma_dist


def check_sigma_data(sigma_data: float) -> float:
    """σ_d, checked positive and finite."""
    if not (math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
    return float(sigma_data)


def sample_sigma(dist: LogNormalSigma, b: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``b`` noise levels in ``like``'s real precision and device."""
    return dist.sample(b, generator=generator, device=like.device, dtype=real_dtype(like))


def require_image_domain(op: LinearOperator, who: str) -> None:
    """Raise unless the operator's measurements are images of ``x`` (``op.image_domain``)."""
    if not op.image_domain:
        raise TypeError(
            f"{who} needs measurements in image space (PixelMask / GaussianNoise and compositions), "
            f"got {type(op).__name__}; use AmbientLoss(heldout=True) for Fourier-domain operators"
        )


def noise_level(sigma_n: float | None, op: LinearOperator, b: int, like: Tensor) -> float | Tensor:
    """``sigma_n``, or the operator's noise std as a float or a ``(B,)`` tensor."""
    if sigma_n is not None:
        return sigma_n
    s = op.noise_sigma
    if isinstance(s, Tensor):
        if s.numel() == 1:
            return float(s)
        if s.numel() != b:
            raise ValueError(f"operator noise_sigma has shape {tuple(s.shape)}; need a float or a ({b},) tensor")
        return s.reshape(b).to(device=like.device, dtype=real_dtype(like))
    return float(s)


def image_noise_sigma(op: LinearOperator, y: Tensor, x: Tensor) -> float | Tensor:
    """Measurement noise in the diffusion convention (std per real image channel), ``0`` if unknown.

    ``op.noise_sigma`` follows the operator contract (complex noise: ``E|ε|² = σ_n²``). For
    orthonormal operators whose measurements and images are both real (pixel masks, Gaussian
    noise) the image-domain std per real channel is ``σ_n``; both complex (Cartesian MRI with
    orthonormal FFT and normalised coil maps): ``σ_n/√2``. Other pairs (real images from complex
    visibilities) have no such simple relation: ``0`` is returned (noise not accounted for).
    """
    s = noise_level(None, op, y.shape[0], y)
    if y.is_complex() != x.is_complex():
        return 0.0
    f = 1.0 / math.sqrt(2.0) if y.is_complex() else 1.0
    return s * f if isinstance(s, Tensor) else float(s) * f


def weighted_output(per: Tensor, sigma: Tensor, sigma_data: float, weighting: str, sigma_floor: float | None,
                    sigma_n: Tensor | float, logvar: Tensor | None) -> LossOutput:
    """``λ(σ) · per`` for the weighting (``"uncertainty"``: ``λ per / e^u + u``) as a record.

    ``weighted`` is ``λ(σ) · per`` (detached, before the learned uncertainty): the trainer's
    per-σ-band loss columns.
    """
    floor: float | Tensor = 0.0
    if weighting in ("floor", "uncertainty"):
        floor = sigma_floor if sigma_floor is not None else (sigma_n if weighting == "floor" else 0.0)
    w = floor_weight(sigma, sigma_data, floor)
    weighted = (w * per).detach()
    if logvar is None:
        return LossOutput(w * per, sigma.detach(), weighted)
    lv = logvar.reshape(-1).to(per.dtype)
    return LossOutput(w * per * torch.exp(-lv) + lv, sigma.detach(), weighted)


def mask_for(op: LinearOperator, mode: str, x: Tensor, net: Any = None) -> Tensor | None:
    """The mask channels given to ``net`` for a batch ``x`` (``mode``: none / ones / operator).

    ``"ones"`` with an operator that has no mask channels (e.g. the identity of a clean
    evaluation view) builds all-ones channels of the count the network expects.
    """
    if mode == "none":
        return None
    b = x.shape[0]
    m = op.mask_channels()
    if m is None:
        k = int(getattr(getattr(net, "module", net), "mask_channels", 0) or 0)
        if mode != "ones" or k == 0:
            return None
        dtype = x.real.dtype if x.is_complex() else x.dtype
        return torch.ones(b, k, *x.shape[-2:], device=x.device, dtype=dtype)
    m = m.expand(b, *m.shape[1:]) if m.shape[0] == 1 else m
    return torch.ones_like(m) if mode == "ones" else m


def check_mask_mode(mode: str, allowed: tuple[str, ...]) -> str:
    """``mode`` if allowed, else a clear ``ValueError``."""
    if mode not in allowed:
        raise ValueError(f"mask must be one of {allowed}, got {mode!r}")
    return mode
