"""Training losses: shapes, what they may read, which rows they score, noise levels, augmentation."""

from __future__ import annotations

import math

import pytest
import torch

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.networks import EDMPrecond, UNet
from ambient_imaging.operators import GaussianNoise, LinearOperator, PixelMask, dust_mask
from ambient_imaging.training.losses import (
    AmbientLoss,
    AmbientTweedieLoss,
    ConsistencyLoss,
    MixtureLoss,
    NaiveLoss,
    OracleLoss,
    augment,
)
from ambient_imaging.training.sigma import LogNormalSigma, edm_weight

B, H, W = 3, 8, 8


def _net(k: int = 1, is_complex: bool = False) -> EDMPrecond:
    torch.manual_seed(0)
    real = 2 if is_complex else 1
    return EDMPrecond(UNet.tiny(real + k, real), image_channels=1, is_complex=is_complex, mask_channels=k)


def _batch(noise: float = 0.0, seed: int = 0, ref: bool = True, dtype=torch.float32) -> MeasurementBatch:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, H, W, generator=g, dtype=torch.float32).to(dtype) * 0.5
    m = dust_mask((B, H, W), 0.3, g)
    op = PixelMask(m) if noise == 0 else GaussianNoise(noise) @ PixelMask(m)
    y = op.measure(x, g)
    meta = [{"index": i} for i in range(B)]
    return MeasurementBatch(y=y, op=op, scale=torch.ones(B), meta=meta, reference=x if ref else None)


class NoReferenceBatch(MeasurementBatch):
    """A batch whose clean images cannot be touched: any access raises."""

    def __getattribute__(self, name):
        if name == "reference":
            raise AssertionError("the loss read batch.reference (clean images)")
        return super().__getattribute__(name)


