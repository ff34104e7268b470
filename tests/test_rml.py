"""RML imaging of a gain-corrupted EHT 2017 observation (closure quantities, honest failure)."""

from __future__ import annotations

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
    rec = RML(data_terms="cphase,logcamp", rounds=2, iters=100)(y, op)
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


@pytest.fixture(scope="module")
def eht_extended(tmp_path_factory):
    """A 40 µas crescent (0.6 Jy) plus 0.5 Jy of extended emission only the intra-site baselines see."""
    path = tmp_path_factory.mktemp("ehtx") / "crescent_jet.uvfits"
    return simulate_eht((N, N), FOV, n_times=40, seed=3, path=path, extended_flux=0.5)


def test_compact_flux_data_rescales_intra_site_baselines(eht_extended):
    from ambient_imaging.interferometry.compact import compact_flux_data, zero_baseline_rows

    y, op = eht_extended.vis.to_operator((N, N), fov=FOV)
    intra = zero_baseline_rows(op)[0]
    names = eht_extended.vis.station_names()
    pairs = {frozenset((names[int(a)], names[int(b)])) for a, b in op.stations[intra].tolist()}
    assert pairs == {frozenset(("ALMA", "APEX")), frozenset(("JCMT", "SMA"))}
    assert abs(float(y[0, intra].abs().median()) - 1.1) < 0.1  # the zero-baseline flux holds the extended part
    y2, op2, cf = compact_flux_data(y, op, 0.6)
    assert cf.mode == "given" and abs(float(y2[0, intra].abs().median()) - 0.6) < 1e-6
    snr = y[0].abs() / op.noise_sigma[0]
    assert torch.allclose(y2[0].abs() / op2.noise_sigma[0], snr)  # σ's scale with the data
    assert torch.equal(y2[0, ~intra], y[0, ~intra])
    _, _, est = compact_flux_data(y, op)
    assert est.mode == "estimated" and abs(est.flux / 0.6 - 1) < 0.15 and "--flux" in est.describe()
    _, op3, none = compact_flux_data(y, op, uv_cut=None)
    assert none.mode == "none" and op3 is op
    with pytest.raises(ValueError, match="positive"):
        compact_flux_data(y, op, -1.0)


def test_rml_recovers_ring_despite_extended_flux(eht_extended, tmp_path, capsys):
    """The whole CLI path on a file with extended emission: a ring of the right size with a central
    depression, the ring metrics in metrics.json, ``--flux`` respected."""
    import json

    from ambient_imaging.cli import main
    from ambient_imaging.metrics.ring import ring_metrics

    truth = ring_metrics(eht_extended.truth, eht_extended.pixel_rad)
    out = tmp_path / "ring.fits"
    code = main(["reconstruct", "--data", str(eht_extended.path), "--sampler", "rml", "--data-terms", "cphase,logcamp",
                 "--fov", "160uas", "--npix", str(N), "--flux", "0.6", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    m = json.loads(out.with_suffix(".metrics.json").read_text())
    assert m["chi2_cphase"] <= 1.5 and m["chi2_logcamp"] <= 1.5, m
    assert abs(m["ring_diameter_uas"] - truth.ring_diameter_uas) < 4, m
    assert m["ring_depth"] <= 0.4 and m["ring_radial_scatter"] <= 0.25, m
    assert abs((m["ring_position_angle_deg"] - 180 + 180) % 360 - 180) < 30, m
    from astropy.io import fits

    # chi2_red (complex vis) does not judge it; these high-SNR data are fitted with ehtim's statistic (auto)
    assert m["slices"][0]["chi2_fitted"] == "chi2_cphase,chi2_logcamp" and m["logcamp_noise"] == "ehtim"
    assert m["chi2_logcamp_rice"] <= 1.5, m
    with fits.open(out) as hdul:
        assert abs(float(hdul[0].data.sum()) - 0.6) < 0.1  # the compact flux, not the 1.1 Jy zero-baseline flux
        assert hdul[0].header["CHI2CP"] == pytest.approx(m["chi2_cphase"])
        assert hdul[0].header["CHI2LCA"] == pytest.approx(m["chi2_logcamp"])


def test_sys_noise_from_the_cli_is_applied_and_recorded(eht_extended, tmp_path, capsys):
    """``--sys-noise 0.05`` loosens every σ (the closure χ²'s drop) and is said and written to metrics.json."""
    import json

    from ambient_imaging.cli import main

    chi2 = {}
    for frac in ("0", "0.05"):
        out = tmp_path / f"sys{frac}.fits"
        code = main(["reconstruct", "--data", str(eht_extended.path), "--sampler", "rml", "--fov", "160uas",
                     "--npix", str(N), "--steps", "30", "--sys-noise", frac, "--out", str(out)])
        assert code == 0, capsys.readouterr().err
        m = json.loads(out.with_suffix(".metrics.json").read_text())
        assert m["sys_noise"] == float(frac)
        chi2[frac] = m["chi2_cphase"]
    assert "0.05 x |V| added in quadrature" in capsys.readouterr().err
    assert chi2["0.05"] < chi2["0"]
