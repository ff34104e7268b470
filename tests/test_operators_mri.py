"""MultiCoilMRI, k-space masks and coil maps: adjointness, sigpy agreement, subsampling, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sigpy as sp
import torch

from ambient_imaging.operators import (
    MASK_KINDS,
    GaussianNoise,
    MultiCoilMRI,
    birdcage_maps,
    espirit_maps,
    fft2c,
    ifft2c,
    mask_presets,
    mri_mask,
    rss,
    stack,
)
from ambient_imaging.operators.testing import dot_product_test


def _maps(b: int, nc: int, h: int, w: int, dtype=torch.complex128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rdt = torch.float64 if dtype == torch.complex128 else torch.float32
    re = torch.randn(b, nc, h, w, generator=g, dtype=rdt)
    return torch.complex(re, torch.randn(b, nc, h, w, generator=g, dtype=rdt))


def _cplx(shape, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype))


# ------------------------------------------------------------------------------- FFT
@pytest.mark.parametrize("shape", [(8, 8), (7, 10), (9, 5)])
def test_fft2c_orthonormal_adjoint_and_centred(shape):
    x, y = _cplx((2, 3, *shape), 1), _cplx((2, 3, *shape), 2)
    lhs = torch.sum(torch.conj(fft2c(x)) * y)
    rhs = torch.sum(torch.conj(x) * ifft2c(y))
    assert abs(lhs - rhs) < 1e-12 * x.abs().sum() * y.abs().sum() / x.numel()
    torch.testing.assert_close(ifft2c(fft2c(x)), x, rtol=0, atol=1e-12)
    # a constant image puts all its energy at the centre pixel (H//2, W//2), scaled by sqrt(HW)
    k = fft2c(torch.ones(shape, dtype=torch.complex128))
    h, w = shape
    assert abs(k[h // 2, w // 2] - math.sqrt(h * w)) < 1e-12
    assert float(k.abs().sum() - k[h // 2, w // 2].abs()) < 1e-10
    # agrees with sigpy's centred orthonormal FFT
    np.testing.assert_allclose(fft2c(x).numpy(), sp.fft(x.numpy(), axes=(-2, -1), center=True), atol=1e-12)


# ------------------------------------------------------------------------------- adjointness
@pytest.mark.parametrize("h,w", [(16, 16), (15, 12), (12, 9)])
@pytest.mark.parametrize("kind", ["random", "poisson"])
def test_dot_product_double(h, w, kind):
    b = 3
    mask, acs = mri_mask((h, w), 2, center_lines=2, kind=kind, batch=b, seed=1)
    op = MultiCoilMRI(_maps(b, 4, h, w), mask, acs=acs)
    assert op.lines == (kind != "poisson")
    assert dot_product_test(op, (b, 1, h, w), torch.complex128) < 1e-10
    assert dot_product_test(op, (b, 1, h, w), torch.float64) < 1e-10  # real images are promoted


def test_dot_product_single_precision_and_mixed_precision_params():
    b, h, w = 2, 16, 16
    mask, acs = mri_mask((h, w), 4, center_lines=4, batch=b, seed=0)
    op64 = MultiCoilMRI(_maps(b, 3, h, w, torch.complex64), mask, acs=acs)
    assert dot_product_test(op64, (b, 1, h, w), torch.complex64) < 1e-5
    assert dot_product_test(op64, (b, 1, h, w), torch.complex128) < 1e-6  # params cast up (float32 maps)
    op128 = MultiCoilMRI(_maps(b, 3, h, w), mask)
    x = _cplx((b, 1, h, w), dtype=torch.float32)
    assert op128(x).dtype == torch.complex64 and op128.adjoint(op128(x)).dtype == torch.complex64
    assert dot_product_test(op128, (b, 1, h, w), torch.complex64) < 1e-5


def test_dot_product_broadcast_line_mask_and_compositions():
    b, h, w = 3, 12, 16
    lines = torch.zeros(1, w, dtype=torch.bool)
    lines[0, ::3] = True
    op = MultiCoilMRI(_maps(b, 2, h, w), lines)  # one (1, W) line mask for 3 map sets
    assert op.batch_size == 3 and op.mask.shape == (1, h, w)
    assert dot_product_test(op, (b, 1, h, w)) < 1e-10
    assert dot_product_test(2.0 * op, (b, 1, h, w)) < 1e-10
    noisy = GaussianNoise(0.1) @ op
    assert dot_product_test(noisy, (b, 1, h, w)) < 1e-10
    assert noisy.noise_sigma == 0.1
    single = MultiCoilMRI.single_coil(lines, height=h)
    assert single.n_coils == 1 and dot_product_test(single, (1, 1, h, w)) < 1e-10
    # single coil with unit maps is the masked centred FFT
    x = _cplx((1, 1, h, w))
    torch.testing.assert_close(single.to(dtype=torch.complex128)(x), fft2c(x) * lines[:, None, None, :])


@pytest.mark.parametrize("h,w", [(16, 16), (11, 14)])
def test_normal_equals_adjoint_forward(h, w):
    b = 2
    mask, _ = mri_mask((h, w), 2, center_lines=2, kind="equispaced", batch=b, seed=3)
    op = MultiCoilMRI(_maps(b, 3, h, w), mask)
    x = _cplx((b, 1, h, w))
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=0, atol=1e-12)
    # forward is exactly M ⊙ F(S x) with the textbook shifts
    torch.testing.assert_close(op(x), fft2c(op.sens_maps * x) * mask[:, None], rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------- sigpy agreement
@pytest.mark.parametrize("kind", ["random", "poisson"])
def test_agrees_with_sigpy_linops(kind):
    nc, h, w = 4, 16, 14
    maps = _maps(1, nc, h, w)[0]
    mask, _ = mri_mask((h, w), 2, center_lines=2, kind=kind, seed=5)
    op = MultiCoilMRI(maps[None], mask)
    s_maps = sp.linop.Multiply((1, h, w), maps.numpy())
    s_fft = sp.linop.FFT((nc, h, w), axes=(-2, -1), center=True)
    s_mask = sp.linop.Multiply((nc, h, w), mask[0].numpy().astype(np.float64))
    a = s_mask * s_fft * s_maps
    x = _cplx((1, 1, h, w))
    y = op.restrict(_cplx((1, nc, h, w), seed=7))
    np.testing.assert_allclose(op(x)[0].numpy(), a(x[0].numpy()), rtol=0, atol=1e-12)
    np.testing.assert_allclose(op.adjoint(y)[0].numpy(), a.H(y[0].numpy()), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------- autograd
@pytest.mark.parametrize("h,w", [(6, 4), (5, 3)])  # even: checkerboard path; odd: shift path
def test_gradcheck_forward_adjoint(h, w):
    mask = torch.tensor([[True, False, True, True]])[:, :w]
    maps = _maps(1, 2, h, w).requires_grad_(True)
    x = _cplx((1, 1, h, w)).requires_grad_(True)
    y = _cplx((1, 2, h, w), seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, v: MultiCoilMRI(s, mask)(v), (maps, x))
    assert torch.autograd.gradcheck(lambda s, v: MultiCoilMRI(s, mask).adjoint(v), (maps, y))
    assert torch.autograd.gradcheck(lambda v: MultiCoilMRI(maps.detach(), mask).normal(v), (x,))


# ------------------------------------------------------------------------------- rows / subsample
def test_line_mask_rows_and_subsample():
    b, h, w, delta = 4, 8, 64, 0.3
    mask, acs = mri_mask((h, w), 2, center_lines=6, batch=b, seed=2)
    op = MultiCoilMRI(_maps(1, 2, h, w), mask, acs=acs)
    rows = op.row_mask()
    assert rows.shape == (b, w) and torch.equal(rows, mask[:, 0])
    assert op.default_keep().shape == (b, w)
    g = torch.Generator().manual_seed(0)
    kept, total = 0, 0
    n_draws = 200
    for _ in range(n_draws):
        sub = op.subsample(delta, g)
        m = sub.mask
        assert torch.equal(m, m[:, :1].expand_as(m))  # whole lines
        assert not torch.any(m & ~mask)  # a subset of A's lines
        assert torch.all(m[:, 0][acs[:, 0]])  # ACS always kept
        free = rows & ~acs[:, 0]
        kept += int((sub.row_mask() & free).sum())
        total += int(free.sum())
    p = kept / total
    assert abs(p - (1 - delta)) < 4 * math.sqrt(delta * (1 - delta) / total)
    # keep=False protects nothing
    sub = op.subsample(0.99, torch.Generator().manual_seed(1), keep=False)
    assert int(sub.row_mask()[acs[:, 0]].sum()) < int(acs[:, 0].sum())


def test_lines_override_getitem_and_to():
    h, w = 8, 10
    mask, acs = mri_mask((h, w), 2, center_lines=2, batch=3, seed=0)
    op = MultiCoilMRI(_maps(3, 2, h, w), mask, acs=acs, lines=False)  # rows are points even for a line mask
    assert not op.lines and op.row_mask().shape == (3, h, w) and op.default_keep().shape == (3, h, w)
    sub = op[torch.tensor([0, 2])]
    assert sub.batch_size == 2 and torch.equal(sub.mask, mask[[0, 2]])
    assert op.to(dtype=torch.complex64).sens_maps.dtype == torch.complex64
    x = _cplx((2, 1, h, w))
    torch.testing.assert_close(sub(x), op(torch.cat([x[:1], x[:1], x[1:]]))[[0, 2]])
    with pytest.raises(ValueError, match="not constant along H"):
        MultiCoilMRI(_maps(1, 2, h, w), mri_mask((h, w), 2, center_lines=2, kind="poisson", seed=0)[0], lines=True)
    with pytest.raises(ValueError, match="needs height=H"):
        MultiCoilMRI.single_coil(mask[:, 0])


def test_poisson_mask_rows_are_points():
    h, w = 24, 24
    mask, acs = mri_mask((h, w), 3, center_lines=4, kind="poisson", batch=2, seed=0)
    op = MultiCoilMRI(_maps(2, 2, h, w), mask, acs=acs)
    assert not op.lines and op.row_mask().shape == (2, h, w)
    sub = op.subsample(0.5, torch.Generator().manual_seed(0))
    assert sub.row_mask().shape == (2, h, w)
    assert not torch.any(sub.mask & ~mask) and torch.all(sub.mask[acs])
    assert int(sub.mask.sum()) < int(mask.sum())
    assert not torch.equal(sub.mask, sub.mask[:, :1].expand_as(sub.mask))  # not whole lines
    assert dot_product_test(sub, (2, 1, h, w)) < 1e-10


def test_restrict_mask_channels_noise_and_stack():
    h, w = 8, 10
    m1, a1 = mri_mask((h, w), 2, center_lines=2, seed=0)
    m2, a2 = mri_mask((h, w), 2, center_lines=2, seed=1)
    op1 = MultiCoilMRI(_maps(1, 3, h, w, seed=1), m1, noise_sigma=0.1, acs=a1)
    op2 = MultiCoilMRI(_maps(1, 3, h, w, seed=2), m2, noise_sigma=0.2, acs=a2)
    op = stack([op1, op2])
    assert op.batch_size == 2 and op.lines and op.acs.shape == (2, w)
    torch.testing.assert_close(op.noise_sigma, torch.tensor([0.1, 0.2], dtype=torch.float64))
    mc = op.mask_channels()
    assert mc.shape == (2, 1, h, w) and mc.dtype == torch.float32
    y = op.measure(_cplx((2, 1, h, w)), torch.Generator().manual_seed(0))
    assert torch.all(y[~op.mask[:, None].expand_as(y)] == 0)
    # per-sample noise level: E|ε|² = σ² on measured entries
    big = MultiCoilMRI(torch.ones(2, 1, 64, 64, dtype=torch.complex128), torch.ones(1, 64, 64),
                       noise_sigma=torch.tensor([0.5, 2.0]))
    eps = big.measure(torch.zeros(2, 1, 64, 64, dtype=torch.complex128), torch.Generator().manual_seed(1))
    var = eps.abs().pow(2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(var, torch.tensor([0.25, 4.0], dtype=torch.float64), rtol=0.1, atol=0)
    torch.testing.assert_close(op[1](_cplx((1, 1, h, w))), op2(_cplx((1, 1, h, w))))
    with pytest.raises(ValueError, match="coil count"):
        stack([op1, MultiCoilMRI(_maps(1, 2, h, w), m1)])


# ------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("kind,r", [("random", 4), ("equispaced_fraction", 4), ("variable_density", 4), ("random", 8)])
def test_mri_mask_acceleration_and_acs(kind, r):
    h, w, n = 4, 320, 64
    cf = 0.08 if r == 4 else 0.04
    mask, acs = mri_mask((h, w), r, center_fraction=cf, kind=kind, batch=n, seed=0)
    assert mask.shape == acs.shape == (n, h, w) and mask.dtype == acs.dtype == torch.bool
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # 1-D: constant along H
    c = round(w * cf)
    assert torch.all(acs.sum(-1) == c) and torch.all(mask[acs])
    cols = torch.nonzero(acs[0, 0]).flatten()
    assert int(cols[0]) == (w - c + 1) // 2 and int(cols[-1]) == (w - c + 1) // 2 + c - 1  # fastMRI centre
    frac = mask[:, 0].double().mean(dim=1)
    # random: Binomial(W - c, p) per mask, so the mean over n masks has std sqrt(p(1-p)/(W-c)/n)
    p = (w / r - c) / (w - c)
    tol = 4 * math.sqrt(p * (1 - p) * (w - c) / n) / w + 1.5 / w
    assert abs(float(frac.mean()) - 1 / r) < tol
    if kind == "variable_density":
        assert torch.all(mask[:, 0].sum(-1) == round(w / r))
    if kind == "equispaced_fraction":
        outside = torch.nonzero(mask[0, 0] & ~acs[0, 0]).flatten().double()
        gaps = torch.diff(outside)
        spacing = r * (c - w) / (c * r - w)
        big = gaps[gaps > 1.5]  # gaps across the ACS block are larger; the others are ~spacing
        assert torch.all((big >= math.floor(spacing)) & ((big <= math.ceil(spacing)) | (big > 2 * spacing)))
        assert abs(float(mask[:, 0].sum(-1).double().mean()) - w / r) <= 2


def test_poisson_mask_acceleration_and_calibration():
    h, w = 48, 40
    mask, acs = mri_mask((h, w), 4, center_fraction=0.1, kind="poisson", batch=3, seed=0)
    assert mask.shape == acs.shape == (3, h, w)
    assert int(acs[0].sum()) == 5 * 4 and torch.all(mask[acs])
    assert torch.all(acs[:, h // 2, w // 2])
    accel = h * w / mask.flatten(1).sum(1).double()
    assert torch.all((accel - 4).abs() < 0.1)  # sigpy's tolerance
    assert not torch.equal(mask[0], mask[1])


def test_mri_mask_seed_and_generator_reproducible():
    a, _ = mri_mask((8, 32), 4, seed=3, batch=2)
    b, _ = mri_mask((8, 32), 4, generator=torch.Generator().manual_seed(3), batch=2)
    assert torch.equal(a, b)
    assert set(mask_presets()) >= {"fastmri_knee_4x", "fastmri_brain_8x"}
    preset = {k: v for k, v in mask_presets()["fastmri_knee_8x"].items() if k != "description"}
    m, _ = mri_mask((4, 320), batch=16, seed=0, **preset)
    assert abs(float(m[:, 0].double().mean()) - 1 / 8) < 0.03


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"acceleration": 0.5}, "acceleration must be >= 1"),
        ({"acceleration": 4, "center_lines": 40}, "larger than the image"),
        ({"acceleration": 4, "center_fraction": 1.5}, "center_fraction must be in"),
        ({"acceleration": 4, "kind": "spiral"}, "valid kinds are random, equispaced, equispaced_fraction, magic"),
        ({"acceleration": 2.5, "kind": "equispaced"}, "needs an integer acceleration"),
        ({"acceleration": 4, "rng": np.random.RandomState(0), "seed": 1}, "not several"),
        ({"acceleration": 8, "center_lines": 8}, "exceed the W/R"),
        ({"acceleration": 4, "seed": 1, "generator": torch.Generator()}, "either generator or seed"),
        ({"acceleration": 4, "offset": -1, "kind": "equispaced"}, "offset must be >= 0"),
    ],
)
def test_mri_mask_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mri_mask((16, 32), **kwargs)
    assert set(MASK_KINDS) == {"random", "equispaced", "equispaced_fraction", "magic", "magic_fraction",
                               "variable_density", "poisson"}


# ------------------------------------------------------------------------------- errors
def test_operator_errors():
    h, w = 8, 10
    maps = _maps(1, 8, h, w)
    mask, _ = mri_mask((h, w), 2, center_lines=2, seed=0)
    op = MultiCoilMRI(maps, mask)
    with pytest.raises(ValueError, match=r"shape \(B, 1, 8, 10\), got \(1, 2, 8, 10\)"):
        op(_cplx((1, 2, h, w)))
    with pytest.raises(ValueError, match="expected 8 coils, got 4"):
        op.adjoint(_cplx((1, 4, h, w)))
    with pytest.raises(ValueError, match="does not match the coil maps' k-space size"):
        MultiCoilMRI(maps, torch.ones(1, h + 1, w, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not match the k-space width W=10"):
        MultiCoilMRI(maps, torch.ones(1, w + 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="sens_maps must be complex"):
        MultiCoilMRI(maps.real, mask)
    with pytest.raises(ValueError, match=r"sens_maps must have shape \(B, Nc, H, W\)"):
        MultiCoilMRI(maps[0], mask)
    with pytest.raises(ValueError, match="sens_maps hold 2 samples but mask holds 3"):
        MultiCoilMRI(_maps(2, 8, h, w), mask.expand(3, h, w))
    with pytest.raises(ValueError, match="acs must lie inside mask"):
        MultiCoilMRI(maps, mask, acs=~mask)
    with pytest.raises(ValueError, match="only 0 and 1"):
        MultiCoilMRI(maps, mask.double() * 2)
    with pytest.raises(ValueError, match="noise_sigma must be >= 0"):
        MultiCoilMRI(maps, mask, noise_sigma=-1.0)
    with pytest.raises(ValueError, match="batch size 2 but the operator holds 3"):
        MultiCoilMRI(_maps(3, 8, h, w), mask)(_cplx((2, 1, h, w)))
    with pytest.raises(ValueError, match="is on meta but the operator is on cpu"):
        op(_cplx((1, 1, h, w)).to("meta"))
    with pytest.raises(ValueError, match="mask is on meta but sens_maps are on cpu"):
        MultiCoilMRI(maps, mask.to("meta"))


# ------------------------------------------------------------------------------- coil maps
def test_espirit_recovers_birdcage_maps():
    nc, n = 8, 64
    truth = birdcage_maps(nc, (n, n), dtype=torch.complex128)
    img = torch.as_tensor(sp.shepp_logan((n, n))).to(torch.complex128)
    coil_imgs = truth * img
    k = fft2c(coil_imgs)
    mask, _ = mri_mask((n, n), 2, center_lines=24, seed=0)  # undersampled, ACS = 24 centre lines
    k_us = k * mask[0]
    maps = espirit_maps(k_us.to(torch.complex64), calib_width=24)
    assert maps.shape == (nc, n, n) and maps.dtype == torch.complex64
    from scipy import ndimage

    support = ndimage.binary_erosion(ndimage.binary_fill_holes(img.abs().numpy() > 1e-3), iterations=2)
    support = torch.from_numpy(support)
    maps = maps.to(torch.complex128)
    # (1) per pixel, ESPIRiT spans the true maps' direction: |<S_esp, S/|S|>| ≈ 1 (phase-free metric)
    cos = (maps.conj() * truth).sum(0).abs() / rss(truth, 0)
    assert float(cos[support].min()) > 0.995 and float(cos[support].mean()) > 0.999  # wrong maps (r=3): 0.94
    # (2) SENSE combination of the true coil images with ESPIRiT maps = RSS image (|S| |x|) within the
    # support up to the per-pixel phase of coil 0; and data consistency: the coil images lie in span(S_esp)
    combined = (maps.conj() * coil_imgs).sum(0)
    rel = (combined.abs() - rss(coil_imgs, 0))[support].norm() / rss(coil_imgs, 0)[support].norm()
    assert float(rel) < 1e-3
    resid = coil_imgs - maps * combined
    assert float(resid[:, support].norm() / coil_imgs[:, support].norm()) < 0.01


def test_espirit_batched_matches_single_slices():
    nc, n = 4, 32
    truth = birdcage_maps(nc, (n, n), dtype=torch.complex128)
    imgs = torch.stack([torch.as_tensor(sp.shepp_logan((n, n))), torch.as_tensor(sp.shepp_logan((n, n))).T])
    k = fft2c(truth[None] * imgs[:, None].to(torch.complex128)).to(torch.complex64)
    both = espirit_maps(k, calib_width=12, kernel_width=5)
    assert both.shape == (2, nc, n, n)
    torch.testing.assert_close(both[1], espirit_maps(k[1], calib_width=12, kernel_width=5))


def test_espirit_input_errors_and_rss():
    k = torch.zeros(4, 32, 32, dtype=torch.complex64)
    with pytest.raises(TypeError, match="must be complex"):
        espirit_maps(k.real)
    with pytest.raises(ValueError, match=r"must be \(Nc, H, W\) or \(B, Nc, H, W\)"):
        espirit_maps(k[0])
    with pytest.raises(ValueError, match="not fully sampled"):
        espirit_maps(k, calib_width=16)
    with pytest.raises(ValueError, match="calib_width=40 exceeds"):
        espirit_maps(k, calib_width=40)
    x = torch.tensor([[3.0 + 0j], [4j]])
    torch.testing.assert_close(rss(x, 0), torch.tensor([5.0]))


# ------------------------------------------------------------------------------- fastMRI mask kinds
def test_equispaced_is_fastmri_equispaced_mask_func():
    """``equispaced``: the centre plus every R-th column from the offset (fastMRI EquiSpacedMaskFunc)."""
    w, r, cf = 368, 4, 0.08
    c = round(w * cf)
    for off in range(r):
        m, acs = mri_mask((2, w), r, center_fraction=cf, kind="equispaced", offset=off)
        expect = np.zeros(w, dtype=bool)
        expect[off::r] = True
        pad = (w - c + 1) // 2
        expect[pad : pad + c] = True
        assert np.array_equal(m[0, 0].numpy(), expect) and int(acs[0, 0].sum()) == c
    # random offsets are in [0, R) and the true acceleration is below R (the centre adds lines)
    m, _ = mri_mask((1, w), 8, center_fraction=0.04, kind="equispaced", batch=16, seed=0)
    assert torch.all(w / m[:, 0].sum(-1) < 8)


def test_magic_mask_symmetric_offsets():
    w, r = 64, 4
    m, _ = mri_mask((1, w), r, center_lines=0, kind="magic", offset=0)
    lines = np.fft.ifftshift(m[0, 0].numpy())  # back to unshifted order: positive half first
    pos, neg = lines[: (w + 1) // 2], lines[(w + 1) // 2 :][::-1]
    assert np.array_equal(np.nonzero(pos)[0], np.arange(1, pos.size, r))
    assert np.array_equal(np.nonzero(neg)[0], np.arange(2, neg.size, r))
    mf, _ = mri_mask((1, 320), 4, center_fraction=0.08, kind="magic_fraction", batch=8, seed=1)
    assert torch.all((mf[:, 0].sum(-1) - 80).abs() <= 8)  # centre overlap: slightly under W/R


def test_numpy_randomstate_path_reproducible():
    a, _ = mri_mask((4, 96), 4, kind="random", rng=np.random.RandomState(5), batch=3)
    b, _ = mri_mask((4, 96), 4, kind="random", rng=np.random.RandomState(5), batch=3)
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])
    # the same draws as numpy's uniform in fastMRI's order
    u = np.random.RandomState(5).uniform(size=96)
    c = round(96 * 0.08)
    expect = u < (96 / 4 - c) / (96 - c)
    expect[(96 - c + 1) // 2 : (96 - c + 1) // 2 + c] = True
    assert np.array_equal(a[0, 0].numpy(), expect)


@pytest.mark.parametrize("kind", ["random", "equispaced", "equispaced_fraction", "magic", "magic_fraction"])
@pytest.mark.parametrize("cf,r", [(0.08, 4), (0.04, 8)])
def test_masks_equal_fastmri_package(kind, cf, r):
    """Same seed, same mask as fastMRI's create_mask_for_mask_type (only where the package is importable)."""
    subsample = pytest.importorskip("fastmri.data.subsample")
    for w in (368, 372, 33):
        for seed in range(3):
            ref, _ = subsample.create_mask_for_mask_type(kind, [cf], [r])((1, 640, w, 2), seed=seed)
            ours, _ = mri_mask((2, w), r, center_fraction=cf, kind=kind, rng=np.random.RandomState(seed))
            assert np.array_equal(ours[0, 0].numpy(), ref.numpy().reshape(-1) > 0), (kind, w, seed)
        func = subsample.create_mask_for_mask_type(kind, [cf], [r])
        func.rng.seed(11)
        seq = np.stack([func((1, 640, w, 2))[0].numpy().reshape(-1) > 0 for _ in range(3)])
        ours, _ = mri_mask((2, w), r, center_fraction=cf, kind=kind, rng=np.random.RandomState(11), batch=3)
        assert np.array_equal(ours[:, 0].numpy(), seq)


