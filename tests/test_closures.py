"""Closure quantities, station gains, flux estimate and likelihoods (ehtim conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ambient_imaging.datasets.simulate_vlbi import UAS, crescent, simulate_eht
from ambient_imaging.interferometry import (
    closure_data,
    closure_index,
    estimate_total_flux,
    flux_rule,
    parse_flux_rule,
    random_station_gains,
    solve_gains,
    station_slots,
)
from ambient_imaging.sampling.likelihoods import (
    ClosurePhaseLikelihood,
    LogClosureAmplitudeLikelihood,
    VisibilityLikelihood,
    chi2_report,
    make_likelihoods,
    parse_data_terms,
    total_chi2,
    total_loss,
)

N = 32
FOV = 160 * UAS


@pytest.fixture(scope="module")
def sims():
    clean = simulate_eht((N, N), FOV, n_times=30, seed=3, amp_error=0.0, random_phases=False)
    dirty = simulate_eht((N, N), FOV, n_times=30, seed=3, amp_error=0.1, random_phases=True)
    return clean, dirty


def test_minimal_set_sizes_and_stations():
    # 5 stations all present at one time: (N-1)(N-2)/2 = 6 triangles, N(N-3)/2 = 5 quadrangles
    st = torch.tensor([(a, b) for a in range(1, 6) for b in range(a + 1, 6)])
    idx = closure_index(st, torch.zeros(len(st)))
    assert idx.tri_rows.shape == (6, 3) and idx.quad_rows.shape == (5, 4)
    assert (idx.tri_stations[:, 0] == 1).all()  # reference station in every triangle
    # a flagged baseline removes the triangles/quadrangles using it
    valid = torch.ones(len(st), dtype=torch.bool)
    valid[0] = False  # (1, 2)
    idx2 = closure_index(st, torch.zeros(len(st)), valid)
    assert idx2.tri_rows.shape[0] == 3


def test_gain_invariance(sims):
    clean, dirty = sims
    y0, op0 = clean.vis.to_operator((N, N), fov=FOV)
    y1, op1 = dirty.vis.to_operator((N, N), fov=FOV)
    c0, c1 = closure_data(y0, op0, debias=False), closure_data(y1, op1, debias=False)
    # same noise draw, gains only: closure phases identical, log closure amplitudes identical
    assert torch.allclose(torch.remainder(c0.cphase - c1.cphase + math.pi, 2 * math.pi) - math.pi,
                          torch.zeros_like(c0.cphase), atol=1e-9)
    assert torch.allclose(c0.logcamp, c1.logcamp, atol=1e-9)
    # but the visibilities differ by a lot
    assert float((y0 - y1).abs().max()) > 0.1
    # model closures of an image are also invariant to gains applied to its visibilities
    x = clean.truth[None, None]
    g = random_station_gains(op0.stations, op0.times, 0.2, generator=torch.Generator().manual_seed(0))
    v = op0(x)
    idx = c0.index
    assert torch.allclose(idx.raw_cphase(v), idx.raw_cphase(v * g.factor()), atol=1e-9)
    assert torch.allclose(idx.raw_logcamp(v), idx.raw_logcamp(v * g.factor()), atol=1e-9)


def test_sigmas_follow_ehtim_formulae(sims):
    clean, _ = sims
    y, op = clean.vis.to_operator((N, N), fov=FOV)
    cd = closure_data(y, op, debias=False)
    sig = torch.from_numpy(clean.vis.sigma)
    amp = y[0].abs()
    r = cd.index.tri_rows
    assert torch.allclose(cd.cphase_sigma, torch.sqrt(((sig[r] / amp[r]) ** 2).sum(-1)))
    q = cd.index.quad_rows
    assert torch.allclose(cd.logcamp_sigma, torch.sqrt(((sig[q] / amp[q]) ** 2).sum(-1)))
    # debiasing lowers amplitudes: |V|² - σ²; log closure amplitudes shift by the ehtim correction
    cdb = closure_data(y, op, debias=True)
    a = torch.sqrt(amp**2 - sig**2)
    inv = (sig[q] / a[q]) ** 2
    want = (torch.log(a[q[:, 0]]) + torch.log(a[q[:, 1]]) - torch.log(a[q[:, 2]]) - torch.log(a[q[:, 3]])
            + 0.5 * (inv[:, 0] + inv[:, 1] - inv[:, 2] - inv[:, 3]))
    assert torch.allclose(cdb.logcamp, want)


def test_truth_chi2_is_about_one_and_gradients_flow(sims):
    _, dirty = sims
    y, op = dirty.vis.to_operator((N, N), fov=FOV)
    rep = chi2_report(dirty.truth[None, None], y, op)
    assert 0.7 < rep["chi2_cphase"] < 1.4 and 0.7 < rep["chi2_logcamp"] < 1.4
    assert rep["chi2_vis"] > 100  # station gains
    liks = make_likelihoods(y, op, "cphase,logcamp")
    x = (dirty.truth[None, None] * 1.0 + 1e-4).requires_grad_(True)
    loss = sum(lk.loss(x).sum() for lk in liks.values())
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g).all() and float(g.abs().max()) > 0
    # loss = N χ² / 2 for closures
    lk = liks["cphase"]
    assert torch.allclose(lk.loss(x.detach()), 0.5 * lk.n_data * lk.chi2(x.detach()))


def test_total_chi2_is_the_weighted_sum_with_one_transform(sims, monkeypatch):
    _, dirty = sims
    y, op = dirty.vis.to_operator((N, N), fov=FOV)
    liks = make_likelihoods(y, op, "vis,amp,cphase,logcamp")
    w = {"vis": 0.0, "amp": 0.2, "cphase": 1.0, "logcamp": 2.0}
    x = torch.stack([dirty.truth, dirty.truth.flip(-1)])[:, None].to(torch.float64) + 1e-4
    want = sum(w[n] * lk.chi2(x) for n, lk in liks.items())
    want_loss = sum(w[n] * lk.loss(x) for n, lk in liks.items())
    calls = []
    forward = type(op).forward
    monkeypatch.setattr(type(op), "forward", lambda self, img: calls.append(1) or forward(self, img))
    assert torch.allclose(total_chi2(liks, w, x), want, rtol=1e-12)
    assert len(calls) == 1  # one transform for the three weighted products
    assert torch.allclose(total_loss(liks, w, x), want_loss, rtol=1e-12)
    assert torch.equal(total_chi2(liks, {}, x), torch.zeros(2, dtype=x.dtype))


def test_time_averaging_keeps_invariance(sims):
    clean, dirty = sims
    y0, op0 = clean.vis.to_operator((N, N), fov=FOV)
    y1, op1 = dirty.vis.to_operator((N, N), fov=FOV)
    a0, a1 = closure_data(y0, op0, avg_time=3600.0), closure_data(y1, op1, avg_time=3600.0)
    raw = closure_data(y0, op0)
    assert a0.cphase.numel() < raw.cphase.numel()
    assert torch.allclose(a0.cphase, a1.cphase, atol=1e-9)
    assert (a0.cphase_sigma < raw.cphase_sigma.max()).all()
    lk = ClosurePhaseLikelihood(y1, op1, avg_time=3600.0)
    assert lk.n_data == a0.cphase.numel()
    assert 0.3 < float(lk.chi2(clean.truth[None, None])[0]) < 3.0
    lc = LogClosureAmplitudeLikelihood(y1, op1, avg_time=3600.0)
    assert torch.isfinite(lc.chi2(clean.truth[None, None])).all()


def test_selfcal_recovers_gains(sims):
    clean, dirty = sims
    y, op = dirty.vis.to_operator((N, N), fov=FOV)
    model = op(clean.truth[None, None])[0]
    w = op.visibility_weights(y)[0] * 2
    gains = solve_gains(y[0], model, station_slots(op.stations, op.times), w)
    before = VisibilityLikelihood(y, op).chi2(clean.truth[None, None])
    after = VisibilityLikelihood(y, op, gains).chi2(clean.truth[None, None])
    assert float(before) > 1000 and float(after) < 3.0
    ph = solve_gains(y[0], model, station_slots(op.stations, op.times), w, mode="phase")
    assert torch.allclose(ph.gains.abs(), torch.ones_like(ph.gains.abs()))


def test_total_flux_estimate_and_rule(sims):
    _, dirty = sims
    y, op = dirty.vis.to_operator((N, N), fov=FOV)
    f = estimate_total_flux(y, op)
    assert f.shape == (1,) and abs(float(f[0]) - 0.6) < 0.06  # ±10 % gains
    k, pix = parse_flux_rule(flux_rule(2.5, 1e-10))
    assert k == 2.5 and pix == 1e-10 and parse_flux_rule("sky images scaled to [0, 1]") is None
    assert float(crescent((N, N), FOV / N).sum()) == pytest.approx(0.6)


def test_data_term_parsing_and_errors(sims):
    assert parse_data_terms("cphase,logcamp,amp:0.2") == {"cphase": 1.0, "logcamp": 1.0, "amp": 0.2}
    with pytest.raises(ValueError, match="unknown data terms"):
        parse_data_terms("cphase,bispectrum")
    clean, _ = sims
    y, op = clean.vis.to_operator((N, N), fov=FOV)
    from ambient_imaging.operators import Interferometer

    bare = Interferometer(op.uv, (N, N), op.pixel_scale, noise_sigma=op.noise_sigma)
    with pytest.raises(ValueError, match="station pairs"):
        closure_data(y, bare)


@pytest.mark.filterwarnings("ignore")
def test_against_ehtim(tmp_path):
    """ehtim reads our UVFITS and forms the same closure phases and log closure amplitudes."""
    eh = pytest.importorskip("ehtim")
    path = tmp_path / "eht.uvfits"
    sim = simulate_eht((N, N), FOV, n_times=12, seed=5, path=path)
    obs = eh.obsdata.load_uvfits(str(path))
    y, op = sim.vis.to_operator((N, N), fov=FOV)
    names = op.station_names
    cd = closure_data(y, op, debias=True)
    # key by (integration order, station names)
    tg = {t: i for i, t in enumerate(sorted(set(np.round(obs.data["time"], 8))))}
    ours_t = {t: i for i, t in enumerate(sorted(set(cd.index.tri_time.tolist())))}
    from ambient_imaging.interferometry import CP_UV_MIN

    cp = obs.c_phases(mode="all", count="min", ang_unit="rad", uv_min=CP_UV_MIN)  # EHT's cp_uv_min
    theirs = {(tg[round(float(r["time"]), 8)], r["t1"], r["t2"], r["t3"]): (r["cphase"], r["sigmacp"]) for r in cp}
    n_match = 0
    for k in range(cd.cphase.numel()):
        s = tuple(names[int(a)] for a in cd.index.tri_stations[k])
        key = (ours_t[float(cd.index.tri_time[k])], *s)
        if key in theirs:
            n_match += 1
            d = np.angle(np.exp(1j * (float(cd.cphase[k]) - theirs[key][0])))
            assert abs(d) < 1e-4 and float(cd.cphase_sigma[k]) == pytest.approx(theirs[key][1], rel=1e-4)
    assert n_match >= 0.9 * cd.cphase.numel() > 0 and n_match >= 0.9 * len(theirs)  # the same set both ways
    lc = obs.c_amplitudes(mode="all", count="min", ctype="logcamp", debias=True)
    theirs = {(tg[round(float(r["time"]), 8)], r["t1"], r["t2"], r["t3"], r["t4"]): (r["camp"], r["sigmaca"])
              for r in lc}
    ours_q = {t: i for i, t in enumerate(sorted(set(cd.index.quad_time.tolist())))}
    n_match = 0
    for k in range(cd.logcamp.numel()):
        s = tuple(names[int(a)] for a in cd.index.quad_stations[k])
        key = (ours_q[float(cd.index.quad_time[k])], *s)
        if key in theirs:
            n_match += 1
            assert float(cd.logcamp[k]) == pytest.approx(theirs[key][0], abs=1e-4)
            assert float(cd.logcamp_sigma[k]) == pytest.approx(theirs[key][1], rel=1e-4)
    assert n_match >= 0.9 * cd.logcamp.numel() > 0


def test_perturbed_likelihoods_draw_data_from_their_noise_model(sims):
    """``Likelihood.perturbed(k)``: k rows of data + noise at the likelihood's own σ's; the original is untouched."""
    _, dirty = sims
    y, op = dirty.vis.to_operator((N, N), fov=FOV)
    liks = make_likelihoods(y, op, "vis,amp,cphase,logcamp")
    g = torch.Generator().manual_seed(0)
    k = 400
    pairs = {"vis": lambda lk: (lk.y, lk.sigma * 2**0.5), "amp": lambda lk: (lk.amp, lk.sigma),
             "cphase": lambda lk: (lk.data.cphase, lk.data.cphase_sigma),
             "logcamp": lambda lk: (lk.data.logcamp, lk.data.logcamp_sigma)}
    x = dirty.truth[None, None].to(torch.float64)
    for name, lk in liks.items():
        before, sigma = (t.clone() for t in pairs[name](lk))
        new = lk.perturbed(k, g)
        data, _ = pairs[name](new)
        assert data.shape[0] == k and torch.equal(pairs[name](lk)[0], before)
        z = ((data - before).abs() / sigma.clamp_min(1e-300))[:, sigma > 0]
        assert abs(float(z.pow(2).mean()) - 1.0) < 0.05, name  # σ-sized noise (|complex| counts both parts)
        chi2 = new.chi2(x.expand(k, 1, N, N))  # each sample against its own data: about the original χ²
        assert chi2.shape == (k,) and new.n_data == lk.n_data
        if name in ("cphase", "logcamp"):
            assert abs(float(chi2.mean()) - float(lk.chi2(x)[0]) - 1.0) < 0.2, name  # + 1 from the added noise


def test_closure_phases_leave_out_intra_site_triangles(sims):
    """EHT's ``cp_uv_min``: triangles with an intra-site leg (ALMA–APEX, SMA–JCMT) are dropped when the data
    also hold long baselines; ``cp_uv_min=None`` keeps them; arrays of short baselines only keep everything."""
    from ambient_imaging.interferometry import CP_UV_MIN

    y, op = sims[0].vis.to_operator((N, N), fov=FOV)
    every = closure_data(y, op, cp_uv_min=None)
    cut = closure_data(y, op)
    short = (op.uv.norm(dim=-1) < CP_UV_MIN).reshape(-1)
    assert short.any()
    has_short = short[every.index.tri_rows].any(-1)
    assert 0 < int(has_short.sum()) < has_short.numel()
    assert cut.cphase.numel() == int((~has_short).sum())
    assert not short[cut.index.tri_rows].any()
    assert torch.equal(cut.logcamp, every.logcamp)  # log closure amplitudes keep every quadrangle
    # VLA-like: every baseline is short, none is "intra-site": nothing is dropped
    scaled = op.replace(uv=op.uv * 1e-4)
    assert closure_data(y, scaled).cphase.numel() == every.cphase.numel()
