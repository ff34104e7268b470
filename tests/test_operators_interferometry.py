"""Interferometry operators: NUFFT accuracy, adjoints, gridding, subsampling, array layouts."""

import math

import numpy as np
import pytest
import torch

from ambient_imaging.operators import (
    ArrayLayout,
    GaussianNoise,
    GriddedInterferometer,
    Interferometer,
    earth_rotation_uv,
    list_arrays,
    load_array,
    nufft2d_type1,
    nufft2d_type2,
    stack,
)
from ambient_imaging.operators.nufft import direct_dft2d, direct_dft2d_adjoint
from ambient_imaging.operators.testing import dot_product_test
from ambient_imaging.operators.uvcoverage import read_array_file

PIX = 1e-6  # pixel scale (radians) used by the synthetic cases; Nyquist |u| = 5e5


def _rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _uv(m, batch=None, seed=0, extent=0.5):
    g = torch.Generator().manual_seed(seed)
    shape = (m, 2) if batch is None else (batch, m, 2)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * extent / PIX


# ------------------------------------------------------------------ NUFFT vs direct DFT
@pytest.mark.parametrize("backend", ["torch", "finufft"])
@pytest.mark.parametrize("shape", [(32, 32), (17, 24)])
def test_nufft_matches_direct_dft(backend, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn((2, *shape), generator=g, dtype=torch.complex128)
    pts = torch.rand((2, 300, 2), generator=g, dtype=torch.float64) - 0.5
    pts[0, :4] = torch.tensor([[0.5, -0.5], [1.3, -2.2], [0.0, 0.0], [-0.5, 0.25]], dtype=torch.float64)
    v = nufft2d_type2(x, pts, backend=backend)
    assert _rel(v, direct_dft2d(x, pts)) < 1e-6
    c = torch.randn((2, 300), generator=g, dtype=torch.complex128)
    assert _rel(nufft2d_type1(c, pts, shape, backend=backend), direct_dft2d_adjoint(c, pts, shape)) < 1e-6
    # single precision: looser bound
    v32 = nufft2d_type2(x.to(torch.complex64), pts.float(), backend=backend)
    assert v32.dtype == torch.complex64
    assert _rel(v32.to(torch.complex128), direct_dft2d(x, pts)) < 5e-5


def test_finufft_runs_small_problems_on_one_thread_and_large_ones_threaded_with_the_same_result():
    from ambient_imaging.operators import nufft as nu

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert nu._finufft_threads(5_000) == 1  # EHT-sized: thread start-up would cost more than the transform
        assert nu._finufft_threads(nu.FINUFFT_SERIAL_POINTS) == 2  # large: torch's intra-op thread count
        torch.set_num_threads(1)
        assert nu._finufft_threads(10 * nu.FINUFFT_SERIAL_POINTS) == 1
    finally:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(5)
    x = torch.randn((1, 12, 10), generator=g, dtype=torch.complex128)
    pts = torch.rand((nu.FINUFFT_SERIAL_POINTS + 10, 2), generator=g, dtype=torch.float64) - 0.5
    assert _rel(nufft2d_type2(x, pts, backend="finufft"), direct_dft2d(x, pts)) < 1e-6
    c = torch.randn((1, pts.shape[0]), generator=g, dtype=torch.complex128)
    assert _rel(nufft2d_type1(c, pts, (12, 10), backend="finufft"), direct_dft2d_adjoint(c, pts, (12, 10))) < 1e-6


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_finufft_plans_are_made_once_and_give_the_one_shot_result(dtype):
    """Cached finufft plans (one setpts, many executes): the same numbers as finufft's one-shot calls, for
    batches of 1 and 3, both types; copies and pickles start without plans; a plan for other points refused."""
    import copy
    import pickle

    from ambient_imaging.operators.nufft import FinufftPlans

    rdt = torch.float32 if dtype == torch.complex64 else torch.float64
    tol = 1e-5 if dtype == torch.complex64 else 1e-11
    g = torch.Generator().manual_seed(7)
    pts = (torch.rand((300, 2), generator=g, dtype=torch.float64) - 0.5).to(rdt)
    eps = 1e-6 if dtype == torch.complex64 else 1e-12
    plans = FinufftPlans((16, 12), pts, eps)
    for b in (1, 3, 1):
        x = torch.randn((b, 16, 12), generator=g, dtype=dtype)
        c = torch.randn((b, 300), generator=g, dtype=dtype)
        assert _rel(nufft2d_type2(x, pts, eps, "finufft", plans), nufft2d_type2(x, pts, eps, "finufft")) < tol
        assert _rel(nufft2d_type1(c, pts, (16, 12), eps, "finufft", plans),
                    nufft2d_type1(c, pts, (16, 12), eps, "finufft")) < tol
    assert len(plans._plans) == 4  # (type 1, type 2) x (batch 1, batch 3)
    for other in (copy.deepcopy(plans), pickle.loads(pickle.dumps(plans))):
        assert other._plans == {} and _rel(nufft2d_type2(x, pts, eps, "finufft", other),
                                           nufft2d_type2(x, pts, eps, "finufft")) < tol
    with pytest.raises(ValueError, match="finufft plans were built for"):
        nufft2d_type2(x, pts[:200], eps, "finufft", plans)
    op = Interferometer(pts.to(torch.float64) * 1e9, (16, 12), 1e-9 / 16, backend="finufft")
    op.forward(torch.randn((2, 1, 16, 12), generator=g, dtype=torch.float64))
    assert any(isinstance(p, FinufftPlans) for p in op._plans.values())  # the operator keeps its plans


def test_nufft_double_is_near_machine_precision_and_shared_points_batch():
    g = torch.Generator().manual_seed(2)
    x = torch.randn((3, 32, 32), generator=g, dtype=torch.float64)  # real input is promoted
    pts = torch.rand((200, 2), generator=g, dtype=torch.float64) - 0.5
    v = nufft2d_type2(x, pts)
    assert v.shape == (3, 200) and v.dtype == torch.complex128
    assert _rel(v, direct_dft2d(x, pts)) < 1e-10


def test_nufft_gradcheck():
    g = torch.Generator().manual_seed(3)
    pts = torch.rand((1, 7, 2), generator=g, dtype=torch.float64) - 0.5
    x = torch.randn((1, 5, 6), generator=g, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: nufft2d_type2(z, pts), (x,))
    c = torch.randn((1, 7), generator=g, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: nufft2d_type1(z, pts, (5, 6)), (c,))
    xr = torch.randn((1, 5, 6), generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: nufft2d_type2(z, pts, backend="finufft"), (xr,))


def test_nufft_bad_inputs():
    x = torch.zeros(1, 8, 8)
    with pytest.raises(ValueError, match="points must have shape"):
        nufft2d_type2(x, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        nufft2d_type2(x, torch.full((5, 2), math.nan))
    with pytest.raises(ValueError, match="backend"):
        nufft2d_type2(x, torch.zeros(5, 2), backend="cufinufft")
    with pytest.raises(ValueError, match="eps"):
        nufft2d_type2(x, torch.zeros(5, 2), eps=2.0)


# ------------------------------------------------------------------ Interferometer
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_interferometer_dot_product_real(dtype, tol):
    uv = _uv(150, batch=2)
    mask = torch.rand(2, 150, generator=torch.Generator().manual_seed(4)) > 0.2
    op = Interferometer(uv, (24, 20), PIX, noise_sigma=0.1, mask=mask)
    assert dot_product_test(op, (2, 1, 24, 20), dtype) < tol
    op_f = Interferometer(uv, (24, 20), PIX, mask=mask, backend="finufft")
    assert dot_product_test(op_f, (2, 1, 24, 20), dtype) < tol


@pytest.mark.parametrize("dtype,tol", [(torch.complex128, 1e-10), (torch.complex64, 1e-5)])
def test_interferometer_dot_product_complex(dtype, tol):
    op = Interferometer(_uv(120), (16, 16), PIX, real_image=False)
    assert dot_product_test(op, (3, 1, 16, 16), dtype) < tol


def test_interferometer_composition_and_scaling():
    op = Interferometer(_uv(100), (16, 16), PIX)
    comp = op @ GaussianNoise(0.0)
    assert dot_product_test(comp, (2, 1, 16, 16), torch.float64) < 1e-10
    assert dot_product_test(2.5 * op, (2, 1, 16, 16), torch.float64) < 1e-10


def test_interferometer_matches_direct_dft_and_real_adjoint():
    uv = _uv(200, seed=5)
    op = Interferometer(uv, (20, 20), PIX)
    x = torch.randn(1, 1, 20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    # kernel exp(+2πi u·l): the NUFFT's type 2 (exp(-2πi f·n)) at f = -u Δ
    assert _rel(op(x), direct_dft2d(x[:, 0], -uv * PIX)) < 1e-10
    y = op(x)
    aty = op.adjoint(y)
    assert not aty.is_complex() and aty.shape == (1, 1, 20, 20)


def test_point_source_and_dirty_image():
    """A unit point source at the phase centre has V = 1 everywhere; dirty-image peak 1 there."""
    op = Interferometer(_uv(64), (16, 16), PIX, noise_sigma=torch.rand(1, 64, dtype=torch.float64) + 0.5)
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[0, 0, 8, 8] = 1.0
    y = op(x)
    assert torch.allclose(y, torch.ones_like(y), atol=1e-10)
    dirty = op.measurements_to_image(y)
    assert abs(float(dirty[0, 0, 8, 8]) - 1.0) < 1e-10
    assert float(dirty.abs().max()) <= 1.0 + 1e-10
    # a shifted source: l = +1 pixel (east) → phase exp(+2πi u Δ) (ehtim / UVFITS convention)
    x2 = torch.zeros_like(x)
    x2[0, 0, 8, 9] = 1.0
    expected = torch.exp(2j * math.pi * op.uv[0, :, 0] * PIX)
    assert torch.allclose(op(x2)[0], expected, atol=1e-10)


def test_weights_noise_and_restrict():
    w = torch.tensor([[4.0, 0.0, 1.0, 0.25]], dtype=torch.float64)
    op = Interferometer(_uv(4), (8, 8), PIX, weights=w)
    assert op.mask.tolist() == [[True, False, True, True]]
    assert torch.allclose(op.noise_sigma[0, [0, 2, 3]], torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    y = op.measure(torch.zeros(1, 1, 8, 8, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    assert y[0, 1] == 0 and (y[0, [0, 2, 3]] != 0).all()
    assert torch.equal(op.restrict(torch.ones(1, 4, dtype=torch.complex128))[0].real, op.mask[0].double())
    with pytest.raises(ValueError, match="not both"):
        Interferometer(_uv(4), (8, 8), PIX, noise_sigma=1.0, weights=w)


def test_noise_statistics_per_visibility():
    sigma = torch.full((1, 4000), 0.3, dtype=torch.float64)
    op = Interferometer(_uv(4000), (8, 8), PIX, noise_sigma=sigma)
    y = op.measure(torch.zeros(1, 1, 8, 8, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    assert abs(float((y.abs() ** 2).mean()) - 0.09) < 0.09 * 0.1


def test_subsample_keeps_subset_and_protected_shortest():
    uv = _uv(1000, batch=2, seed=7)
    mask = torch.ones(2, 1000, dtype=torch.bool)
    mask[:, 900:] = False  # padding
    op = Interferometer(uv, (16, 16), PIX, mask=mask, protect_shortest=50)
    keep = op.default_keep()
    assert keep.shape == (2, 1000) and keep.sum(1).tolist() == [50, 50]
    r = uv.norm(dim=-1)
    for b in range(2):
        kept_r = r[b][keep[b]]
        other_r = r[b][mask[b] & ~keep[b]]
        assert kept_r.max() <= other_r.min()
        assert not keep[b, 900:].any()
    sub = op.subsample(0.6, generator=torch.Generator().manual_seed(0))
    assert not (sub.mask & ~op.mask).any()  # a subset
    assert (sub.mask | ~keep).all()  # protected rows survive
    frac = (sub.mask & ~keep).sum() / (op.mask & ~keep).sum()
    assert abs(float(frac) - 0.4) < 0.05
    frac_op = Interferometer(uv, (16, 16), PIX, mask=mask, protect_shortest=0.1)
    assert frac_op.default_keep().sum(1).tolist() == [90, 90]
    assert Interferometer(uv, (16, 16), PIX).default_keep() is None
    assert dot_product_test(sub, (2, 1, 16, 16), torch.float64) < 1e-10


def test_mask_channels_density():
    uv = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0 / (16 * PIX), 0.0]], dtype=torch.float64)
    op = Interferometer(uv, (16, 16), PIX)
    ch = op.mask_channels()
    assert ch.shape == (1, 1, 16, 16) and float(ch.max()) == 1.0
    # origin has 2 (+2 mirrored) hits, u = 1 cell has 1 and its mirror 1
    assert float(ch[0, 0, 8, 8]) == 1.0
    assert abs(float(ch[0, 0, 8, 9]) - math.log(2) / math.log(5)) < 1e-6
    assert abs(float(ch[0, 0, 8, 7]) - math.log(2) / math.log(5)) < 1e-6
    assert int((ch > 0).sum()) == 3


# ------------------------------------------------------------------ gridded path
def _on_grid_uv(h, w, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    ku = torch.randint(-(w // 2), w - w // 2, (n,), generator=g)
    kv = torch.randint(-(h // 2), h - h // 2, (n,), generator=g)
    return torch.stack([ku.double() / (w * PIX), kv.double() / (h * PIX)], dim=1)


@pytest.mark.parametrize("shape", [(16, 16), (15, 18)])
def test_gridded_equals_nufft_on_grid_points(shape):
    h, w = shape
    uv = _on_grid_uv(h, w, 60)
    op = Interferometer(uv, shape, PIX)
    gop = op.to_gridded()
    x = torch.randn(2, 1, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    vis = op(x)
    grid = gop(x)
    row, col = op.uv_cells()
    assert _rel(grid[:, 0, row[0], col[0]], vis) < 1e-10
    assert dot_product_test(gop, (2, 1, h, w), torch.float64) < 1e-10
    assert dot_product_test(gop, (2, 1, h, w), torch.float32) < 1e-5
    gc = GriddedInterferometer(gop.mask, PIX, real_image=False)
    assert dot_product_test(gc, (2, 1, h, w), torch.complex128) < 1e-10
    # the uv coordinates of the cells are the ones the NUFFT sees
    assert torch.allclose(gop.uv_grid()[row[0], col[0]], uv)


def test_to_gridded_noise_averaging_and_conjugates():
    cell = 1.0 / (16 * PIX)
    uv = torch.tensor([[cell, 0.0], [cell * 1.2, 0.0], [0.0, 2 * cell]], dtype=torch.float64)
    op = Interferometer(uv, (16, 16), PIX, noise_sigma=0.4)
    gop = op.to_gridded()
    assert int(gop.mask.sum()) == 2
    assert abs(float(gop.noise_sigma[0, 0, 8, 9]) - 0.4 / math.sqrt(2)) < 1e-12
    assert abs(float(gop.noise_sigma[0, 0, 10, 8]) - 0.4) < 1e-12
    gconj = op.to_gridded(include_conjugate=True)
    assert int(gconj.mask.sum()) == 4 and bool(gconj.mask[0, 0, 8, 7]) and bool(gconj.mask[0, 0, 6, 8])
    assert abs(float(gconj.noise_sigma[0, 0, 8, 7]) - 0.4 / math.sqrt(2)) < 1e-12
    with pytest.raises(ValueError, match="Nyquist"):
        Interferometer(torch.tensor([[0.6 / PIX, 0.0]]), (16, 16), PIX).to_gridded()


# ------------------------------------------------------------------ stacking, indexing, errors
def test_stack_and_index():
    a = Interferometer(_uv(50, seed=1), (8, 8), PIX, noise_sigma=0.1)
    b = Interferometer(_uv(50, seed=2), (8, 8), PIX, noise_sigma=torch.full((1, 50), 0.2, dtype=torch.float64))
    s = stack([a, b])
    assert s.batch_size == 2 and s.uv.shape == (2, 50, 2) and s.noise_sigma.shape == (2, 50)
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    y = s(x)
    assert _rel(y[1:], b(x[1:])) < 1e-12 and _rel(s[0](x[:1]), a(x[:1])) < 1e-12
    assert torch.allclose(s[1].noise_sigma, b.noise_sigma.double())
    with pytest.raises(ValueError, match="pad to a common M"):
        stack([a, Interferometer(_uv(40), (8, 8), PIX)])
    with pytest.raises(ValueError, match="share image_shape"):
        stack([a, Interferometer(_uv(50), (8, 8), 2 * PIX)])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"uv must have shape"):
        Interferometer(torch.zeros(10, 3), (8, 8), PIX)
    with pytest.raises(ValueError, match="NaN or inf"):
        Interferometer(torch.tensor([[math.inf, 0.0]]), (8, 8), PIX)
    with pytest.raises(ValueError, match="pixel_scale"):
        Interferometer(_uv(5), (8, 8), 0.0)
    with pytest.raises(ValueError, match="pixel_scale"):
        GriddedInterferometer(torch.ones(1, 1, 8, 8, dtype=torch.bool), -1.0)
    with pytest.raises(TypeError, match="uv must be a real floating"):
        Interferometer(torch.zeros(5, 2, dtype=torch.long), (8, 8), PIX)
    op = Interferometer(_uv(5), (8, 8), PIX)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        op(torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        op(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="visibilities of shape"):
        op.adjoint(torch.zeros(1, 6, dtype=torch.complex64))
    with pytest.raises(ValueError, match="mask must have shape"):
        Interferometer(_uv(5), (8, 8), PIX, mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="noise_sigma"):
        Interferometer(_uv(5), (8, 8), PIX, noise_sigma=-1.0)
    with pytest.raises(ValueError, match="batch size"):
        Interferometer(_uv(5, batch=2), (8, 8), PIX)(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="backend"):
        Interferometer(_uv(5), (8, 8), PIX, backend="nope")
    with pytest.raises(ValueError, match="protect_shortest"):
        Interferometer(_uv(5), (8, 8), PIX, protect_shortest=1.5)


# ------------------------------------------------------------------ array layouts & Earth rotation
EARTH_RADIUS = 6.371e6


@pytest.mark.parametrize("name,count", [("eht2017", 8), ("vlba", 10), ("vla_a", 27), ("vla_d", 27)])
def test_load_arrays(name, count):
    assert name in list_arrays()
    layout = load_array(name)
    assert isinstance(layout, ArrayLayout) and layout.n_stations == count
    r = np.linalg.norm(layout.xyz, axis=1)
    assert np.all(np.abs(r - EARTH_RADIUS) < 30e3)  # on the Earth's surface (polar radius 6357 km)
    assert "source:" in layout.source
    if name.startswith("vla"):
        assert np.allclose(layout.latitude_deg, 34.08, atol=0.25)
        assert np.allclose(layout.longitude_deg, -107.6, atol=0.25)
        assert np.all(layout.diameter_m == 25.0)
        assert (1e3 if name == "vla_d" else 30e3) < layout.max_baseline_m < (1.1e3 if name == "vla_d" else 40e3)
    if name == "eht2017":
        assert set(layout.stations) == {"ALMA", "APEX", "JCMT", "SMA", "SMT", "LMT", "PV", "SPT"}
        assert 1e7 < layout.max_baseline_m < 1.2e7
        assert layout.latitude_deg[layout.stations.index("SPT")] < -89.9


def test_load_array_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown array"):
        load_array("alma_cycle99")
    bad = tmp_path / "bad.csv"
    bad.write_text("# frame: ECEF\nstation, x_m, y_m, z_m\nA, 1, 2, x\n")
    with pytest.raises(ValueError, match=r"bad.csv:3"):
        read_array_file(bad)
    nofr = tmp_path / "noframe.csv"
    nofr.write_text("station, x_m, y_m, z_m\nA, 1, 2, 3\nB, 2, 3, 4\n")
    with pytest.raises(ValueError, match="frame"):
        read_array_file(nofr)
    enu = tmp_path / "enu.csv"
    enu.write_text(
        "# frame: ENU\n# latitude_deg: 0\n# longitude_deg: 0\nstation, e_m, n_m, u_m\nA, 0, 0, 0\nB, 100, 0, 0\n"
    )
    lay = read_array_file(enu)
    assert np.allclose(lay.xyz[1] - lay.xyz[0], [0.0, 100.0, 0.0], atol=1e-6)  # East at lon 0 is +Y


def test_earth_rotation_uv_sanity():
    layout = load_array("eht2017")
    freq = 230e9
    cov = earth_rotation_uv(layout, 12.39, (-6, 6), n_times=25, frequency_hz=freq, include_conjugate=True)
    m = cov.n_vis
    assert m % 2 == 0 and cov.uv.shape == (m, 2) and cov.pairs.shape == (m, 2)
    half = m // 2
    assert torch.equal(cov.uv[half:], -cov.uv[:half]) and cov.conjugate[half:].all()
    assert m < 2 * 25 * 28  # elevation limit removes some samples
    lam = 299_792_458.0 / freq
    assert float(cov.uv.norm(dim=1).max()) <= layout.max_baseline_m / lam * (1 + 1e-12)
    assert 0 < cov.nyquist_pixel_scale() < 1e-9
    # |(u, v, w)| = |B| / λ for every sample (a rotation)
    pairs, b = layout.baselines()
    lengths = dict(zip(map(tuple, pairs.tolist()), np.linalg.norm(b, axis=1) / lam, strict=True))
    uvw = torch.cat([cov.uv, cov.w[:, None]], 1).norm(dim=1)
    exp = torch.tensor([lengths[tuple(sorted(p))] for p in cov.pairs.tolist()], dtype=torch.float64)
    assert torch.allclose(uvw, exp, rtol=1e-10)


def test_north_pole_source_gives_circular_tracks():
    layout = load_array("vla_d")
    cov = earth_rotation_uv(layout, 90.0, (-12, 12), n_times=13, frequency_hz=1.4e9, elevation_limit_deg=0.0)
    assert cov.n_vis == 13 * 351  # always up at the VLA's latitude
    r = cov.uv.norm(dim=1)
    k = cov.pairs[:, 0] * 100 + cov.pairs[:, 1]
    for key in k.unique()[:20]:
        rr = r[k == key]
        assert float(rr.max() - rr.min()) <= 1e-9 * float(rr.max())
    # equatorial baseline length: |(Bx, By)| / λ
    pairs, b = layout.baselines()
    lam = 299_792_458.0 / 1.4e9
    assert torch.allclose(r[:351], torch.from_numpy(np.hypot(b[:, 0], b[:, 1]) / lam), rtol=1e-10)


def test_earth_rotation_uv_errors():
    layout = load_array("vlba")
    with pytest.raises(ValueError, match="declination"):
        earth_rotation_uv(layout, 100.0)
    with pytest.raises(TypeError, match="ArrayLayout"):
        earth_rotation_uv("vlba", 10.0)
    with pytest.raises(ValueError, match="frequency"):
        earth_rotation_uv(layout, 10.0, frequency_hz=-1.0)
    with pytest.raises(ValueError, match="hour_angle_range"):
        earth_rotation_uv(layout, 10.0, hour_angle_range_h=(3, -3))
    cov = earth_rotation_uv(layout, -89.0, elevation_limit_deg=10.0)  # never rises at the VLBA sites
    assert cov.n_vis == 0


def test_auto_backend_agrees_with_torch():
    op_auto = Interferometer(_uv(200), (16, 16), PIX)
    op_torch = Interferometer(_uv(200), (16, 16), PIX, backend="torch")
    assert op_auto.backend == "auto"
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    ya, yt = op_auto(x), op_torch(x)
    assert torch.linalg.vector_norm(ya - yt) / torch.linalg.vector_norm(yt) < 1e-10
    assert dot_product_test(op_auto, (2, 1, 16, 16), torch.float64) < 1e-10


def test_coverage_to_interferometer_end_to_end():
    cov = earth_rotation_uv(load_array("vla_d"), 40.0, (-4, 4), n_times=8, frequency_hz=1.4e9)
    pix = cov.nyquist_pixel_scale()
    op = Interferometer(cov.uv, (16, 16), pix)
    assert dot_product_test(op, (1, 1, 16, 16), torch.float64) < 1e-10
    gop = op.to_gridded(include_conjugate=True)
    assert gop.mask.any() and dot_product_test(gop, (1, 1, 16, 16), torch.float64) < 1e-10


def test_plan_cache_shared_by_subsample_and_reset_by_new_uv():
    op = Interferometer(_uv(80), (12, 12), PIX, protect_shortest=5, backend="torch")
    x = torch.randn(1, 1, 12, 12, dtype=torch.float64)
    y = op(x)
    assert len(op._plans) == 1
    sub = op.subsample(0.5, generator=torch.Generator().manual_seed(0))
    assert sub._plans is op._plans
    assert torch.equal(sub(x), y * sub.mask)
    moved = stack([op, op])
    assert moved._plans is not op._plans
    assert _rel(moved(torch.cat([x, x]))[1:], y) < 1e-12


def test_nufft_plan_mismatch_is_an_error():
    from ambient_imaging.operators.nufft import NUFFTPlan

    pts = torch.rand(1, 10, 2, dtype=torch.float64) - 0.5
    plan = NUFFTPlan((8, 8), pts, 1e-12)
    x = torch.randn(1, 8, 8, dtype=torch.complex128)
    assert _rel(nufft2d_type2(x, pts, plan=plan), direct_dft2d(x, pts)) < 1e-10
    with pytest.raises(ValueError, match="plan was built"):
        nufft2d_type2(torch.randn(1, 8, 9, dtype=torch.complex128), pts, plan=plan)


def test_gradient_through_interferometer():
    op = Interferometer(_uv(30), (6, 6), PIX)
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    y = op(x.detach()) + 0.1

    def loss(z):
        return (op(z) - y).abs().pow(2).sum()

    assert torch.autograd.gradcheck(loss, (x,))
    # the gradient of ||A x - y||^2 is 2 A^H (A x - y)
    (grad,) = torch.autograd.grad(loss(x), x)
    assert _rel(grad, 2 * op.adjoint(op(x.detach()) - y)) < 1e-10


def test_device_mismatch_and_coverage_helper():
    op = Interferometer(_uv(5), (8, 8), PIX)
    with pytest.raises(ValueError, match="is on meta but the operator is on cpu"):
        op(torch.zeros(1, 1, 8, 8, device="meta"))
    cov = earth_rotation_uv(load_array("vla_d"), 60.0, (-1, 1), n_times=3, frequency_hz=1.4e9)
    op = cov.interferometer((8, 8), noise_sigma=0.1)
    assert op.n_vis == cov.n_vis and op.pixel_scale == cov.nyquist_pixel_scale()


def test_baseline_sign_is_ant1_minus_ant2():
    """Two stations on the equator at longitude 0: station 0 east of station 1, so the baseline
    ant1 − ant2 points east and u > 0 at transit (UVFITS / pyuvdata / ehtim convention)."""
    from ambient_imaging.operators.uvcoverage import ArrayLayout

    r = 6378137.0
    xyz = np.array([[r, 1000.0, 0.0], [r, 0.0, 0.0]])  # +Y is east at longitude 0
    lay = ArrayLayout("pair", ("E", "W"), xyz, np.full(2, np.nan), np.full(2, np.nan))
    cov = earth_rotation_uv(lay, 0.0, (0.0, 0.0), n_times=1, frequency_hz=299_792_458.0, elevation_limit_deg=0.0)
    assert cov.pairs.tolist() == [[0, 1]]
    assert float(cov.uv[0, 0]) == pytest.approx(1000.0, rel=1e-6) and abs(float(cov.uv[0, 1])) < 1e-6
