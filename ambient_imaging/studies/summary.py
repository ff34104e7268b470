"""One level's figures over its training seeds, each with a 95 % interval and the seed spread.

* fractions of samples above 0.90 / 0.95 similarity to the nearest training image: pooled over
  the seeds' samples, Wilson score interval (:func:`ambient_imaging.metrics.intervals.wilson_interval`);
* mean similarity and mean nearest/second-nearest ℓ2 ratio: percentile bootstrap over samples,
  stratified by seed;
* quality: KID on random conv features of the pooled samples against the held-out images, with a
  bootstrap interval over both sets (:func:`ambient_imaging.metrics.kid.random_feature_kid`), and the
  held-out denoising error (geometric mean over the study's σ grid; its spread is over seeds);
* every figure is also computed per seed: ``seeds`` holds ``mean, std, min, max`` over seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ambient_imaging.metrics.intervals import bootstrap_interval, seed_spread, wilson_interval
from ambient_imaging.metrics.kid import random_feature_kid

__all__ = ["summarise_level", "geometric_mean", "THRESHOLDS"]

#: the similarity thresholds of the memorisation fractions
THRESHOLDS = (0.90, 0.95)


def geometric_mean(values: list[float]) -> float:
    """Geometric mean (``nan`` for no values)."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(np.maximum(v, 1e-300))))) if v.size else float("nan")


def _figure(interval: Any, per_seed: list[float]) -> dict[str, Any]:
    return {**interval.as_dict(), "per_seed": [float(v) for v in per_seed], "seeds": seed_spread(per_seed)}


def summarise_level(
    runs: list[dict[str, Any]],
    samples: list[torch.Tensor],
    heldout: torch.Tensor,
    quality_sigmas: list[float],
    feature_seed: int = 0,
) -> dict[str, Any]:
    """The level's figures from its runs (one per seed: :func:`~.runs.evaluate_run` results) and samples."""
    sim = [np.asarray(r["similarity"], dtype=np.float64) for r in runs]
    ratio = [np.asarray(r["l2_ratio"], dtype=np.float64) for r in runs]
    strata = np.concatenate([np.full(s.size, i) for i, s in enumerate(sim)])
    all_sim, all_ratio = np.concatenate(sim), np.concatenate(ratio)
    out: dict[str, Any] = {"samples": int(all_sim.size), "seeds_used": [int(r["seed"]) for r in runs]}
    for t in THRESHOLDS:
        hits = int(np.sum(all_sim > t))
        out[f"frac_above_{t:.2f}"] = _figure(wilson_interval(hits, all_sim.size), [float(np.mean(s > t)) for s in sim])
    out["similarity_mean"] = _figure(bootstrap_interval(all_sim, strata=strata), [float(s.mean()) for s in sim])
    out["l2_ratio_mean"] = _figure(bootstrap_interval(all_ratio, strata=strata), [float(r.mean()) for r in ratio])
    out["similarity_max"] = float(all_sim.max())
    out["l2_ratio_median"] = float(np.median(all_ratio))
    pooled = torch.cat(samples)
    kid = random_feature_kid(pooled, heldout, strata=strata, feature_seed=feature_seed)
    per_seed_kid = [random_feature_kid(s, heldout, feature_seed=feature_seed, n_boot=2).value for s in samples]
    out["kid"] = _figure(kid, per_seed_kid)
    mse = [geometric_mean([r["denoise_mse_per_sigma"][f"{s:g}"] for s in quality_sigmas]) for r in runs]
    out["denoise_mse"] = {"value": float(np.mean(mse)), "per_seed": mse, "seeds": seed_spread(mse)}
    return out
