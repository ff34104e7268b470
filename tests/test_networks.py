"""Denoiser networks: EDM preconditioning, the U-Net backbone, config round trips."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ambient_imaging.networks import Backbone, EDMPrecond, UNet, edm_coefficients


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny(c=1, is_complex=False, k=0, **kw) -> EDMPrecond:
    real = c * (2 if is_complex else 1)
    torch.manual_seed(0)
    bb = UNet.tiny(real + k, real, **kw)
    return EDMPrecond(bb, image_channels=c, is_complex=is_complex, mask_channels=k)


def test_edm_coefficients_match_table1():
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=torch.float64)
    sd = 0.5
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, sd)
    for i, s in enumerate(sigma.tolist()):
        assert c_skip[i].item() == pytest.approx(sd**2 / (s**2 + sd**2), rel=1e-12)
        assert c_out[i].item() == pytest.approx(s * sd / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert c_in[i].item() == pytest.approx(1 / math.sqrt(s**2 + sd**2), rel=1e-12)
        assert c_noise[i].item() == pytest.approx(math.log(s) / 4, rel=1e-12)
    # the effective training target of F, (x - c_skip (x + σ n)) / c_out, has unit variance (Karras eq. 8)
    assert torch.allclose((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2, c_out**2, rtol=1e-12)


def test_preconditioning_combines_skip_and_backbone():
    class Const(torch.nn.Module):
        in_channels, out_channels, stride = 1, 1, 1

        def forward(self, x, c_noise):
            return torch.full_like(x, 2.0)

    net = EDMPrecond(Const(), image_channels=1)
    assert isinstance(Const(), Backbone)
    x = torch.randn(3, 1, 5, 4, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    c_skip, c_out, _, _ = edm_coefficients(sigma, 0.5)
    expect = c_skip.view(-1, 1, 1, 1) * x + 2.0 * c_out.view(-1, 1, 1, 1)
    assert torch.allclose(net(x, sigma), expect, atol=1e-12)


def test_pixel_mask_preconditioning_fills_holes_at_unit_scale():
    """Unobserved pixels use the σ → ∞ coefficients: D = σ_d F there, D = c_skip x + c_out F elsewhere."""

    class Const(torch.nn.Module):
        in_channels, out_channels, stride = 2, 1, 1

        def forward(self, x, c_noise):
            return torch.full_like(x[:, :1], 2.0)

    x = torch.randn(2, 1, 6, 5, dtype=torch.float64)
    m = (torch.rand(2, 1, 6, 5) < 0.5).double()
    sigma = torch.tensor([1e-3, 3.0], dtype=torch.float64)
    c_skip, c_out, _, _ = edm_coefficients(sigma, 0.5)
    plain = EDMPrecond(Const(), image_channels=1, mask_channels=1)
    holes = EDMPrecond(Const(), image_channels=1, mask_channels=1, mask_domain="pixel")
    d_plain, d = plain(m * x, sigma, mask=m), holes(m * x, sigma, mask=m)
    inside = c_skip.view(-1, 1, 1, 1) * m * x + 2.0 * c_out.view(-1, 1, 1, 1)
    assert torch.allclose(d_plain, inside, atol=1e-12)  # plain: c_out F ≈ 0.004 in the holes at σ = 1e-3
    assert torch.allclose(d, torch.where(m.bool(), inside, torch.full_like(x, 2.0 * 0.5)), atol=1e-12)
    # a full mask is the plain preconditioning; the flag survives a config round trip
    ones = torch.ones_like(m)
    assert torch.allclose(holes(x, sigma, mask=ones), plain(x, sigma, mask=ones), atol=1e-12)
    net = _tiny(k=1)
    cfg = EDMPrecond(net.backbone, image_channels=1, mask_channels=1, mask_domain="pixel").config()
    assert EDMPrecond.from_config(json.loads(json.dumps(cfg))).mask_domain == "pixel"
    with pytest.raises(ValueError, match="needs 1 mask channel"):
        EDMPrecond(UNet.tiny(3, 1), image_channels=1, mask_channels=2, mask_domain="pixel")
    with pytest.raises(ValueError, match="mask_domain must be"):
        EDMPrecond(UNet.tiny(2, 1), image_channels=1, mask_channels=1, mask_domain="uv")


def test_kspace_mask_preconditioning_fills_unmeasured_lines():
    """MRI: unmeasured k-space columns of D come from σ_d·FFT(F), measured ones from c_skip x + c_out F."""
    from ambient_imaging.operators.mri import fft2c

    class Const(torch.nn.Module):  # complex image as 2 real channels + 1 mask channel
        in_channels, out_channels, stride = 3, 2, 1

        def forward(self, x, c_noise):
            return torch.ones_like(x[:, :2])

    h, w = 6, 8
    cols = torch.zeros(w, dtype=torch.bool)
    cols[[1, 4, 5]] = True
    m = cols.expand(h, w)[None, None].double()
    x = torch.randn(2, 1, h, w, dtype=torch.complex128)
    sigma = torch.tensor([1e-3, 2.0], dtype=torch.float64)
    c_skip, c_out, _, _ = edm_coefficients(sigma, 0.5)
    net = EDMPrecond(Const(), image_channels=1, is_complex=True, mask_channels=1, mask_domain="kspace")
    d = net(x, sigma, mask=m)
    f_k = fft2c(torch.full((2, 1, h, w), 1 + 1j, dtype=torch.complex128))
    expect_k = c_skip.view(-1, 1, 1, 1) * fft2c(x) + torch.where(
        m.bool(), c_out.view(-1, 1, 1, 1) * f_k, 0.5 * f_k)
    assert torch.allclose(fft2c(d), expect_k, atol=1e-12)
    # an all-ones mask is the plain preconditioning
    plain = EDMPrecond(Const(), image_channels=1, is_complex=True, mask_channels=1)
    ones = torch.ones_like(m)
    assert torch.allclose(net(x, sigma, mask=ones), plain(x, sigma, mask=ones), atol=1e-12)


def test_denoiser_tends_to_identity_as_sigma_vanishes():
    net = _tiny().eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        for s, tol in ((1e-3, 1e-2), (1e-6, 1e-5)):
            d = net(x, torch.tensor(s))
            assert (d - x).abs().max().item() < tol
        assert torch.equal(net(x, 0.0), x)  # σ = 0 exactly: c_out = 0


@pytest.mark.parametrize("is_complex", [False, True])
@pytest.mark.parametrize("size", [(8, 8), (7, 9), (3, 5)])
def test_shapes_dtypes_and_padding(is_complex, size):
    net = _tiny(c=1, is_complex=is_complex).eval()
    dtype = torch.complex64 if is_complex else torch.float32
    x = torch.randn(2, 1, *size, dtype=dtype)
    with torch.no_grad():
        d = net(x, torch.tensor([0.3, 2.0]))
    assert d.shape == x.shape and d.dtype == x.dtype
    assert torch.isfinite(torch.view_as_real(d) if is_complex else d).all()
    # double input keeps double output
    with torch.no_grad():
        d64 = net(x.to(torch.complex128 if is_complex else torch.float64), 0.5)
    assert d64.dtype == (torch.complex128 if is_complex else torch.float64)


def test_complex_channels_roundtrip_identity():
    class Ident(torch.nn.Module):
        in_channels, out_channels, stride = 4, 4, 1

        def forward(self, x, c):
            return x

    net = EDMPrecond(Ident(), image_channels=2, is_complex=True)
    x = torch.randn(2, 2, 3, 4, dtype=torch.complex128)
    sigma = torch.tensor([0.4, 1.3], dtype=torch.float64)
    c_skip, c_out, c_in, _ = edm_coefficients(sigma, 0.5)
    k = (c_skip + c_out * c_in).view(-1, 1, 1, 1)
    assert torch.allclose(net(x, sigma), k * x, atol=1e-12)  # channel order/real-imag mapping is exact


def test_padding_is_cropped_back_at_the_right_place():
    class Shift(torch.nn.Module):  # output depends on position: catches off-by-one crops
        in_channels, out_channels, stride = 1, 1, 8

        def forward(self, x, c):
            assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0
            return x

    for mode in ("reflect", "zeros", "replicate"):
        net = EDMPrecond(Shift(), image_channels=1, pad_mode=mode)
        x = torch.randn(1, 1, 5, 11, dtype=torch.float64)
        c_skip, c_out, c_in, _ = edm_coefficients(torch.tensor([0.7], dtype=torch.float64), 0.5)
        assert torch.allclose(net(x, 0.7), (c_skip + c_out * c_in) * x, atol=1e-12)


def test_mask_channels_required_or_optional():
    net = _tiny(k=1).eval()
    x = torch.randn(2, 1, 8, 8)
    m = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with torch.no_grad():
        assert net(x, 0.5, mask=m).shape == x.shape
        assert net(x, 0.5, mask=m[:1].bool()).shape == x.shape  # batch-1 mask broadcasts, bool accepted
        with pytest.raises(ValueError, match="mask"):
            net(x, 0.5)
        with pytest.raises(ValueError, match="mask"):
            net(x, 0.5, mask=torch.ones(2, 2, 8, 8))
        plain = _tiny().eval()
        assert torch.equal(plain(x, 0.5), plain(x, 0.5, mask=m))  # no mask channels: mask ignored


def test_bad_inputs_give_clear_errors():
    net = _tiny().eval()
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        net(torch.randn(2, 3, 8, 8), 0.5)
    with pytest.raises(TypeError, match="complex"):
        _tiny(is_complex=True)(x, 0.5)
    with pytest.raises(ValueError, match="finite"):
        net(x, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        net(x, torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="sigma"):
        net(x, torch.ones(3))
    with pytest.raises(ValueError, match="in/out channels"):
        EDMPrecond(UNet.tiny(2, 1), image_channels=1)
    with pytest.raises(ValueError, match="pad_mode"):
        EDMPrecond(UNet.tiny(1, 1), image_channels=1, pad_mode="circular")


def test_from_config_round_trip_reproduces_outputs():
    net = _tiny(c=1, is_complex=True, k=1, gated=True, attn_resolutions=(32,), img_resolution=64).eval()
    cfg = json.loads(json.dumps(net.config()))  # plain data: survives JSON (and TOML)
    net2 = EDMPrecond.from_config(cfg)
    net2.load_state_dict(net.state_dict())
    net2.eval()
    x = torch.randn(2, 1, 12, 10, dtype=torch.complex64)
    m = torch.ones(2, 1, 12, 10)
    with torch.no_grad():
        assert torch.equal(net(x, 0.8, mask=m), net2(x, 0.8, mask=m))
    assert net2.config() == cfg
    with pytest.raises(ValueError, match="backbone"):
        EDMPrecond.from_config({**cfg, "backbone": {"class": "nope.module:Missing", "config": {}}})


def test_unet_attention_gated_and_dropout_variants_run():
    torch.manual_seed(0)
    bb = UNet(3, 2, model_channels=16, channel_mult=(1, 2, 2), num_blocks=1, attn_resolutions=(8,),
              img_resolution=16, dropout=0.2, gated=True, embedding="fourier")
    assert bb.stride == 4
    assert any(getattr(b, "num_heads", 0) for b in bb.enc)
    out = bb(torch.randn(2, 3, 16, 12), torch.randn(2))
    assert out.shape == (2, 2, 16, 12)
    out.square().mean().backward()
    assert all(p.grad is not None for p in bb.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="multiples"):
        bb(torch.randn(1, 3, 10, 12), torch.randn(1))


def test_parameter_counts_of_presets():
    assert _count(UNet.tiny(3, 2)) < 1_000_000
    with torch.device("meta"):  # count without allocating or running
        small = _count(UNet.small(3, 2))
        paper = _count(UNet.paper(3, 2))
    assert 2_000_000 <= small <= 6_000_000
    assert 35_000_000 <= paper <= 60_000_000
