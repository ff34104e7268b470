"""Training noise levels: the EDM log-normal distribution, loss weights and σ bands for diagnostics.

``ln σ ~ N(P_mean, P_std²)`` with ``P_mean = -1.2``, ``P_std = 1.2`` (Karras et al. 2022, Sec. 5);
weight ``λ(σ) = (σ² + σ_d²) / (σ σ_d)²`` makes the effective target of the
raw network unit-variance at every σ — when the error the network cannot remove
vanishes as σ → 0 (clean data). With measurement noise or ambient (held-out) scoring an
irreducible error stays at σ → 0; :func:`floor_weight` caps the weight there, and the
losses' ``weighting="uncertainty"`` learns the per-σ normalisation (Karras et al. 2024, EDM2).
:func:`sigma_bands` / :func:`band_index` define the log-spaced σ bands that the trainer's
per-band diagnostics (``metrics.csv``) use.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "LogNormalSigma",
    "edm_weight",
    "floor_weight",
    "sample_sigma",
    "sigma_bands",
    "band_index",
    "band_labels",
    "WEIGHTINGS",
]

#: per-σ weightings understood by the losses (see ``docs/losses.md``)
WEIGHTINGS = ("edm", "floor", "uncertainty")


def edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM loss weight ``λ(σ) = (σ² + σ_d²) / (σ σ_d)²``."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def floor_weight(sigma: Tensor, sigma_data: float = 0.5, sigma_floor: float | Tensor = 0.0) -> Tensor:
    """EDM weight with a noise floor: ``λ(σ) = (σ² + σ_d²) / ((σ² + σ_f²) σ_d²)``.

    Equals :func:`edm_weight` for ``σ_f = 0``; for ``σ ≪ σ_f`` it stays at ``(σ_f² + σ_d²)/(σ_f σ_d)²``
    instead of growing like ``1/σ²``: the right weight when the error that training cannot remove
    does not vanish as σ → 0 (measurement noise σ_f, or the posterior variance of held-out rows).
    ``sigma_floor`` may be a float or a per-sample ``(B,)`` tensor.
    """
    sf = torch.as_tensor(sigma_floor, device=sigma.device, dtype=sigma.dtype)
    return (sigma**2 + sigma_data**2) / ((sigma**2 + sf**2) * sigma_data**2)


def sigma_bands(n: int = 6, lo: float = 0.002, hi: float = 80.0) -> list[float]:
    """``n + 1`` log-spaced band edges from ``lo`` to ``hi`` (the EDM sampling range by default)."""
    if n < 1 or not 0 < lo < hi:
        raise ValueError(f"sigma_bands: need n >= 1 and 0 < lo < hi, got {n}, {lo}, {hi}")
    return [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / n) for i in range(n + 1)]


def band_index(sigma: Tensor, edges: list[float]) -> Tensor:
    """Band of each σ (``(B,)`` long in ``0 .. len(edges) - 2``); values outside go to the first/last band."""
    inner = torch.as_tensor(edges[1:-1], dtype=torch.float64)
    return torch.bucketize(sigma.detach().double().cpu().reshape(-1), inner, right=True)


def band_labels(edges: list[float]) -> list[str]:
    """Short column labels ``s<lower edge>`` for the bands (e.g. ``s0.002``, ``s0.0117``)."""
    return [f"s{e:.3g}" for e in edges[:-1]]


class LogNormalSigma:
    """``σ = exp(P_mean + P_std z)``, ``z ~ N(0, 1)``, optionally truncated to ``σ > lower`` or ``σ < upper``.

    Truncation is exact (inverse-CDF sampling of the truncated normal in ``ln σ``),
    not clamping, so no probability mass piles up at the bound.
    """

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2):
        if not (math.isfinite(p_mean) and p_std > 0 and math.isfinite(p_std)):
            raise ValueError(f"LogNormalSigma: need finite p_mean and p_std > 0, got {p_mean}, {p_std}")
        self.p_mean = float(p_mean)
        self.p_std = float(p_std)

    def __repr__(self) -> str:
        return f"LogNormalSigma(p_mean={self.p_mean}, p_std={self.p_std})"

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` independent noise levels, shape ``(n,)``."""
        z = torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        return torch.exp(self.p_mean + self.p_std * z).to(dtype)

    def sample_truncated(
        self,
        n: int,
        lower: float | Tensor | None = None,
        upper: float | Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``n`` noise levels from the log-normal conditioned on ``lower < σ < upper``.

        ``lower``/``upper`` are floats or ``(n,)`` tensors (per-sample bounds);
        ``None`` or ``0``/``inf`` means unbounded. Inverse CDF:
        ``z = Φ⁻¹(Φ(a) + u (Φ(b) − Φ(a)))``, ``u ~ U(0, 1)``.
        """
        kw = dict(device=device, dtype=torch.float64)

        def _std(bound: float | Tensor | None, default: float) -> Tensor:
            if bound is None:
                return torch.full((n,), default, **kw)
            t = torch.as_tensor(bound, **kw).reshape(-1).expand(n)
            if bool(torch.any(t < 0)):
                raise ValueError("LogNormalSigma.sample_truncated: bounds must be >= 0")
            return (torch.log(t) - self.p_mean) / self.p_std  # log(0) = -inf is fine

        a, b = _std(lower, -math.inf), _std(upper, math.inf)
        if bool(torch.any(a >= b)):
            raise ValueError("LogNormalSigma.sample_truncated: need lower < upper")
        cdf_a, cdf_b = torch.special.ndtr(a), torch.special.ndtr(b)
        u = torch.rand(n, generator=generator, **kw)
        p = (cdf_a + u * (cdf_b - cdf_a)).clamp(1e-300, 1 - 1e-16)
        z = torch.special.ndtri(p)
        # guard the tails against round-off: stay strictly inside (a, b)
        z = torch.maximum(torch.minimum(z, b), a)
        sigma = torch.exp(self.p_mean + self.p_std * z).to(dtype)
        if lower is not None:  # strictly above the bound in the output precision
            lo = torch.as_tensor(lower, device=device, dtype=torch.float64).reshape(-1).expand(n).to(dtype)
            sigma = torch.where(sigma > lo, sigma, torch.nextafter(lo, torch.full_like(lo, math.inf)))
        return sigma


def sample_sigma(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    p_mean: float = -1.2,
    p_std: float = 1.2,
) -> Tensor:
    """EDM log-normal noise levels ``(n,)`` (shorthand for ``LogNormalSigma(p_mean, p_std).sample``)."""
    return LogNormalSigma(p_mean, p_std).sample(n, generator, device)