def test_apply_band_zeroes_padding():
    from ambient_imaging.operators import apply_band

    m, _ = mri_mask((2, 40), 2, center_lines=4, kind="equispaced", offset=0)
    out = apply_band(m, (5, 33))
    assert not out[..., :5].any() and not out[..., 33:].any() and torch.equal(out[..., 5:33], m[..., 5:33])
    assert isinstance(apply_band(m.numpy(), (5, 33)), np.ndarray)
    with pytest.raises(ValueError, match="not a column range"):
        apply_band(m, (30, 10))


def test_compress_coils_energy_and_lossless():
    from ambient_imaging.operators import coil_compression_matrix, compress_coils, rss

    g = np.random.default_rng(0)
    # 8 coils that are mixtures of 3 sources: 3 virtual coils keep all the energy
    src = g.standard_normal((2, 3, 12, 10)) + 1j * g.standard_normal((2, 3, 12, 10))
    mix = g.standard_normal((8, 3)) + 1j * g.standard_normal((8, 3))
    k = np.einsum("cs,zshw->zchw", mix, src).astype(np.complex64)
    k += 1e-3 * (g.standard_normal(k.shape) + 1j * g.standard_normal(k.shape)).astype(np.complex64)
    a, kept = coil_compression_matrix(k, 3)
    assert a.shape == (3, 8) and kept > 0.9999
    np.testing.assert_allclose(a @ a.conj().T, np.eye(3), atol=1e-10)
    c3 = compress_coils(k, 3)
    assert c3.shape == (2, 3, 12, 10) and c3.dtype == np.complex64
    np.testing.assert_allclose(np.linalg.norm(c3) ** 2 / np.linalg.norm(k) ** 2, kept, rtol=1e-5)
    # energy is monotone in n and n = Nc is lossless: the RSS image is unchanged
    kept_n = [coil_compression_matrix(k, n)[1] for n in range(1, 9)]
    assert all(b >= a_ - 1e-12 for a_, b in zip(kept_n, kept_n[1:])) and abs(kept_n[-1] - 1) < 1e-12
    full = compress_coils(torch.from_numpy(k), 8)
    assert isinstance(full, torch.Tensor) and full.shape == (2, 8, 12, 10)
    torch.testing.assert_close(rss(ifft2c(full), dim=1), rss(ifft2c(torch.from_numpy(k)), dim=1), atol=1e-5,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="n must be in"):
        compress_coils(k, 9)


def test_resize_kspace_same_fov_and_intensity():
    from ambient_imaging.operators import resize_kspace, size_mismatch_note

    g = torch.Generator().manual_seed(0)
    small = torch.zeros(1, 2, 16, 12, dtype=torch.complex128)
    small[..., 4:12, 3:9] = torch.randn(1, 2, 8, 6, dtype=torch.complex128, generator=g)
    img = ifft2c(small)
    big = resize_kspace(small, (64, 46))  # zero-pad: sinc interpolation of the same image
    assert big.shape == (1, 2, 64, 46)
    back = resize_kspace(big, (16, 12))
    torch.testing.assert_close(back, small)  # crop ∘ pad is the identity
    up = ifft2c(big)
    # the upsampled image at the original sample positions has the original intensities (band-limited signal)
    assert abs(float(up.abs().max()) / float(img.abs().max()) - 1) < 0.2
    m = resize_kspace(np.ones((640, 368), dtype=bool), (64, 64))
    assert m.dtype == bool and m.shape == (64, 64) and m.all()
    note = size_mismatch_note((640, 368), (64, 64), 15, 8)
    assert "64x64" in note and "15 coils compressed to 8" in note
    assert size_mismatch_note((64, 64), (64, 64)) == ""
