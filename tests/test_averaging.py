"""Coherent time averaging of visibilities within scans (datasets.averaging, reconstruct --avg-time)."""

from __future__ import annotations

import numpy as np
import pytest

from ambient_imaging.datasets.averaging import (
    DEFAULT_AVG_S,
    average_for_imaging,
    coherence,
    coherent_average,
    parse_avg_time,
    scan_ids,
    smearing_time,
)
from ambient_imaging.datasets.uvfits import Visibilities


def _records(step_s: float = 10.0, n_per_scan: int = 12, scans: int = 2, gap_s: float = 600.0, phase_walk: float = 0.0,
             seed: int = 0) -> Visibilities:
    """Two baselines (1-2, 1-3), ``scans`` scans of ``n_per_scan`` records ``step_s`` apart, SNR 50."""
    rng = np.random.default_rng(seed)
    t_s = np.concatenate([k * (n_per_scan * step_s + gap_s) + step_s * np.arange(n_per_scan) for k in range(scans)])
    rows = []
    for a2, amp in ((2, 1.0), (3, 0.5)):
        phase = 0.3 + phase_walk * rng.standard_normal(t_s.size)
        rows.append((np.full(t_s.size, a2), amp * np.exp(1j * phase), t_s))
    a2 = np.concatenate([r[0] for r in rows])
    vis = np.concatenate([r[1] for r in rows])
    t = np.concatenate([r[2] for r in rows])
    m = t.size
    u = 1e9 + 1e3 * t
    return Visibilities(u=u, v=-0.5 * u, w=np.zeros(m), vis=vis, sigma=np.full(m, 0.01), ant1=np.ones(m, np.int64),
                        ant2=a2, time=2457848.5 + t / 86400.0, frequency=np.full(m, 227e9), ref_frequency=227e9)


def test_scans_are_split_at_gaps_longer_than_a_minute():
    t = 2457848.5 + np.array([0, 10, 20, 200, 210, 1000]) / 86400.0
    assert scan_ids(t).tolist() == [0, 0, 0, 1, 1, 2]


def test_coherent_average_keeps_a_constant_visibility_and_divides_sigma_by_sqrt_n():
    vis = _records()
    out = coherent_average(vis, 30.0)
    # 12 records of 10 s per scan → 4 segments of 3 records, per baseline and scan
    assert len(out) == 2 * 2 * 4
    np.testing.assert_allclose(np.abs(out.vis[out.ant2 == 2]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.angle(out.vis), 0.3, atol=1e-12)
    np.testing.assert_allclose(out.sigma, 0.01 / np.sqrt(3), rtol=1e-12)
    # (u, v) and time are the segment means; rows come out in time order
    assert np.all(np.diff(out.time) >= 0)
    np.testing.assert_allclose(out.v, -0.5 * out.u)
    whole = coherent_average(vis, None)
    assert len(whole) == 2 * 2
    np.testing.assert_allclose(whole.sigma, 0.01 / np.sqrt(12), rtol=1e-12)


def test_auto_averages_short_coherent_records_and_says_so():
    vis = _records()
    out, msg = average_for_imaging(vis, "auto")
    assert len(out) < len(vis) and f"{DEFAULT_AVG_S:g} s" in msg and "coherence 1.000" in msg
    assert coherence(vis, DEFAULT_AVG_S) == pytest.approx(1.0)


def test_auto_leaves_records_whose_phase_wanders_and_says_why():
    vis = _records(phase_walk=1.5)
    assert coherence(vis, DEFAULT_AVG_S) < 0.95
    out, msg = average_for_imaging(vis, "auto")
    assert out is vis and "not phase-coherent" in msg


def test_smearing_time_follows_earth_rotation():
    vis = _records()  # |uv|_max = 1e9 * sqrt(1.25) (+ a little)
    uv = float(np.hypot(vis.u, vis.v).max())
    fov = 160e-6 / 206265  # 160 µas
    expected = 1.0 / (2 * np.pi * 7.2921159e-5 * uv * fov / 2)
    assert smearing_time(vis, fov) == pytest.approx(expected, rel=1e-6)
    assert smearing_time(vis, fov, max_phase=0.5) == pytest.approx(expected / 2, rel=1e-6)
    assert smearing_time(vis, 0.0) == float("inf")


def test_auto_with_a_field_averages_whole_scans_when_the_field_allows():
    vis = _records()  # 2 scans of 120 s: EHT-like 160-µas field on 1e9-λ baselines allows > 1000 s
    out, msg = average_for_imaging(vis, "auto", fov_rad=160e-6 / 206265)
    assert len(out) == 2 * 2 and "smearing limit" in msg
    # a field so wide that 40 s would smear: segments of the smearing limit (floored at 30 s) instead
    wide = 1.0 / (2 * np.pi * 7.2921159e-5 * 1.2e9 * 20.0 / 2) * 2  # fov for which T ≈ 20 s
    out, msg = average_for_imaging(vis, "auto", fov_rad=wide)
    assert len(out) == 2 * 2 * 4 and f"{DEFAULT_AVG_S:g} s" in msg


def test_auto_falls_back_to_short_segments_when_phases_wander_over_scans():
    vis = _records()
    t = (vis.time - vis.time.min()) * 86400.0
    vis.vis = vis.vis * np.exp(1j * 0.012 * t)  # the phase drifts 1.4 rad over a 120-s scan, 0.36 rad over 30 s
    assert coherence(vis, None) < 0.95 <= coherence(vis, DEFAULT_AVG_S)
    out, msg = average_for_imaging(vis, "auto", fov_rad=160e-6 / 206265)
    assert len(out) == 2 * 2 * 4 and f"up to {DEFAULT_AVG_S:g} s" in msg


def test_auto_leaves_long_records_alone():
    vis = _records(step_s=60.0)
    out, msg = average_for_imaging(vis, "auto")
    assert out is vis and "no time averaging needed" in msg


def test_explicit_rules_and_bad_values():
    vis = _records()
    assert average_for_imaging(vis, "none")[0] is vis
    assert len(average_for_imaging(vis, "scan")[0]) == 4
    assert len(average_for_imaging(vis, "20")[0]) == 2 * 2 * 6
    assert parse_avg_time("30s") == 30.0 and parse_avg_time(None) == "auto" and parse_avg_time("0") is None
    for bad in ("fast", "-5", "nan"):
        with pytest.raises(ValueError, match="--avg-time"):
            parse_avg_time(bad)


def test_reconstruct_options_refuse_a_bad_avg_time_before_reading_data():
    from ambient_imaging.reconstruction.app import ReconstructOptions

    with pytest.raises(ValueError, match="--avg-time"):
        ReconstructOptions(method="rml", avg_time="soon").validate()


def test_fractional_systematic_noise_adds_in_quadrature():
    vis = _records()
    out = vis.with_fractional_noise(0.02)
    np.testing.assert_allclose(out.sigma, np.sqrt(0.01**2 + (0.02 * np.abs(vis.vis)) ** 2), rtol=1e-12)
    np.testing.assert_array_equal(out.vis, vis.vis)
    assert vis.with_fractional_noise(0.0) is vis
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="fractional systematic noise"):
            vis.with_fractional_noise(bad)


def test_reconstruct_options_refuse_a_bad_sys_noise_before_reading_data():
    from ambient_imaging.reconstruction.app import ReconstructOptions

    for bad in (-0.01, 1.5, float("inf")):
        with pytest.raises(ValueError, match="--sys-noise"):
            ReconstructOptions(method="rml", sys_noise=bad).validate()
