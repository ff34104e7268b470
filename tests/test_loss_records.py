"""Losses as objects: the registry, ``from_config`` and the records they return (MixtureLoss included)."""

from __future__ import annotations

import pytest
import torch

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.operators import GaussianNoise, PixelMask, dust_mask
from ambient_imaging.training import TrainConfig, build_loss
from ambient_imaging.training.losses import (
    LOSSES,
    AmbientLoss,
    AmbientTweedieLoss,
    Loss,
    LossOutput,
    MixtureLoss,
    NaiveLoss,
    OracleLoss,
)
from ambient_imaging.training.sigma import band_index, edm_weight

B, H, W = 6, 8, 8


class Zero(torch.nn.Module):
    """D = 0 (a fixed network: the loss is a known function of the data)."""

    mask_channels = 1

    def forward(self, x, sigma, mask=None, return_logvar=False):
        out = torch.zeros_like(x)
        return (out, torch.zeros(x.shape[0])) if return_logvar else out


def _batch(noise: float = 0.0) -> MeasurementBatch:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 1, H, W, generator=g) * 0.5
    m = dust_mask((B, H, W), 0.3, g)
    op = PixelMask(m) if noise == 0 else GaussianNoise(noise) @ PixelMask(m)
    meta = [{"index": i, "clean": i % 3 == 0} for i in range(B)]
    return MeasurementBatch(op.measure(x, g), op, torch.ones(B), meta, x)


def test_registry_maps_every_configured_name_to_its_class():
    assert {"ambient": AmbientLoss, "tweedie": AmbientTweedieLoss, "naive": NaiveLoss, "oracle": OracleLoss}.items() \
        <= LOSSES.items()
    for name, cls in LOSSES.items():
        assert cls.name == name and issubclass(cls, Loss)
    assert OracleLoss.needs_reference and not AmbientLoss.needs_reference and AmbientLoss.subsamples


@pytest.mark.parametrize("name", ["ambient", "tweedie", "naive", "oracle"])
def test_from_config_builds_the_configured_loss(name):
    cfg = TrainConfig(loss=name, noise_sigma=0.2 if name == "tweedie" else 0.0, delta=0.3, sigma_data=0.4,
                      weighting="edm")
    loss = build_loss(cfg, noise_sigma=0.2, mask_channels=1)
    assert type(loss) is LOSSES[name] and loss.sigma_data == pytest.approx(0.4)
    if name == "ambient":
        assert loss.delta == pytest.approx(0.3) and loss.extra_acceleration is None  # pixel rows are no lines
        mri = build_loss(cfg.replace(operator="mri", center_lines=[2, 4]), 0.0, 1)
        assert mri.extra_acceleration == pytest.approx(2.0) and mri.center_range == (2, 4)
    if name in ("naive", "oracle"):
        assert loss.mask == "ones"


def test_config_checks_are_asked_of_the_loss():
    with pytest.raises(ValueError, match="needs noisy data"):
        TrainConfig(loss="tweedie").validate()
    with pytest.raises(ValueError, match="no rows to subsample"):
        TrainConfig(loss="ambient", operator="noise").validate()
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="nope").validate()


@pytest.mark.parametrize("loss", [AmbientLoss(0.3, weighting="uncertainty"), NaiveLoss(mask="ones"),
                                  OracleLoss(mask="ones"), AmbientTweedieLoss(sigma_n=0.2)])
def test_every_loss_returns_a_record_with_sigma_and_band_values(loss):
    batch = _batch(noise=0.2)
    g = torch.Generator().manual_seed(1)
    out = loss.evaluate(Zero(), batch, g)
    assert isinstance(out, LossOutput)
    assert out.per_sample.shape == (B,) and out.sigma.shape == (B,) and out.band_values().shape == (B,)
    again = loss(Zero(), batch, torch.Generator().manual_seed(1))
    assert torch.allclose(again, out.per_sample)  # calling the loss returns the per-sample loss
    assert not hasattr(loss, "last_sigma") and not hasattr(loss, "last_weighted")


def test_mixture_merges_its_parts_records_in_batch_order():
    batch = _batch()
    clean, corrupted = NaiveLoss(mask="ones"), AmbientLoss(0.3, weighting="edm")
    mix = MixtureLoss(clean, corrupted)
    out = mix.evaluate(Zero(), batch, torch.Generator().manual_seed(2))
    assert out.sigma is not None and out.sigma.shape == (B,) and torch.all(out.sigma > 0)
    # D = 0: the ambient part's weighted error is λ(σ)·mean(y²) on the measured rows, naive: λ(σ)·mean(x̂²)
    flags = torch.tensor([m["clean"] for m in batch.meta])
    x_hat = batch.op.measurements_to_image(batch.y)
    naive = edm_weight(out.sigma, 0.5) * (x_hat**2).reshape(B, -1).mean(1)
    assert torch.allclose(out.per_sample[flags], naive[flags], rtol=1e-5)
    assert torch.allclose(out.weighted, out.per_sample)  # no learned uncertainty: the same values
    # the trainer's per-σ bands see every sample (the record no longer vanishes with the mixture)
    assert band_index(out.sigma, torch.tensor([0.002, 1.0, 80.0])).numel() == B


