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
