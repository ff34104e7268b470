"""Training noise levels: the EDM log-normal distribution and loss weight (Karras et al. 2022, Sec. 5).

``ln σ ~ N(P_mean, P_std²)`` with ``P_mean = -1.2``, ``P_std = 1.2``;
weight ``λ(σ) = (σ² + σ_d²) / (σ σ_d)²`` makes the effective target of the
raw network unit-variance at every σ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LogNormalSigma", "edm_weight", "sample_sigma"]


def edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM loss weight ``λ(σ) = (σ² + σ_d²) / (σ σ_d)²``."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


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