def test_mixture_of_a_plain_callable_keeps_the_loss_and_drops_sigma():
    batch = _batch()

    def plain(net, b, generator=None):
        return torch.ones(len(b))

    out = MixtureLoss(plain, AmbientLoss(0.3)).evaluate(Zero(), batch, torch.Generator().manual_seed(0))
    assert out.sigma is None and out.per_sample.shape == (B,)
    assert torch.all(out.per_sample[torch.tensor([m["clean"] for m in batch.meta])] == 1)


# ---------------------------------------------------------------------- Ambient Omni noise-level gating
class FixedSigma:
    def __init__(self, s: float):
        self.s = s

    def sample(self, n, generator=None, device=None, dtype=torch.float32):
        return torch.full((n,), self.s, device=device, dtype=dtype)

    def sample_truncated(self, n, lower=0.0, upper=None, generator=None, device=None, dtype=torch.float32):
        return torch.full((n,), self.s, device=device, dtype=dtype)


class Linear(torch.nn.Module):
    """D(x_t, σ) = a x_t: the family in which the Gaussian toy's denoiser lies (E[x | x_t] = s²/(s²+σ²) x_t)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a

    def forward(self, x, sigma, mask=None):
        return self.a * x


def _mixed_gaussian(n: int, s: float, sigma_n: float) -> MeasurementBatch:
    """x ~ N(0, s²) per pixel; the first half clean, the second half y = x + σ_n ε."""
    g = torch.Generator().manual_seed(5)
    x = s * torch.randn(n, 1, 1, 1, generator=g, dtype=torch.float64)
    sn = torch.cat([torch.zeros(n // 2), torch.full((n - n // 2,), sigma_n)]).double()
    op = GaussianNoise(sn)
    y = x + sn.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    meta = [{"clean": i < n // 2} for i in range(n)]
    return MeasurementBatch(y, op, torch.ones(n), meta, None)


def _minimiser(loss, batch) -> float:
    """argmin_a of the mean loss of D = a x_t (quadratic in a: three evaluations with the same noise)."""
    val = {a: float(loss(Linear(a), batch, torch.Generator().manual_seed(9)).mean()) for a in (-1.0, 0.0, 1.0)}
    curv, slope = (val[1.0] + val[-1.0]) / 2 - val[0.0], (val[1.0] - val[-1.0]) / 2
    return -slope / (2 * curv)


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_gated_mixture_is_minimised_by_the_clean_denoiser_at_every_sigma(sigma):
    from ambient_imaging.training.losses import NoiseGate

    s, sigma_n = 1.0, 1.0
    batch = _mixed_gaussian(20000, s, sigma_n)
    dist = FixedSigma(sigma)
    gated = MixtureLoss(NaiveLoss(sigma_dist=dist, weighting="edm"),
                        AmbientTweedieLoss(sigma_n=None, sigma_dist=dist), gate=NoiseGate())
    right = s**2 / (s**2 + sigma**2)
    assert _minimiser(gated, batch) == pytest.approx(right, abs=0.01)
    out = gated.evaluate(Linear(0.5), batch, torch.Generator().manual_seed(9))
    noisy = torch.arange(len(batch)) >= len(batch) // 2
    assert bool(torch.all(out.active[~noisy]))  # clean samples train at every σ
    assert bool(torch.all(out.active[noisy])) == (sigma >= sigma_n)  # noisy ones only above σ_n
    if sigma < sigma_n:
        assert float(out.per_sample[noisy].abs().max()) == 0.0
    # without the gate, treating the noisy samples as clean biases the denoiser
    naive = MixtureLoss(NaiveLoss(sigma_dist=dist, weighting="edm"), NaiveLoss(sigma_dist=dist, weighting="edm"))
    assert abs(_minimiser(naive, batch) - right) > 0.015


def test_gate_needs_a_loss_with_a_crossing_point():
    from ambient_imaging.training.losses import NoiseGate

    with pytest.raises(TypeError, match="crossing point"):
        MixtureLoss(NaiveLoss(), NaiveLoss(), gate=NoiseGate())
    with pytest.raises(ValueError, match="factor"):
        NoiseGate(0.5)