class Spy(torch.nn.Module):
    """Denoiser that records its inputs; output = learnable image (so gradients show which pixels are scored)."""

    def __init__(self, k: int = 1):
        super().__init__()
        self.mask_channels = k
        self.p = torch.nn.Parameter(torch.zeros(B, 1, H, W))
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def forward(self, x, sigma, mask=None):
        self.calls.append((x.detach().clone(), torch.as_tensor(sigma).detach().clone(), mask))
        return self.p.repeat(max(1, x.shape[0] // B), 1, 1, 1)[: x.shape[0]] + 0 * x


# ------------------------------------------------------------------------------- basics
@pytest.mark.parametrize(
    "loss,k,noise",
    [
        (AmbientLoss(0.2), 1, 0.0),
        (AmbientLoss(0.2, space="image"), 1, 0.0),
        (AmbientLoss(0.2, heldout=True), 1, 0.1),
        (AmbientLoss(0.2, fresh_subsample=False), 1, 0.0),
        (AmbientTweedieLoss(0.1), 1, 0.1),
        (AmbientTweedieLoss(0.1, weight="tweedie", s_max=50.0), 1, 0.1),
        (ConsistencyLoss(0.1, n_steps=2), 1, 0.1),
        (AmbientTweedieLoss(0.1, consistency=ConsistencyLoss(0.1, n_steps=1)), 1, 0.1),
        (OracleLoss(), 0, 0.0),
        (OracleLoss(mask="ones"), 1, 0.0),
        (NaiveLoss(), 0, 0.0),
        (NaiveLoss(mask="operator"), 1, 0.0),
    ],
)
def test_losses_shape_finite_and_gradients_flow(loss, k, noise):
    net = _net(k)
    out = loss(net, _batch(noise), torch.Generator().manual_seed(1))
    assert out.shape == (B,)
    assert torch.isfinite(out).all()
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


def test_losses_are_reproducible_with_a_generator():
    net = _net(1)
    a = AmbientLoss(0.2)(net, _batch(), torch.Generator().manual_seed(5))
    b = AmbientLoss(0.2)(net, _batch(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_ambient_loss_on_complex_images():
    g = torch.Generator().manual_seed(0)
    x = torch.complex(torch.randn(B, 1, H, W, generator=g), torch.randn(B, 1, H, W, generator=g)) * 0.3
    op = PixelMask(dust_mask((B, H, W), 0.3, g))
    batch = MeasurementBatch(op(x), op, torch.ones(B))
    net = _net(1, is_complex=True)
    out = AmbientLoss(0.2)(net, batch, g)
    assert out.shape == (B,) and torch.isfinite(out).all()
    out.sum().backward()


# ------------------------------------------------------------------------------- what the ambient loss sees
def test_ambient_loss_never_reads_reference():
    b = _batch()
    trap = NoReferenceBatch(b.y, b.op, b.scale, b.meta, None)
    with pytest.raises(AssertionError):
        trap.reference  # noqa: B018  (the trap works)
    for loss in (AmbientLoss(0.2), AmbientLoss(0.2, heldout=True, space="image"),
                 AmbientLoss(0.2, fresh_subsample=False), NaiveLoss(mask="operator")):
        assert torch.isfinite(loss(_net(1), trap, torch.Generator().manual_seed(0))).all()
    tw = NoReferenceBatch(*(lambda c: (c.y, c.op, c.scale, c.meta, None))(_batch(0.1)))
    assert torch.isfinite(AmbientTweedieLoss(0.1)(_net(1), tw, torch.Generator().manual_seed(0))).all()
    assert torch.isfinite(ConsistencyLoss(0.1, n_steps=1)(_net(1), tw, torch.Generator().manual_seed(0))).all()


def test_ambient_network_input_uses_only_the_further_corrupted_rows():
    loss = AmbientLoss(0.3, fresh_subsample=False)
    batch = _batch()
    a_t = loss.further_corrupt(batch)
    spy = Spy()
    loss(spy, batch, torch.Generator().manual_seed(0))
    u, sigma, mask = spy.calls[0]
    kept = a_t.mask
    assert torch.equal(mask, kept.float())
    assert torch.all(u[~kept.expand_as(u)] == 0)  # nothing outside Ã's rows
    # changing y on A's rows that Ã dropped does not change the input
    y2 = batch.y + (batch.op.mask & ~kept).float() * 7.0
    spy2 = Spy()
    loss(spy2, MeasurementBatch(y2, batch.op, batch.scale, batch.meta), torch.Generator().manual_seed(0))
    assert torch.equal(spy2.calls[0][0], u)
    # on Ã's rows the input is y plus noise of std σ
    for i in range(B):
        resid = (u - batch.y)[i][kept[i].expand_as(u[i])]
        assert 0.6 < float(resid.std() / sigma[i]) < 1.6


def test_heldout_scores_only_rows_outside_the_subsample():
    batch = _batch(noise=0.1)
    for heldout in (False, True):
        loss = AmbientLoss(0.4, heldout=heldout, fresh_subsample=False)
        a_t = loss.further_corrupt(batch)
        spy = Spy()
        loss(spy, batch, torch.Generator().manual_seed(0)).sum().backward()
        scored = spy.p.grad != 0
        expect = batch.op.mask & ~a_t.mask if heldout else batch.op.mask
        assert torch.equal(scored, expect.expand_as(scored))


def test_image_space_equals_measurement_space_for_pixel_masks():
    batch = _batch()
    net = _net(1)
    a = AmbientLoss(0.2, space="measurement")(net, batch, torch.Generator().manual_seed(3))
    b = AmbientLoss(0.2, space="image")(net, batch, torch.Generator().manual_seed(3))
    assert torch.allclose(a, b, rtol=1e-5)


def test_loss_normalised_by_number_of_scored_rows():
    """A denoiser off by a constant c on every pixel gives λ c² whatever the sampling density."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 1, H, W)
    m = torch.stack([dust_mask((1, H, W), 0.1, g)[0], dust_mask((1, H, W), 0.8, g)[0]])
    batch = MeasurementBatch(x, PixelMask(m), torch.ones(2))

    class Off(torch.nn.Module):
        mask_channels = 1

        def forward(self, x, sigma, mask=None):
            return torch.full_like(x, 0.5)

    class FixedSigma:
        def sample(self, n, generator=None, device=None, dtype=torch.float32):
            return torch.ones(n, device=device, dtype=dtype)

    for space in ("measurement", "image"):
        for heldout in (False, True):
            out = AmbientLoss(0.2, space=space, heldout=heldout, sigma_dist=FixedSigma())(
                Off(), batch, torch.Generator().manual_seed(1)
            )
            assert torch.allclose(out, edm_weight(torch.ones(2), 0.5) * 0.25), (space, heldout)


def test_subsample_is_a_subset_with_protected_rows():
    g = torch.Generator().manual_seed(0)
    m = dust_mask((B, H, W), 0.2, g)
    keep = torch.zeros(1, 1, H, W, dtype=torch.bool)
    keep[..., :2, :] = True
    op = GaussianNoise(0.1) @ PixelMask(m)
    for seeds in (None, [1, 2, 3]):
        a_t = op.subsample(0.5, g, batch_size=B, keep=keep, seeds=seeds)
        assert torch.all(a_t.mask <= m)  # subset
        assert torch.all(a_t.mask[..., :2, :] == m[..., :2, :])  # protected rows kept
        assert a_t.mask.sum() < m.sum()
        assert a_t.noise_sigma == 0.1
    # a batch-1 operator is expanded: samples get independent Ã
    one = PixelMask(torch.ones(1, 1, H, W, dtype=torch.bool))
    a_t = one.subsample(0.5, g, batch_size=4)
    assert a_t.mask.shape[0] == 4 and not torch.equal(a_t.mask[0], a_t.mask[1])
    with pytest.raises(TypeError, match="subsampling"):
        GaussianNoise(0.1).subsample(0.5, g, batch_size=B)


def test_fresh_versus_fixed_subsampling():
    batch = _batch()
    fixed = AmbientLoss(0.3, fresh_subsample=False)
    m1 = fixed.further_corrupt(batch, torch.Generator().manual_seed(1)).mask
    m2 = fixed.further_corrupt(batch, torch.Generator().manual_seed(2)).mask
    assert torch.equal(m1, m2)
    shuffled = MeasurementBatch(batch.y, batch.op, batch.scale, [{"index": 10 + i} for i in range(B)])
    assert not torch.equal(m1, fixed.further_corrupt(shuffled).mask)
    fresh = AmbientLoss(0.3)
    f1 = fresh.further_corrupt(batch, torch.Generator().manual_seed(1)).mask
    f2 = fresh.further_corrupt(batch, torch.Generator().manual_seed(2)).mask
    assert not torch.equal(f1, f2)


# ------------------------------------------------------------------------------- noise levels
def test_tweedie_never_samples_sigma_below_sigma_n():
    spy = Spy()
    loss = AmbientTweedieLoss(0.3)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        loss(spy, _batch(0.3), g)
    sig = torch.cat([c[1].reshape(-1) for c in spy.calls])
    assert sig.min() > 0.3


def test_truncated_lognormal_matches_rejection_sampling():
    dist = LogNormalSigma()
    g = torch.Generator().manual_seed(0)
    t = dist.sample_truncated(20000, lower=0.5, generator=g)
    r = dist.sample(200000, generator=g)
    r = r[r > 0.5]
    assert t.min() > 0.5
    for q in (0.1, 0.5, 0.9):
        assert float(t.quantile(q)) == pytest.approx(float(r.quantile(q)), rel=0.05)
    both = dist.sample_truncated(5000, lower=0.01, upper=0.2, generator=g)
    assert both.min() > 0.01 and both.max() < 0.2
    per = dist.sample_truncated(3, lower=torch.tensor([0.1, 1.0, 10.0]), generator=g)
    assert torch.all(per > torch.tensor([0.1, 1.0, 10.0]))


def test_edm_weight_formula():
    s = torch.tensor([0.1, 1.0])
    assert torch.allclose(edm_weight(s, 0.5), (s**2 + 0.25) / (s * 0.5) ** 2)


def test_tweedie_target_is_tweedie_identity():
    """With the exact clean denoiser, E[(1-a)D + a x_t] = E[y | x_t] gives a zero-mean residual."""
    sig_n, sigma = 0.4, 0.9
    g = torch.Generator().manual_seed(0)
    var = 0.25
    x = torch.randn(200000, generator=g, dtype=torch.float64) * math.sqrt(var)
    y = x + sig_n * torch.randn(x.shape, generator=g, dtype=torch.float64)
    xt = y + math.sqrt(sigma**2 - sig_n**2) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    d = var / (var + sigma**2) * xt  # E[x | x_t] for the clean prior
    a = sig_n**2 / sigma**2
    resid = (1 - a) * d + a * xt - y
    assert abs(float((resid * xt).mean())) < 5e-3  # orthogonal to x_t: the minimiser


def test_consistency_noise_levels_straddle_sigma_n():
    spy = Spy()
    ConsistencyLoss(0.3, n_steps=3)(spy, _batch(0.3), torch.Generator().manual_seed(0))
    sig_t = spy.calls[0][1]
    sig_s = spy.calls[-1][1]
    assert torch.all(sig_t > 0.3) and torch.all(sig_s < 0.3)
    assert len(spy.calls) == 1 + 3 + 1


# ------------------------------------------------------------------------------- baselines and mixtures
def test_oracle_requires_reference():
    with pytest.raises(ValueError, match="reference"):
        OracleLoss()(_net(0), _batch(ref=False))


def test_mixture_routes_samples_by_flag():
    class Const:
        def __init__(self, v):
            self.v = v
            self.sizes = []

        def __call__(self, net, batch, generator=None):
            self.sizes.append(len(batch))
            return torch.full((len(batch),), self.v)

    batch = _batch()
    batch.meta = [{"clean": True}, {}, {"clean": True}]
    clean, corrupted = Const(1.0), Const(2.0)
    out = MixtureLoss(clean, corrupted)(None, batch)
    assert out.tolist() == [1.0, 2.0, 1.0]
    assert clean.sizes == [2] and corrupted.sizes == [1]
    real = MixtureLoss(NaiveLoss(mask="ones"), AmbientLoss(0.2))(_net(1), batch, torch.Generator().manual_seed(0))
    assert real.shape == (B,) and torch.isfinite(real).all()


# ------------------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("shape", [(8, 8), (6, 10)])
def test_augment_keeps_measurements_and_operator_consistent(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, *shape, generator=g)
    m = dust_mask((8, *shape), 0.4, g)
    for op in (PixelMask(m), GaussianNoise(0.0) @ PixelMask(m)):
        batch = MeasurementBatch(op(x), op, torch.ones(8), [{} for _ in range(8)], reference=x)
        aug = augment(batch, torch.Generator().manual_seed(1))
        assert torch.equal(aug.op.forward(aug.reference), aug.y)  # A'(T x) == T(A x)
        assert torch.equal(aug.op.mask_channels() * aug.y, aug.y)
        ks = {mt["augment"] for mt in aug.meta}
        assert len(ks) > 1
        if shape[0] != shape[1]:
            assert ks <= {0, 2, 4, 6}
    # the identity-with-noise operator needs nothing
    gn = MeasurementBatch(x, GaussianNoise(0.1), torch.ones(8))
    assert augment(gn, g).y.shape == x.shape


def test_augment_refuses_operators_it_cannot_transform_exactly():
    class Fourier(LinearOperator):
        def forward(self, x):
            return torch.fft.fft2(x, norm="ortho")

        def adjoint(self, y):
            return torch.fft.ifft2(y, norm="ortho")

    x = torch.randn(2, 1, 4, 4, dtype=torch.complex64)
    with pytest.raises(NotImplementedError, match="not supported"):
        augment(MeasurementBatch(x, Fourier(), torch.ones(2)))
    with pytest.raises(TypeError, match="image space"):
        AmbientTweedieLoss(0.1)(_net(0, is_complex=True), MeasurementBatch(x, Fourier(), torch.ones(2)))


# ------------------------------------------------------------------------------- configuration errors
def test_bad_configuration_values():
    for d in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="delta"):
            AmbientLoss(d)
    with pytest.raises(ValueError, match="space"):
        AmbientLoss(0.1, space="kspace")
    with pytest.raises(ValueError, match="sigma_n"):
        AmbientTweedieLoss(-0.1)
    with pytest.raises(ValueError, match="weight"):
        AmbientTweedieLoss(0.1, weight="uniform")
    with pytest.raises(ValueError, match="s_max"):
        AmbientTweedieLoss(0.1, s_max=0.0)
    with pytest.raises(ValueError, match="sigma_n"):
        ConsistencyLoss(0.0)
    with pytest.raises(ValueError, match="n_steps"):
        ConsistencyLoss(0.1, n_steps=0)
    with pytest.raises(ValueError, match="sigma_data"):
        OracleLoss(sigma_data=0.0)
    with pytest.raises(ValueError, match="mask"):
        NaiveLoss(mask="maybe")
    with pytest.raises(ValueError, match="p_std"):
        LogNormalSigma(p_std=0.0)


def test_ambient_loss_on_a_fourier_operator_uses_only_the_kept_cells():
    from ambient_imaging.operators.interferometry import GriddedInterferometer

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, H, W, generator=g)
    op = GriddedInterferometer(torch.rand(2, 1, H, W, generator=g) < 0.4, pixel_scale=1e-6)
    batch = MeasurementBatch(op(x), op, torch.ones(2), [{"index": 0}, {"index": 1}])
    loss = AmbientLoss(0.3, heldout=True, fresh_subsample=False)
    a_t = loss.further_corrupt(batch)
    assert torch.all(a_t.mask <= op.mask) and a_t.mask.sum() < op.mask.sum()
    spies = []
    for bump in (0.0, 5.0):  # change y only on cells that Ã dropped
        y = batch.y + bump * (op.mask & ~a_t.mask)
        spy = Spy()
        out = loss(spy, MeasurementBatch(y, op, batch.scale, batch.meta), torch.Generator().manual_seed(1))
        assert out.shape == (2,) and torch.isfinite(out).all()
        spies.append(spy.calls[0])
    assert torch.allclose(spies[0][0], spies[1][0], atol=1e-5)
    assert torch.equal(spies[0][2], a_t.mask.float())
