"""Confidence intervals for study figures: proportions (Wilson score), bootstrap, seed spread.

* :func:`wilson_interval` — the 95 % interval of a proportion ``k / n`` (Wilson 1927). Used for
  "fraction of samples above 0.90 similarity": unlike the percentile bootstrap it does not
  collapse to ``[0, 0]`` when no sample is above the threshold (with ``k = 0`` its upper bound
  is about ``3.84 / (n + 3.84)``), and it covers its nominal level for every ``p``.
* :func:`bootstrap_interval` — the percentile bootstrap of any statistic of per-sample values,
  optionally *stratified*: samples are resampled within their stratum (one trained prior per
  training seed), so the interval is over the samples of the priors at hand.
* :func:`seed_spread` — how much a figure moves from one training seed to the next (the part
  of the uncertainty a bootstrap over samples cannot see).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "wilson_interval", "bootstrap_interval", "seed_spread", "Z95"]

#: the two-sided 95 % standard-normal quantile
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval ``[low, high]`` at ``level`` (e.g. 0.95)."""

    value: float
    low: float
    high: float
    level: float = 0.95

    def contains(self, x: float) -> bool:
        """``low <= x <= high``."""
        return self.low <= x <= self.high

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share any point."""
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, float]:
        """``{"value", "ci_low", "ci_high"}`` (JSON friendly)."""
        return {"value": float(self.value), "ci_low": float(self.low), "ci_high": float(self.high)}


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    if abs(level - 0.95) < 1e-12:
        return Z95
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval of the proportion ``successes / n``."""
    if n < 1:
        raise ValueError(f"wilson_interval: n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes must be in [0, n={n}], got {successes}")
    z = _z(level)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, level)


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    strata: Sequence[int] | np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of ``statistic`` over per-sample ``values``.

    Args:
        values: ``(N,)`` per-sample values (e.g. nearest/second-nearest ratios).
        statistic: maps a ``(B, N)`` array of resampled values to ``(B,)`` statistics
            (default: the mean over the last axis). Also applied to ``values[None]`` for the estimate.
        strata: ``(N,)`` labels (e.g. the training seed of each sample); resampling is done
            within each stratum, keeping its size.
        n_boot: bootstrap replicates. seed: the resampling generator (reproducible intervals).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("bootstrap_interval: no values")
    stat = statistic or (lambda a: a.mean(axis=-1))
    _z(level)
    rng = np.random.default_rng(seed)
    labels = np.zeros(v.size, dtype=np.int64) if strata is None else np.asarray(strata).reshape(-1)
    if labels.size != v.size:
        raise ValueError(f"bootstrap_interval: {labels.size} strata labels for {v.size} values")
    idx = np.empty((int(n_boot), v.size), dtype=np.int64)
    col = 0
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        idx[:, col : col + members.size] = members[rng.integers(0, members.size, (int(n_boot), members.size))]
        col += members.size
    reps = np.asarray(stat(v[idx]), dtype=np.float64)
    est = float(np.asarray(stat(v[None]), dtype=np.float64).reshape(-1)[0])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return Interval(est, float(min(lo, est)), float(max(hi, est)), level)


def seed_spread(per_seed: Sequence[float]) -> dict[str, float]:
    """``{"mean", "std", "min", "max"}`` of one figure over training seeds (``std`` with ddof 1; 0 for one seed)."""
    a = np.asarray(per_seed, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("seed_spread: no values")
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": float(a.mean()), "std": std, "min": float(a.min()), "max": float(a.max())}
