"""Uncertainty metrics and split-conformal calibration (metrics.calibration) on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ambient_imaging.metrics import Calibration, conformal_scores, coverage, crps, interval_width, spread_skill


def _ensemble(scale: float, k: int = 200, n: int = 40, seed: int = 0):
    """Truth ~ N(μ, 1) per pixel, samples ~ N(μ, scale²): calibrated for scale = 1 (positive: magnitudes)."""
    rng = np.random.default_rng(seed)
    mu = 10 + rng.normal(size=(n, n))
    return mu + scale * rng.normal(size=(k, n, n)), mu + rng.normal(size=(n, n))


def test_raw_metrics_of_a_calibrated_and_an_overconfident_ensemble():
    s, x = _ensemble(1.0)
    assert abs(coverage(s, x) - 0.954) < 0.02
    assert abs(spread_skill(s, x) - 1) < 0.05
    assert abs(crps(s, x) - 1 / math.sqrt(math.pi)) < 0.03  # CRPS of N(0, 1) against its own draws
    assert abs(interval_width(s) - 4.0) < 0.05
    s3, _ = _ensemble(0.3)
    assert spread_skill(s3, x) < 0.4 and coverage(s3, x) < 0.6 and crps(s3, x) > crps(s, x)


def test_split_conformal_covers_held_out_pixels():
    s, x = _ensemble(0.3, seed=1)
    cal = Calibration.fit([conformal_scores(s, x, floor=0.0)], method="daps", floor=0.0)
    assert 2.5 < cal.q < 4.5  # ≈ 1 / 0.3
    held_s, held_x = _ensemble(0.3, seed=2)
    assert 0.93 < cal.coverage(held_s, held_x) < 0.97  # nominal 95 % on data it never saw
    assert coverage(held_s, held_x) < 0.6  # the raw intervals do not


def test_the_floor_calibrates_a_std_that_vanishes_where_the_error_does_not():
    # half the pixels: spread 0.3 (over-confident); the other half: std ~0 (rows pinned) but error 1
    def ensemble(seed):
        s, x = _ensemble(0.3, seed=seed)
        s[:, :, :20] = s[:, :, :20].mean(0, keepdims=True) + 1e-9 * s[:, :, :20]
        return s, x

    s, x = ensemble(1)
    with pytest.raises(ValueError, match="cannot be calibrated"):
        Calibration.fit(conformal_scores(s, x, floor=0.0), floor=0.0)  # purely multiplicative: impossible
    cal = Calibration.fit(conformal_scores(s, x), method="daps")
    held_s, held_x = ensemble(2)
    assert cal.floor == 1.0 and 0.93 < cal.coverage(held_s, held_x) < 0.97
    assert cal.width(held_s) < 8.0  # bounded (±2σ of the truth's N(0, 1) is 4 wide; no floor: infinite)


def test_calibration_record_round_trip_and_refusals(tmp_path):
    s, x = _ensemble(0.5)
    cal = Calibration.fit(conformal_scores(s, x), method="daps", prior="runs/x", source="val")
    again = Calibration.load(cal.save(tmp_path / "calibration.json"))
    assert again == cal and again.to_dict()["kind"] == "split-conformal"
    (tmp_path / "bad.json").write_text('{"q": -1}')
    with pytest.raises(ValueError, match="bad.json"):
        Calibration.load(tmp_path / "bad.json")
    zero = np.repeat(x[None], 4, axis=0) + 0 * s[:4]  # std 0 everywhere, errors not
    with pytest.raises(ValueError, match="cannot be calibrated"):
        Calibration.fit(conformal_scores(zero, x + 1))
