"""Intervals (Wilson, stratified bootstrap) cover what they claim; the random-feature KID separates distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ambient_imaging.metrics.intervals import Interval, bootstrap_interval, seed_spread, wilson_interval
from ambient_imaging.metrics.kid import RandomConvFeatures, kernel_distance, random_feature_kid


@pytest.mark.parametrize("p, n", [(0.3, 200), (0.05, 256), (0.01, 768)])
def test_wilson_interval_covers_a_known_proportion(p, n):
    rng = np.random.default_rng(1)
    reps = 2000
    hits = rng.binomial(n, p, size=reps)
    covered = np.mean([wilson_interval(int(k), n).contains(p) for k in hits])
    # 2000 repetitions: the coverage estimate has sd ≈ 0.005; Wilson is close to nominal
    assert 0.92 <= covered <= 0.985, covered


def test_bootstrap_interval_covers_a_known_mean():
    rng = np.random.default_rng(2)
    p, n, reps = 0.3, 200, 200
    covered = 0
    for r in range(reps):  # Bernoulli(p) samples: the percentile bootstrap of the mean covers p
        x = (rng.random(n) < p).astype(float)
        covered += bootstrap_interval(x, n_boot=400, seed=r).contains(p)
    assert 0.88 <= covered / reps <= 0.99, covered / reps
    # continuous values, stratified by "seed": resampling within strata keeps the interval valid
    covered = 0
    for r in range(reps):
        x = np.concatenate([rng.normal(mu, 1.0, 100) for mu in (-0.5, 0.0, 0.5)])  # true mean 0
        covered += bootstrap_interval(x, strata=np.repeat([0, 1, 2], 100), n_boot=400, seed=r).contains(0.0)
    assert 0.88 <= covered / reps <= 0.995, covered / reps


def test_interval_edge_cases_and_errors():
    zero = wilson_interval(0, 768)
    assert zero.value == 0.0 and zero.low == 0.0 and 0.003 < zero.high < 0.006  # ≈ 3.84 / (n + 3.84)
    full = wilson_interval(10, 10)
    assert full.high == 1.0 and full.low < 1.0
    assert not zero.overlaps(Interval(0.3, 0.27, 0.33)) and zero.overlaps(Interval(0.0, 0.0, 0.01))
    b = bootstrap_interval(np.zeros(50))
    assert (b.value, b.low, b.high) == (0.0, 0.0, 0.0)
    assert seed_spread([0.1, 0.3]) == pytest.approx({"mean": 0.2, "std": 2**0.5 * 0.1, "min": 0.1, "max": 0.3})
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="strata"):
        bootstrap_interval(np.ones(4), strata=[0, 1])
    with pytest.raises(ValueError, match="no values"):
        seed_spread([])


def _blobs(n: int, seed: int, width: float = 3.0) -> torch.Tensor:
    """Random smooth images: Gaussian blobs of a given width at random places."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    c = torch.rand(n, 2, 1, 1, generator=g) * 16
    img = torch.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / (2 * width**2))
    return img[:, None].clamp(0, 1)


def test_kid_same_distribution_near_zero_shifted_positive():
    ref = _blobs(120, seed=0)
    same = random_feature_kid(_blobs(120, seed=1), ref, n_boot=200)
    assert same.contains(0.0) and abs(same.value) < 0.05, same
    shifted = random_feature_kid(_blobs(120, seed=1, width=1.5), ref, n_boot=200)
    assert shifted.low > 0 and shifted.value > 10 * max(abs(same.value), 1e-3), (shifted, same)
    noisy = (_blobs(120, seed=1) + 0.2 * torch.rand(120, 1, 16, 16, generator=torch.Generator().manual_seed(3)))
    assert random_feature_kid(noisy.clamp(0, 1), ref, n_boot=200).low > 0


def test_kid_is_unbiased_and_deterministic():
    rng = np.random.default_rng(0)
    # a U-statistic: averaged over many draws of the same distribution it is ≈ 0, not > 0
    vals = [kernel_distance(rng.normal(size=(30, 8)), rng.normal(size=(30, 8)), n_boot=2).value for _ in range(200)]
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))
    f1 = RandomConvFeatures(1, seed=7).features(_blobs(4, 0))
    f2 = RandomConvFeatures(1, seed=7).features(_blobs(4, 0))
    assert f1.shape == (4, RandomConvFeatures(1).dim) and np.array_equal(f1, f2)
    assert not np.array_equal(f1, RandomConvFeatures(1, seed=8).features(_blobs(4, 0)))
    with pytest.raises(ValueError, match="match"):
        random_feature_kid(torch.rand(4, 1, 8, 8), torch.rand(4, 3, 8, 8))
