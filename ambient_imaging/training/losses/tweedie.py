"""Noisy data at known σ_n: the ambient Tweedie loss (σ > σ_n) and the consistency loss (σ < σ_n).

Daras, Dimakis, Daskalakis, "Consistent Diffusion Meets Tweedie", ICML 2024 (arXiv 2404.10177).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from ambient_imaging.datasets.batch import MeasurementBatch

from ..sigma import LogNormalSigma, edm_weight
from .base import (
    Loss,
    LossOutput,
    NoiseGate,
    b4,
    check_sigma_data,
    check_sigma_dist,
    config_sigma_data,
    dof,
    noise_level,
    randn_image,
    real_dtype,
    register_loss,
    require_image_domain,
    sq,
)

__all__ = ["AmbientTweedieLoss", "ConsistencyLoss"]


class ConsistencyLoss(Loss):
    r"""Consistency loss for σ < σ_n (Daras, Dimakis, Daskalakis, ICML 2024, arXiv 2404.10177).

    The ideal denoiser is a martingale along the reverse process:
    ``D(x_t, σ_t) = E[D(x_s, σ_s) | x_t]`` for σ_s < σ_t. Only σ ≥ σ_n can be learned from the
    data (Tweedie); this loss propagates that knowledge below σ_n. Per sample:

    1. σ_t ~ log-normal | σ_t > σ_n, ``x_t = y + √(σ_t² − σ_n²) η`` (a sample at level σ_t);
       σ_s ~ log-normal | ``sigma_floor`` < σ_s < σ_n.
    2. Two independent stochastic (DDPM-ancestral, VE) chains of ``n_steps`` steps from
       (x_t, σ_t) to σ_s with the current network, without gradient:
       ``x ← D + (σ'²/σ²)(x − D) + σ' √(1 − σ'²/σ²) z`` on a geometric σ grid.
    3. Unbiased product estimator of ``‖D(x_t, σ_t) − E[D(x_s, σ_s)]‖²``::

           L = λ(σ_t) ⟨D_t − D_s¹, D_t − D_s²⟩ / dof

       with gradients through D_s¹, D_s² and D_t (as in the authors' code; ``detach_high=True``
       stops the gradient into D_t, which the Tweedie loss already trains). It can be negative for
       a single sample; its expectation is the squared consistency error.

    Image-space measurements only (as :class:`AmbientTweedieLoss`; masked pixels are restricted).
    Optional in training; it costs ``n_steps + 2`` extra network evaluations per sample.
    """

    def __init__(
        self,
        sigma_n: float | None,
        n_steps: int = 4,
        sigma_floor: float = 0.002,
        detach_high: bool = False,
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
    ):
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) > 0):
            raise ValueError(f"ConsistencyLoss: sigma_n must be > 0, got {sigma_n}")
        if int(n_steps) < 1:
            raise ValueError(f"ConsistencyLoss: n_steps must be >= 1, got {n_steps}")
        if not float(sigma_floor) > 0 or (sigma_n is not None and float(sigma_floor) >= float(sigma_n)):
            raise ValueError(f"ConsistencyLoss: need 0 < sigma_floor < sigma_n, got {sigma_floor}")
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.n_steps = int(n_steps)
        self.sigma_floor = float(sigma_floor)
        self.detach_high = bool(detach_high)
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)

    name = "consistency"

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The consistency loss of one batch (σ in the record: the upper level σ_t)."""
        y, op = batch.y, batch.op
        require_image_domain(op, "ConsistencyLoss")
        b = y.shape[0]
        sigma_n = noise_level(self.sigma_n, op, b, y)
        rdt = real_dtype(y)
        kw = dict(generator=generator, device=y.device, dtype=rdt)
        sig_t = self.sigma_dist.sample_truncated(b, lower=sigma_n, **kw)
        sig_s = self.sigma_dist.sample_truncated(b, lower=self.sigma_floor, upper=sigma_n, **kw)
        sn = torch.as_tensor(sigma_n, device=y.device, dtype=rdt).reshape(-1).expand(b)
        x_t = op.restrict(y + b4(torch.sqrt((sig_t**2 - sn**2).clamp_min(0)), y.ndim) * randn_image(y, generator))
        mask = op.mask_channels()
        d_t = net(x_t, sig_t, mask=mask)

        mask2 = None if mask is None else torch.cat([mask.expand(b, *mask.shape[1:])] * 2)
        with torch.no_grad():
            x = torch.cat([x_t, x_t])
            ratio = (sig_s / sig_t) ** (1.0 / self.n_steps)
            cur = torch.cat([sig_t, sig_t])
            for _ in range(self.n_steps):
                nxt = cur * torch.cat([ratio, ratio])
                d = net(x, cur, mask=mask2)
                c = b4(nxt**2 / cur**2, x.ndim)
                x = d + c * (x - d) + b4(nxt, x.ndim) * torch.sqrt((1 - c).clamp_min(0)) * randn_image(x, generator)
                x = op.restrict(x) if op.batch_size == 1 else torch.cat([op.restrict(x[:b]), op.restrict(x[b:])])
                cur = nxt
        d_s = net(x, torch.cat([sig_s, sig_s]), mask=mask2)
        d1, d2 = d_s[:b], d_s[b:]
        hi = d_t.detach() if self.detach_high else d_t
        e1, e2 = op.restrict(hi - d1), op.restrict(hi - d2)
        prod = (torch.conj(e1) * e2).real if e1.is_complex() else e1 * e2
        prod = prod.reshape(b, -1).sum(dim=1)
        n = dof(op.restrict(torch.ones_like(y))).clamp_min(1)
        loss = edm_weight(sig_t, self.sigma_data) * prod / n
        return LossOutput(loss, sig_t.detach())


@register_loss
class AmbientTweedieLoss(Loss):
    r"""Ambient Tweedie loss for noisy data at known σ_n, trained only at σ > σ_n.

    Daras, Dimakis, Daskalakis, "Consistent Diffusion Meets Tweedie", ICML 2024 (arXiv 2404.10177);
    Daras et al., "How much is a noisy image worth?" (arXiv 2411.02780). With ``y = x + σ_n ε``::

        x_t = y + √(σ² − σ_n²) η                      (a sample of x + σ η)
        L = w(σ) ‖(1 − σ_n²/σ²) D(x_t, σ) + (σ_n²/σ²) x_t − y‖²

    Tweedie: ``E[y | x_t] = (1 − σ_n²/σ²) E[x | x_t] + (σ_n²/σ²) x_t``, so the minimiser D is
    ``E[x | x_t]`` of the CLEAN distribution. σ is drawn from the log-normal conditioned on
    σ > σ_n (exact truncation by inverse CDF, :meth:`LogNormalSigma.sample_truncated`).

    Weights: ``weight="edm"``: ``w = λ(σ)``; ``weight="tweedie"``: ``w = λ(σ) · min(σ⁴/(σ² − σ_n²)²,
    s_max)``, which undoes the factor ``(1 − σ_n²/σ²)²`` in front of the error of D so that D's error
    is weighted as in EDM (uncapped when ``s_max`` is None; it diverges as σ → σ_n).

    Measurements must be images (GaussianNoise, or PixelMask with noise: then x_t and the loss
    are restricted to the measured pixels and the network sees the mask). ``sigma_n=None`` reads
    σ_n from ``batch.op.noise_sigma`` (float or per-sample ``(B,)``).
    """

    def __init__(
        self,
        sigma_n: float | None,
        s_max: float | None = None,
        weight: str = "edm",
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
        consistency: ConsistencyLoss | None = None,
        consistency_weight: float = 1.0,
    ):
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) >= 0):
            raise ValueError(f"AmbientTweedieLoss: sigma_n must be >= 0, got {sigma_n}")
        if weight not in ("edm", "tweedie"):
            raise ValueError(f"AmbientTweedieLoss: weight must be 'edm' or 'tweedie', got {weight!r}")
        if s_max is not None and not float(s_max) > 0:
            raise ValueError(f"AmbientTweedieLoss: s_max must be > 0, got {s_max}")
        if consistency is not None and not isinstance(consistency, ConsistencyLoss):
            raise TypeError("AmbientTweedieLoss: consistency must be a ConsistencyLoss or None")
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.s_max = None if s_max is None else float(s_max)
        self.weight = weight
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)
        self.consistency = consistency
        self.consistency_weight = float(consistency_weight)
        self.gate: NoiseGate | None = None

    name = "tweedie"

    @classmethod
    def from_config(cls, cfg: Any, noise_sigma: float = 0.0, mask_channels: int = 0,
                    family: Any = None) -> AmbientTweedieLoss:
        """The Tweedie loss at the data's σ_n; it keeps EDM's weight (it is trained at σ > σ_n only)."""
        return cls(sigma_n=noise_sigma, sigma_data=config_sigma_data(cfg))

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        return "the tweedie loss needs noisy data: set noise_sigma (σ_n) > 0" if cfg.noise_sigma <= 0 else None

    @classmethod
    def weighting_of(cls, cfg: Any) -> str:
        return "edm"

    @classmethod
    def sigma_min(cls, sigma_min: float, noise_sigma: float, noise_sigma_image_max: float) -> float:
        """The Tweedie prior is only trained for σ ≥ σ_n."""
        return max(float(sigma_min), float(noise_sigma))

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The Tweedie loss of one batch (plus the consistency term when configured)."""
        y, op = batch.y, batch.op
        require_image_domain(op, "AmbientTweedieLoss")
        b = y.shape[0]
        sigma_n = noise_level(self.sigma_n, op, b, y)
        active = None
        if self.gate is None:
            sigma = self.sigma_dist.sample_truncated(
                b, lower=sigma_n, generator=generator, device=y.device, dtype=real_dtype(y)
            )
        else:
            sn0 = torch.as_tensor(sigma_n, device=y.device, dtype=real_dtype(y)).reshape(-1).expand(b)
            sigma, active = self.gate.draw(self.sigma_dist, sn0, generator)
        sn = torch.as_tensor(sigma_n, device=y.device, dtype=sigma.dtype).reshape(-1).expand(b)
        extra = torch.sqrt((sigma**2 - sn**2).clamp_min(0))
        x_t = op.restrict(y + b4(extra, y.ndim) * randn_image(y, generator))
        mask = op.mask_channels()
        d = net(x_t, sigma, mask=mask)
        a = b4(sn**2 / sigma**2, y.ndim)
        r = op.restrict((1 - a) * d + a * x_t - y)
        per = sq(r) / dof(op.restrict(torch.ones_like(y))).clamp_min(1)
        w = edm_weight(sigma, self.sigma_data)
        if self.weight == "tweedie":
            boost = sigma**4 / (sigma**2 - sn**2).clamp_min(torch.finfo(sigma.dtype).tiny) ** 2
            if self.s_max is not None:
                boost = boost.clamp_max(self.s_max)
            w = w * boost
        loss = w * per.to(w.dtype)
        if active is not None:  # below the crossing point: the sample does not train at this σ
            loss = loss * active.to(loss.dtype)
        weighted = loss.detach()
        if self.consistency is not None and self.consistency_weight > 0:
            loss = loss + self.consistency_weight * self.consistency(net, batch, generator)
        return LossOutput(loss, sigma.detach(), weighted, active)

    def gated(self, gate: NoiseGate) -> AmbientTweedieLoss:
        """A copy that draws σ from the full distribution and trains each sample only above its
        crossing point (:class:`~.base.NoiseGate`), instead of drawing σ > σ_n."""
        new = copy.copy(self)
        new.gate = gate
        return new
