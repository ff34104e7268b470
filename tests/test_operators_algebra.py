"""The closed operator algebra: composites answer every question of the contract for themselves."""

from __future__ import annotations

import pytest
import torch

from ambient_imaging.operators import (
    ComposedOperator,
    GaussianNoise,
    GriddedInterferometer,
    Interferometer,
    MultiCoilMRI,
    PixelMask,
    ScaledOperator,
    dihedral,
    dust_mask,
    stack,
)
from ambient_imaging.operators.domains import KSPACE_DOMAIN, PIXEL_DOMAIN, mask_domain

B, H, W = 4, 8, 8


def _mask(seed: int = 0, b: int = B) -> torch.Tensor:
    return dust_mask((b, H, W), 0.3, torch.Generator().manual_seed(seed))


def _mri(b: int = B, noise: float = 0.1) -> MultiCoilMRI:
    lines = torch.zeros(b, W, dtype=torch.bool)
    lines[:, ::2] = True
    lines[:, W // 2 - 1 : W // 2 + 1] = True
    acs = torch.zeros(b, W, dtype=torch.bool)
    acs[:, W // 2 - 1 : W // 2 + 1] = True
    maps = torch.ones(1, 1, H, W, dtype=torch.complex64)
    return MultiCoilMRI(maps, lines, noise_sigma=noise, acs=acs)


def _composites() -> dict[str, object]:
    m = _mask()
    return {
        "noise@mask": GaussianNoise(0.2) @ PixelMask(m),
        "2*mask": 2.0 * PixelMask(m),
        "2*(noise@mask)": 2.0 * (GaussianNoise(0.2) @ PixelMask(m)),
        "noise@mri": GaussianNoise(0.0) @ _mri(),
    }


def test_family_and_image_domain_of_every_operator_and_composite():
    m = _mask()
    assert PixelMask(m).family == "mask" and PixelMask(m).image_domain
    assert GaussianNoise(0.1).family == "noise" and GaussianNoise(0.1).image_domain
    assert _mri().family == "mri" and not _mri().image_domain
    uv = torch.randn(5, 2) * 3
    assert Interferometer(uv, (H, W), 0.05).family == "interferometry"
    assert GriddedInterferometer(m, 0.05).family == "interferometry"
    assert (GaussianNoise(0.1) @ PixelMask(m)).family == "mask"
    assert (GaussianNoise(0.1) @ PixelMask(m)).image_domain
    assert (GaussianNoise(0.1) @ GaussianNoise(0.0)).family == "noise"
    assert (3.0 * _mri()).family == "mri"
    assert not (3.0 * PixelMask(m)).image_domain  # c·x is not an image of x
    assert not (GaussianNoise(0.0) @ _mri()).image_domain


@pytest.mark.parametrize("name", list(_composites()))
def test_with_rows_keeps_the_structure_and_changes_the_rows(name):
    op = _composites()[name]
    sub = op.subsampling_factor()
    rows = sub.row_mask() & (torch.rand(sub.row_mask().shape, generator=torch.Generator().manual_seed(3)) < 0.5)
    new = op.with_rows(rows)
    assert type(new) is type(op)
    assert torch.equal(new.subsampling_factor().row_mask(), rows)
    assert torch.equal(torch.as_tensor(new.noise_sigma), torch.as_tensor(op.noise_sigma))
    x = torch.randn(B, 1, H, W, dtype=torch.complex64 if "mri" in name else torch.float32)
    # the new operator is the old one restricted to the new rows
    assert torch.allclose(new.forward(x), new.restrict(op.forward(x)), atol=1e-6)


def test_with_rows_and_subsample_refuse_operators_without_rows():
    with pytest.raises(TypeError, match="subsampling rows"):
        GaussianNoise(0.1).with_rows(torch.ones(1, 1, H, W, dtype=torch.bool))
    with pytest.raises(TypeError, match="subsampling"):
        GaussianNoise(0.1).subsample(0.5)
    with pytest.raises(TypeError, match="no subsampling factor"):
        ((2.0 * _mri()) @ GaussianNoise(0.0)).with_rows(torch.ones(B, W, dtype=torch.bool))


@pytest.mark.parametrize("name", list(_composites()))
def test_with_noise_sets_or_scales_the_composite_noise(name):
    op = _composites()[name]
    f = torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=torch.float64)
    scaled = op.with_noise(factor=f)
    s0 = torch.as_tensor(op.noise_sigma, dtype=torch.float64)
    assert torch.allclose(torch.as_tensor(scaled.noise_sigma, dtype=torch.float64).reshape(-1), (s0 * f).reshape(-1))
    set_ = op.with_noise(0.3)
    assert float(set_.noise_sigma) == pytest.approx(0.3)
    assert type(scaled) is type(op) and type(set_) is type(op)
    with pytest.raises(ValueError, match="exactly one"):
        op.with_noise()


@pytest.mark.parametrize("name", list(_composites()))
def test_subsample_with_per_sample_delta_and_seeds_on_composites(name):
    op = _composites()[name]
    rows = op.subsampling_factor().row_mask()
    d = torch.tensor([0.0, 0.3, 0.6, 0.95])
    g = torch.Generator().manual_seed(0)
    a = op.subsample(d, g, keep=False)
    kept = a.subsampling_factor().row_mask()
    assert type(a) is type(op) and bool(torch.all(kept <= rows))
    assert torch.equal(kept[0], rows[0])  # δ = 0 keeps every row
    # seeds: a deterministic function of each sample's seed, whatever the batch around it
    s1 = op.subsample(0.5, seeds=[11, 12, 13, 14], keep=False).subsampling_factor().row_mask()
    s2 = op.subsample(0.5, seeds=[99, 12, 98, 14], keep=False).subsampling_factor().row_mask()
    assert torch.equal(s1[1], s2[1]) and torch.equal(s1[3], s2[3])
    with pytest.raises(ValueError, match="seeds"):
        op.subsample(0.5, seeds=[1, 2], batch_size=B)
    with pytest.raises(ValueError, match="delta"):
        op.subsample(torch.tensor([0.1, 1.0, 0.2, 0.2]))


def test_subsample_protects_the_default_keep_and_expands_batch_one():
    op = GaussianNoise(0.0) @ _mri(b=1)
    a = op.subsample(0.9, torch.Generator().manual_seed(0), batch_size=6)
    rows = a.subsampling_factor().row_mask()
    assert rows.shape[0] == 6
    assert bool(torch.all(rows[:, W // 2 - 1 : W // 2 + 1]))  # ACS lines always survive
    one = PixelMask(torch.ones(1, 1, H, W, dtype=torch.bool))
    a = one.subsample(torch.full((5,), 0.5), torch.Generator().manual_seed(1))
    assert a.mask.shape[0] == 5 and not torch.equal(a.mask[0], a.mask[1])


def test_mask_channels_and_mask_domain_objects():
    m = _mask()
    op = 2.0 * (GaussianNoise(0.1) @ PixelMask(m))
    assert torch.equal(op.mask_channels(), m.float())
    assert mask_domain("pixel") is PIXEL_DOMAIN and mask_domain(KSPACE_DOMAIN) is KSPACE_DOMAIN
    assert KSPACE_DOMAIN.channel_counts(1) == (1,) and PIXEL_DOMAIN.channel_counts(3) == (1, 3)
    with pytest.raises(ValueError, match="mask_domain"):
        mask_domain("uv")


def test_transformed_commutes_with_the_image_space_operators():
    m = _mask()
    ks = [0, 1, 5, 6]
    x = torch.randn(B, 1, H, W)
    for op in (PixelMask(m), GaussianNoise(0.1) @ PixelMask(m), 2.0 * PixelMask(m)):
        t = op.transformed(ks)
        tx = torch.stack([dihedral(x[i], k) for i, k in enumerate(ks)])
        t_ax = torch.stack([dihedral(op.forward(x)[i], k) for i, k in enumerate(ks)])
        assert torch.allclose(t.forward(tx), t_ax)
    with pytest.raises(NotImplementedError, match="augment"):
        _mri().transformed(ks)
    with pytest.raises(NotImplementedError, match="augment"):
        (_mri() @ GaussianNoise(0.0)).transformed(ks)


def test_stack_composites():
    a = GaussianNoise(0.1) @ PixelMask(_mask(0, 2))
    b = GaussianNoise(0.1) @ PixelMask(_mask(1, 3))
    s = stack([a, b])
    assert isinstance(s, ComposedOperator) and s.batch_size == 5
    c = stack([2.0 * PixelMask(_mask(0, 2)), 2.0 * PixelMask(_mask(1, 1))])
    assert isinstance(c, ScaledOperator) and c.batch_size == 3
    with pytest.raises(ValueError, match="scale"):
        stack([2.0 * PixelMask(_mask(0, 2)), 3.0 * PixelMask(_mask(1, 1))])
