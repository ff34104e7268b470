"""Contract tests for the operator base class, PixelMask, GaussianNoise and composition."""

import pytest
import torch

from ambient_imaging.operators import (
    ComposedOperator,
    GaussianNoise,
    PixelMask,
    box_mask,
    dust_mask,
    stack,
)
from ambient_imaging.operators.testing import dot_product_test

DTYPES = [(torch.float64, 1e-10), (torch.complex128, 1e-10), (torch.float32, 1e-5), (torch.complex64, 1e-5)]


def _mask(b=3, c=1, h=8, w=9, p=0.4, seed=0):
    return dust_mask((b, c, h, w), p, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_pixel_mask_adjoint(dtype, tol):
    op = PixelMask(_mask())
    assert dot_product_test(op, (3, 2, 8, 9), dtype) < tol


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_noise_and_composition_adjoint(dtype, tol):
    op = GaussianNoise(0.1) @ PixelMask(_mask()) @ (2.0 * PixelMask(_mask(seed=1)))
    assert dot_product_test(op, (3, 1, 8, 9), dtype) < tol


def test_pixel_mask_is_projection_and_normal():
    op = PixelMask(_mask())
    x = torch.randn(3, 1, 8, 9, dtype=torch.float64)
    assert torch.equal(op.normal(x), op.forward(op.forward(x)))
    assert torch.equal(op.forward(x)[~op.mask.expand_as(x)], torch.zeros(int((~op.mask).sum()), dtype=x.dtype))


def test_measure_noise_statistics_real_and_complex():
    g = torch.Generator().manual_seed(0)
    op = PixelMask(torch.ones(1, 1, 64, 64, dtype=torch.bool), noise_sigma=0.5)
    for dtype in (torch.float64, torch.complex128):
        x = torch.zeros(8, 1, 64, 64, dtype=dtype)
        y = op.measure(x, g)
        var = (y.abs() ** 2).mean().item()
        assert abs(var - 0.25) < 0.01, (dtype, var)


def test_measure_keeps_missing_pixels_zero():
    op = PixelMask(_mask(), noise_sigma=1.0)
    y = op.measure(torch.randn(3, 1, 8, 9))
    assert torch.all(y[~op.mask.expand_as(y)] == 0)


def test_per_sample_noise_sigma_broadcast():
    op = GaussianNoise(torch.tensor([0.0, 1.0]))
    y = op.measure(torch.zeros(2, 1, 32, 32), torch.Generator().manual_seed(1))
    assert y[0].abs().max() == 0 and 0.8 < y[1].std() < 1.2


def test_subsample_subset_keep_and_rate():
    g = torch.Generator().manual_seed(123)  # independent of the mask's seed
    op = PixelMask(_mask(b=4, h=64, w=64, p=0.3))
    keep = torch.zeros_like(op.mask)
    keep[..., :8, :] = True
    sub = op.subsample(0.25, g, keep=keep)
    assert isinstance(sub, PixelMask)
    assert torch.all(sub.mask <= op.mask)  # a subset of rows
    assert torch.all(sub.mask[keep & op.mask])  # protected rows always kept
    free = op.mask & ~keep
    rate = sub.mask[free].float().mean().item()
    assert abs(rate - 0.75) < 0.02
    with pytest.raises(ValueError, match="delta must be in"):
        op.subsample(1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        op.subsample(0.1, keep=torch.ones(2, 2, dtype=torch.bool))


def test_subsample_through_elementwise_composition():
    op = GaussianNoise(0.1) @ PixelMask(_mask())
    sub = op.subsample(0.5, torch.Generator().manual_seed(0), keep=False)
    assert isinstance(sub, ComposedOperator)
    assert torch.all(sub.mask <= op.mask) and sub.mask.sum() < op.mask.sum()
    assert sub.noise_sigma == 0.1


def test_indexing_and_stack_roundtrip():
    op = PixelMask(_mask(b=4), noise_sigma=0.2)
    parts = [op[i] for i in range(4)]
    assert all(p.batch_size == 1 for p in parts)
    again = stack(parts)
    assert torch.equal(again.mask, op.mask)
    noisy = stack([PixelMask(_mask(b=1), 0.1), PixelMask(_mask(b=1), 0.3)])
    assert torch.allclose(noisy.noise_sigma, torch.tensor([0.1, 0.3], dtype=torch.float64))
    with pytest.raises(ValueError, match="different shapes"):
        stack([PixelMask(_mask(b=1)), PixelMask(_mask(b=1, h=5))])
    with pytest.raises(TypeError, match="cannot mix"):
        stack([PixelMask(_mask(b=1)), GaussianNoise(0.1)])


def test_autograd_gradcheck():
    op = PixelMask(_mask(b=2, h=4, w=4))
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op.forward(t) * 2.0, (x,))
    z = torch.randn(2, 1, 4, 4, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: op.adjoint(t), (z,))


def test_box_mask():
    m = box_mask((5, 16, 16), 4, n_boxes=2, generator=torch.Generator().manual_seed(0))
    assert m.shape == (5, 1, 16, 16)
    missing = (~m).sum(dim=(1, 2, 3))
    assert torch.all(missing >= 16) and torch.all(missing <= 32)
    with pytest.raises(ValueError, match="does not fit"):
        box_mask((1, 8, 8), 9)


def test_bad_inputs():
    op = PixelMask(_mask(b=3))
    with pytest.raises(ValueError, match="batch size 2"):
        op.forward(torch.randn(2, 1, 8, 9))
    with pytest.raises(ValueError, match="does not match"):
        op.forward(torch.randn(3, 1, 8, 8))
    with pytest.raises(TypeError, match="float or complex"):
        op.forward(torch.ones(3, 1, 8, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape \\(B, C, H, W\\)"):
        op.forward(torch.randn(8, 9))
    with pytest.raises(ValueError, match="only 0 and 1"):
        PixelMask(torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        GaussianNoise(-1.0)
    with pytest.raises(ValueError, match="corruption must be in"):
        dust_mask((1, 4, 4), 1.5)
    with pytest.raises(ValueError, match="cannot compose operators with batch sizes"):
        PixelMask(_mask(b=3)) @ PixelMask(_mask(b=2))


def test_to_dtype_and_device_message():
    op = PixelMask(_mask()).to("cpu", torch.float64)
    assert op.mask.dtype == torch.bool and op.device == torch.device("cpu")
    if not torch.cuda.is_available():
        op2 = op.replace(mask=op.mask.to("meta"))
        with pytest.raises(ValueError, match="A = A.to"):
            op2.forward(torch.randn(3, 1, 8, 9))
