"""RML imaging of a gain-corrupted EHT 2017 observation (closure quantities, honest failure)."""

from __future__ import annotations

import time

import pytest
import torch

from ambient_imaging.datasets.simulate_vlbi import UAS, ring_diameter, simulate_eht
from ambient_imaging.sampling.rml import RML, fit_warnings, rml_from_options

N = 32
FOV = 160 * UAS


@pytest.fixture(scope="module")
def eht(tmp_path_factory):
    path = tmp_path_factory.mktemp("eht") / "crescent.uvfits"
    return simulate_eht((N, N), FOV, n_times=40, seed=1, path=path)  # written by our writer, read back


def test_closure_rml_recovers_ring(eht):
    y, op = eht.vis.to_operator((N, N), fov=FOV)
    t0 = time.perf_counter()
    rec = RML(data_terms="cphase,logcamp", rounds=2, iters=100)(y, op)
    assert time.perf_counter() - t0 < 20
    info = rec.info
    assert info["chi2_cphase"][0] <= 1.5 and info["chi2_logcamp"][0] <= 1.5
    assert "chi2_vis" in info["chi2_unfitted"][0] and info["warnings"] == []
    truth_d = ring_diameter(eht.truth, eht.pixel_rad)
    d = ring_diameter(rec.mean[0, 0], eht.pixel_rad)
    assert abs(truth_d / (40 * UAS) - 1) < 0.05
    assert abs(d / truth_d - 1) < 0.10
    assert float(rec.mean.min()) >= 0 and abs(float(rec.mean.sum()) - 0.6) < 0.1


def test_complex_vis_rml_without_selfcal_warns(eht):
    y, op = eht.vis.to_operator((N, N), fov=FOV)
    rec = RML(data_terms="vis", rounds=1, iters=30)(y, op)
    assert rec.info["chi2_vis"][0] > 10
    assert any("chi2_vis" in w and "--selfcal" in w for w in rec.info["warnings"])


def test_fit_warnings_and_options():
    assert fit_warnings({"chi2_cphase": [1.2], "all_zero": [False]}) == []
    msgs = fit_warnings({"chi2_red": [1400.0], "all_zero": [True]})
    assert len(msgs) == 2 and "all zero" in msgs[0] and "cphase,logcamp" in msgs[0]
    assert fit_warnings({}, image=torch.zeros(1, 1, 4, 4))
    r = rml_from_options("cphase,logcamp,amp:0.2", selfcal=True, reg_terms="mem:1,tv:0.1", iters=5)
    assert r.data_terms == {"cphase": 1.0, "logcamp": 1.0, "amp": 0.2} and r.selfcal is True and r.iters == 5
    with pytest.raises(ValueError, match="regularisers"):
        RML(reg_terms="entropy:1")
    with pytest.raises(ValueError, match="selfcal"):
        RML(selfcal="gains")
