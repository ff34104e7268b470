"""UVFITS reader/writer: hand-built EHT-like and VLBA-like random-groups files, round trips, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from astropy.io import fits

from ambient_imaging.datasets.uvfits import (
    Visibilities,
    decode_baseline,
    encode_baseline,
    read_uvfits,
    simulate_observation,
    write_uvfits,
)
from ambient_imaging.operators import Interferometer, earth_rotation_uv, load_array

F0 = 230e9


def _groups_file(path, data, stokes_crval, stokes_cdelt, uu, vv, bl, jd, freq_cdelt=1e6, if_offsets=None,
                 parnames=("UU---SIN", "VV---SIN", "WW---SIN", "BASELINE", "DATE", "DATE"), uv_scale=1.0):  # fmt: skip
    """Random-groups file with axes COMPLEX, STOKES, FREQ, IF, RA, DEC (data (N,1,1,IF,CH,ST,3)).

    ``uv_scale`` stores UU/VV with PSCAL = uv_scale (astropy applies it)."""
    n = data.shape[0]
    jd_int = np.floor(jd)
    pars = [uu / uv_scale, vv / uv_scale, np.zeros(n), bl, jd_int, jd - jd_int]  # raw values; PSCAL set below
    gd = fits.GroupData(data.astype(np.float32), parnames=list(parnames), pardata=pars, bitpix=-32)
    hdu = fits.GroupsHDU(gd)
    h = hdu.header
    axes = [("COMPLEX", 1.0, 1.0), ("STOKES", stokes_crval, stokes_cdelt), ("FREQ", F0, freq_cdelt),
            ("IF", 1.0, 1.0), ("RA", 187.7, 1.0), ("DEC", 12.39, 1.0)]  # fmt: skip
    for k, (ct, cv, cd) in enumerate(axes, start=2):
        h[f"CTYPE{k}"], h[f"CRVAL{k}"], h[f"CDELT{k}"], h[f"CRPIX{k}"] = ct, cv, cd, 1.0
    h["OBJECT"] = "M87"
    h["PSCAL1"], h["PSCAL2"] = uv_scale, uv_scale
    hdus = [hdu]
    if if_offsets is not None:
        nif = len(if_offsets)
        fq = fits.BinTableHDU.from_columns(
            [fits.Column("FRQSEL", "1J", array=[1]), fits.Column("IF FREQ", f"{nif}D", array=[if_offsets])],
            name="AIPS FQ",
        )
        hdus.append(fq)
    an = fits.BinTableHDU.from_columns(
        [fits.Column("ANNAME", "8A", array=["ALMA", "SMA", "LMT"]), fits.Column("STABXYZ", "3D", array=np.eye(3)),
         fits.Column("NOSTA", "1J", array=[1, 2, 3])], name="AIPS AN")  # fmt: skip
    hdus.append(an)
    fits.HDUList(hdus).writeto(path)


def _eht_like(tmp_path, flagged=(2, 5)):
    rng = np.random.default_rng(0)
    n = 8
    uu = rng.uniform(-0.03, 0.03, n)  # seconds (Earth-size baselines: |u| up to ~7e9 λ at 230 GHz)
    vv = rng.uniform(-0.03, 0.03, n)
    bl = np.array([256 * 1 + 2, 256 * 1 + 3, 256 * 2 + 3] * 3)[:n].astype(float)
    jd = 2457854.5 + np.arange(n) / 1440.0
    data = np.zeros((n, 1, 1, 1, 1, 4, 3))  # RR, LL, RL, LR
    rr = rng.normal(size=n) + 1j * rng.normal(size=n)
    ll = rng.normal(size=n) + 1j * rng.normal(size=n)
    for s, v in ((0, rr), (1, ll), (2, 0.1 * rr), (3, 0.1 * ll)):
        data[:, 0, 0, 0, 0, s, 0] = v.real
        data[:, 0, 0, 0, 0, s, 1] = v.imag
    data[..., 0, 2] = 4.0  # RR weight: σ = 0.5
    data[..., 1, 2] = 1.0  # LL weight: σ = 1
    data[..., 2:, 2] = 1.0
    for k in flagged:
        data[k, ..., 2] = -1.0  # flagged record
    p = tmp_path / "eht.uvfits"
    _groups_file(p, data, -1.0, -1.0, uu, vv, bl, jd, uv_scale=1e-12)
    return p, uu, vv, rr, ll, jd


def test_eht_like_stokes_i_flags_and_units(tmp_path):
    p, uu, vv, rr, ll, jd = _eht_like(tmp_path)
    vis = read_uvfits(p)
    keep = np.array([k not in (2, 5) for k in range(8)])
    assert len(vis) == 6
    uu32 = (uu / 1e-12).astype(np.float32).astype(np.float64) * 1e-12  # stored via PSCAL
    np.testing.assert_allclose(vis.u, uu32[keep] * F0, rtol=1e-6)  # seconds × Hz = wavelengths
    assert 1e9 < np.abs(vis.u).max() < 7e9
    np.testing.assert_allclose(vis.vis, (0.5 * (rr + ll))[keep], atol=1e-6)
    # σ_I = ½ √(σ_RR² + σ_LL²) = ½ √(0.25 + 1)
    np.testing.assert_allclose(vis.sigma, 0.5 * math.sqrt(1.25), rtol=1e-6)
    np.testing.assert_allclose(vis.time, jd[keep], atol=2e-8)
    np.testing.assert_array_equal(vis.ant1, np.array([1, 1, 2] * 3)[:8][keep])
    np.testing.assert_array_equal(vis.ant2, np.array([2, 3, 3] * 3)[:8][keep])
    np.testing.assert_array_equal(vis.baseline, np.array([258, 259, 515] * 3)[:8][keep])
    assert vis.antennas["names"] == ["ALMA", "SMA", "LMT"]
    assert vis.source == "M87" and vis.dec_deg == pytest.approx(12.39)
    assert vis.ref_frequency == F0


def test_non_finite_records_dropped(tmp_path):
    n = 4
    data = np.ones((n, 1, 1, 1, 1, 2, 3))  # RR, LL
    data[1, ..., 0, 0] = np.nan  # RR of record 1 is NaN → no Stokes I there
    data[2, ..., 1, 1] = np.inf
    _groups_file(tmp_path / "nan.uvfits", data, -1.0, -1.0, np.arange(1, n + 1) * 1e-9, np.ones(n) * 1e-9,
                 np.full(n, 258.0), np.full(n, 2457854.5))  # fmt: skip
    vis = read_uvfits(tmp_path / "nan.uvfits")
    assert len(vis) == 2 and np.isfinite(vis.vis).all()
    np.testing.assert_allclose(vis.u, np.array([1, 4]) * 1e-9 * F0, rtol=1e-6)


def test_rr_only_warns(tmp_path):
    n = 3
    data = np.ones((n, 1, 1, 1, 1, 1, 3))
    _groups_file(tmp_path / "rr.uvfits", data, -1.0, -1.0, np.ones(n) * 1e-9, np.ones(n) * 1e-9,
                 np.full(n, 258.0), np.full(n, 2457854.5))  # fmt: skip
    with pytest.warns(UserWarning, match="only RR present"):
        vis = read_uvfits(tmp_path / "rr.uvfits")
    assert len(vis) == 3


def test_vlba_like_multi_if_channel_averaging(tmp_path):
    rng = np.random.default_rng(1)
    n, nif, nch = 5, 4, 3
    offsets = np.array([0.0, 32e6, 64e6, 96e6])
    cdelt = 8e6
    data = np.zeros((n, 1, 1, nif, nch, 2, 3))  # RR, LL
    vals = rng.normal(size=(n, nif, nch, 2)) + 1j * rng.normal(size=(n, nif, nch, 2))
    w = rng.uniform(0.5, 2.0, size=(n, nif, nch, 2))
    data[:, 0, 0, ..., 0], data[:, 0, 0, ..., 1], data[:, 0, 0, ..., 2] = vals.real, vals.imag, w
    data[0, 0, 0, 0, :, :, 2] = 0.0  # one IF flagged in record 0
    uu = rng.uniform(-1, 1, n) * 1e-4
    vv = rng.uniform(-1, 1, n) * 1e-4
    names = ("UU", "VV", "WW", "BASELINE", "DATE", "DATE")
    _groups_file(tmp_path / "vlba.uvfits", data, -1.0, -1.0, uu, vv, np.full(n, 258.0), np.full(n, 2457854.5),
                 freq_cdelt=cdelt, if_offsets=offsets, parnames=names)  # fmt: skip
    freq = F0 + offsets[:, None] + np.arange(nch)[None] * cdelt  # (IF, CH)
    # per channel: n·IF·CH points minus the flagged IF
    per = read_uvfits(tmp_path / "vlba.uvfits", average_channels=False)
    assert len(per) == n * nif * nch - nch
    uu32, vv32 = uu.astype(np.float32).astype(np.float64), vv.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(per.u[-1], uu32[-1] * freq[-1, -1], rtol=1e-6)
    np.testing.assert_allclose(per.v[0], vv32[0] * freq[1, 0], rtol=1e-6)  # record 0: IF 0 flagged
    assert set(np.round(per.frequency / 1e6).astype(int)) == set(np.round(freq.ravel() / 1e6).astype(int))
    # averaged: weighted mean of Stokes I over valid channels
    avg = read_uvfits(tmp_path / "vlba.uvfits")
    assert len(avg) == n
    w32 = w.astype(np.float32).astype(np.float64)
    v32 = vals.real.astype(np.float32) + 1j * vals.imag.astype(np.float32)
    vi = 0.5 * (v32[..., 0] + v32[..., 1])
    wi = 4.0 / (1 / w32[..., 0] + 1 / w32[..., 1])
    wi[0, 0] = 0.0
    k = 3
    np.testing.assert_allclose(avg.vis[k], (wi[k] * vi[k]).sum() / wi[k].sum(), rtol=1e-5)
    np.testing.assert_allclose(avg.sigma[k], 1 / np.sqrt(wi[k].sum()), rtol=1e-5)
    np.testing.assert_allclose(avg.u[k], uu32[k] * freq.mean(), rtol=1e-6)


def test_baseline_codes_large_arrays():
    a1, a2 = np.array([1, 3, 300]), np.array([2, 400, 301])
    code = encode_baseline(a1, a2)
    assert code[0] == 2048 + 2 + 65536  # any antenna > 255 → 2048-convention for the file
    b1, b2 = decode_baseline(code)
    np.testing.assert_array_equal(b1, a1)
    np.testing.assert_array_equal(b2, a2)
    np.testing.assert_array_equal(decode_baseline(np.array([258.01]))[1], [2])


def _simulated():
    lay = load_array("vla_d")
    cov = earth_rotation_uv(lay, 40.0, (-1, 1), n_times=3, frequency_hz=1.4e9)
    img = np.zeros((16, 16))
    img[8, 8], img[4, 10] = 1.0, 0.5
    vis = simulate_observation(img, cov.nyquist_pixel_scale(), cov, 0.01, generator=torch.Generator().manual_seed(0),
                               layout=lay)  # fmt: skip
    return lay, cov, img, vis


def test_round_trip_with_our_writer_and_astropy(tmp_path):
    lay, cov, img, vis = _simulated()
    p = write_uvfits(tmp_path / "sim.uvfits", vis)
    assert not list(tmp_path.glob(".sim*"))
    with fits.open(p) as h:
        assert isinstance(h[0], fits.GroupsHDU) and h[0].header["CTYPE2"] == "COMPLEX"
        assert h["AIPS AN"].data["ANNAME"][0].strip() == lay.stations[0]
    back = read_uvfits(p)
    assert len(back) == len(vis)
    np.testing.assert_allclose(back.u, vis.u, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(back.v, vis.v, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(back.vis, vis.vis, atol=1e-5)
    np.testing.assert_allclose(back.sigma, 0.01, rtol=1e-6)
    np.testing.assert_array_equal(back.ant1, vis.ant1)
    np.testing.assert_allclose(back.time, vis.time, atol=2e-8)
    np.testing.assert_allclose(back.antennas["xyz"], lay.xyz)


def test_simulation_matches_operator_and_to_operator_shapes():
    lay, cov, img, vis = _simulated()
    ps = cov.nyquist_pixel_scale()
    clean = Interferometer(cov.uv, (16, 16), ps).forward(torch.from_numpy(img)[None, None])[0].numpy()
    r = vis.vis - clean
    assert np.std(r.real) == pytest.approx(0.01, rel=0.15) and np.std(r.imag) == pytest.approx(0.01, rel=0.15)
    y, op = vis.to_operator((16, 16), pixel_scale=ps)
    assert y.shape == (1, len(vis)) and y.is_complex() and op.n_vis == len(vis)
    assert op.noise_sigma.shape == (1, len(vis))
    torch.testing.assert_close(op.noise_sigma, torch.full((1, len(vis)), 0.01 * math.sqrt(2), dtype=torch.float64))
    y2, op2 = vis.to_operator((16, 16), fov=16 * ps, add_conjugates=True)
    assert y2.shape == (1, 2 * len(vis)) and op2.pixel_scale == pytest.approx(ps)
    torch.testing.assert_close(y2[0, len(vis) :], y[0].conj())
    with pytest.raises(ValueError, match="exactly one of pixel_scale or fov"):
        vis.to_operator((16, 16))
    a = simulate_observation(img, ps, cov, 0.01, seed=3)
    b = simulate_observation(img, ps, cov, 0.01, seed=3)
    np.testing.assert_array_equal(a.vis, b.vis)
    with pytest.raises(ValueError, match="generator or seed, not both"):
        simulate_observation(img, ps, cov, 0.01, generator=torch.Generator(), seed=1)


def test_bad_inputs(tmp_path):
    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "img.fits")
    with pytest.raises(ValueError, match=r"img\.fits: not a random-groups UVFITS"):
        read_uvfits(tmp_path / "img.fits")
    (tmp_path / "junk.uvfits").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match=r"junk\.uvfits: not a FITS file"):
        read_uvfits(tmp_path / "junk.uvfits")
    p, *_ = _eht_like(tmp_path, flagged=range(8))
    with pytest.raises(ValueError, match=r"eht\.uvfits: no valid visibilities: all 8 records flagged"):
        read_uvfits(p)
    n = 2
    data = np.ones((n, 1, 1, 1, 1, 1, 3))
    _groups_file(tmp_path / "nouv.uvfits", data, 1.0, 1.0, np.ones(n), np.ones(n), np.full(n, 258.0),
                 np.full(n, 2457854.5), parnames=("AA", "BB", "WW", "BASELINE", "DATE", "DATE"))  # fmt: skip
    with pytest.raises(ValueError, match=r"nouv\.uvfits: random parameters UU/VV missing"):
        read_uvfits(tmp_path / "nouv.uvfits")
    _groups_file(tmp_path / "q.uvfits", data, 2.0, 1.0, np.ones(n), np.ones(n), np.full(n, 258.0),
                 np.full(n, 2457854.5))  # fmt: skip
    with pytest.raises(ValueError, match=r"q\.uvfits: unsupported Stokes layout \['Q'\]"):
        read_uvfits(tmp_path / "q.uvfits")
    with pytest.raises(ValueError, match="only stokes='I'"):
        read_uvfits(tmp_path / "q.uvfits", stokes="Q")
    empty = Visibilities(*(np.zeros(0) for _ in range(9)), ref_frequency=1e9)
    with pytest.raises(ValueError, match="no visibilities to write"):
        write_uvfits(tmp_path / "e.uvfits", empty)
    assert not (tmp_path / "e.uvfits").exists()


@pytest.mark.parametrize(
    ("crval", "cdelt", "nst", "expect"),
    [(1.0, 1.0, 4, "I"), (-5.0, -1.0, 4, "XXYY")],
)
def test_other_stokes_layouts_and_uu_names(tmp_path, crval, cdelt, nst, expect):
    n = 4
    rng = np.random.default_rng(5)
    data = np.zeros((n, 1, 1, 1, 1, nst, 3))
    data[..., 0] = rng.normal(size=data.shape[:-1])
    data[..., 1] = rng.normal(size=data.shape[:-1])
    data[..., 2] = 1.0
    uu = rng.uniform(-1e-6, 1e-6, n)
    names = ("UU-L", "VV-L", "WW-L", "BASELINE", "DATE", "DATE")
    _groups_file(tmp_path / "s.uvfits", data, crval, cdelt, uu, uu, np.full(n, 258.0), np.full(n, 2457854.5),
                 parnames=names)  # fmt: skip
    vis = read_uvfits(tmp_path / "s.uvfits")
    d = data[:, 0, 0, 0, 0].astype(np.float32)
    c = d[..., 0] + 1j * d[..., 1]
    want = c[:, 0] if expect == "I" else 0.5 * (c[:, 0] + c[:, 1])  # I first / XX, YY first
    np.testing.assert_allclose(vis.vis, want, atol=1e-6)
    np.testing.assert_allclose(vis.sigma, 1.0 if expect == "I" else math.sqrt(0.5), rtol=1e-6)
    np.testing.assert_allclose(vis.u, uu.astype(np.float32) * F0, rtol=1e-6)


def test_complex_axis_without_weights(tmp_path):
    n = 3
    data = np.ones((n, 1, 1, 1, 1, 1, 2))  # (re, im) only: weight 1
    _groups_file(tmp_path / "nw.uvfits", data, 1.0, 1.0, np.ones(n) * 1e-9, np.ones(n) * 1e-9,
                 np.full(n, 258.0), np.full(n, 2457854.5))  # fmt: skip
    vis = read_uvfits(tmp_path / "nw.uvfits")
    np.testing.assert_allclose(vis.sigma, 1.0)
    np.testing.assert_allclose(vis.vis, 1 + 1j)


def test_source_east_stays_east_through_uvfits_and_fits(tmp_path):
    """simulate → write_uvfits → read_uvfits → image → FITS: a source east of the phase centre has
    RA > RA_centre in the written FITS image (astropy WCS)."""
    import warnings

    from astropy.wcs import WCS

    from ambient_imaging.datasets.fits import sky_fits_header, write_sky_fits
    from ambient_imaging.operators import earth_rotation_uv, load_array

    lay = load_array("vlba")
    cov = earth_rotation_uv(lay, 40.0, (-4, 4), n_times=12, frequency_hz=8e9)
    n, ps = 32, cov.nyquist_pixel_scale()
    img = np.zeros((n, n))
    img[n // 2 + 2, n // 2 + 5] = 1.0  # operator layout: 5 px east, 2 px north
    vis = simulate_observation(img, ps, cov, 1e-3, seed=0, ra_deg=150.0, layout=lay)
    write_uvfits(tmp_path / "east.uvfits", vis)
    back = read_uvfits(tmp_path / "east.uvfits")
    y, op = back.to_operator((n, n), pixel_scale=ps)
    dirty = op.measurements_to_image(y)[0, 0]
    r, c = np.unravel_index(int(dirty.argmax()), (n, n))
    assert (r, c) == (n // 2 + 2, n // 2 + 5)
    hdr = sky_fits_header(back.ra_deg, back.dec_deg, ps, (n, n), beam=(3 * ps, 2 * ps, 10.0))
    out = write_sky_fits(tmp_path / "east.fits", dirty, header=hdr)
    with fits.open(out) as h:
        data, head = h[0].data, h[0].header
        assert head["BUNIT"] == "JY/PIXEL" and head["CDELT1"] < 0 and head["BMAJ"] == pytest.approx(np.degrees(3 * ps))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(head)
    rr, cc = np.unravel_index(int(np.argmax(data)), data.shape)
    src = wcs.pixel_to_world(cc, rr)
    centre = wcs.pixel_to_world(head["CRPIX1"] - 1, head["CRPIX2"] - 1)
    assert centre.ra.deg == pytest.approx(150.0) and centre.dec.deg == pytest.approx(back.dec_deg)
    assert src.ra.deg > centre.ra.deg and src.dec.deg > centre.dec.deg
    east = (src.ra.deg - centre.ra.deg) * np.cos(np.radians(back.dec_deg))
    assert east == pytest.approx(np.degrees(5 * ps), rel=0.01)


def test_antenna_table_always_written(tmp_path):
    vis = Visibilities(u=np.array([1e6, 2e6]), v=np.array([0.0, 1e6]), w=np.zeros(2), vis=np.ones(2, complex),
                       sigma=np.ones(2), ant1=np.array([1, 1]), ant2=np.array([2, 3]), time=np.full(2, 2460000.5),
                       frequency=np.full(2, 230e9), ref_frequency=230e9)
    write_uvfits(tmp_path / "noan.uvfits", vis)
    with fits.open(tmp_path / "noan.uvfits") as h:
        an = h["AIPS AN"].data
        assert list(an["ANNAME"]) == ["ANT01", "ANT02", "ANT03"] and list(an["NOSTA"]) == [1, 2, 3]
    back = read_uvfits(tmp_path / "noan.uvfits")
    np.testing.assert_allclose(back.u, vis.u, rtol=1e-6)  # UU = (ant1 - ant2) / ν, read as written


def test_ehtim_reads_our_file_with_the_same_sign(tmp_path):
    """ehtim (if installed) reads our UVFITS and predicts the same visibility phases for an east source."""
    eh = pytest.importorskip("ehtim")
    import warnings

    from ambient_imaging.operators import earth_rotation_uv, load_array

    lay = load_array("eht2017")
    cov = earth_rotation_uv(lay, 12.39, (-4, 4), n_times=8, frequency_hz=227e9)
    n, ps = 33, 5e-6 / 206264.806
    img = np.zeros((n, n))
    img[16, 21] = 1.0  # 5 px east (operator layout: east along +column)
    vis = simulate_observation(img, ps, cov, 1e-4, seed=0, ra_deg=187.7, layout=lay)
    write_uvfits(tmp_path / "east.uvfits", vis)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = eh.obsdata.load_uvfits(str(tmp_path / "east.uvfits"))
        arr = np.zeros((n, n))
        arr[16, 11] = 1.0  # ehtim arrays: column 0 is east, row 0 north
        im = eh.image.Image(arr, ps, obs.ra, obs.dec, rf=obs.rf, source=obs.source,
                            pulse=eh.observing.pulses.deltaPulse2D)
        model = im.observe_same_nonoise(obs, ttype="direct").data["vis"]
    data = obs.data["vis"]
    assert len(data) == len(vis)
    assert np.median(np.abs(np.angle(data * np.conj(model)))) < 1e-3
    assert np.median(np.abs(np.angle(data * model))) > 0.5  # the mirrored convention would disagree
