"""Trainer: loss decreases, EMA/LR schedule, NaN handling, stopping rules, data order, no clean data leaks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import Dataset

from ambient_imaging.datasets import collate_measurements
from ambient_imaging.networks import EDMPrecond, UNet
from ambient_imaging.operators import PixelMask, dust_mask
from ambient_imaging.training import (
    NonFiniteLossError,
    ResumableBatchSampler,
    TrainConfig,
    Trainer,
    latest_checkpoint,
    load_prior,
    seed_everything,
)


# ---------------------------------------------------------------------- shared fixtures (imported by other tests)
class TinyMasked(Dataset):
    """Scaled Gaussian bumps (N, 1, S, S), each behind its own dust mask; clean images in "reference"."""

    def __init__(self, n: int = 24, size: int = 8, corruption: float = 0.5, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        t = torch.linspace(-1, 1, size)
        bump = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / 0.3)
        amp = torch.linspace(-0.8, 0.8, n)[torch.randperm(n, generator=g)]
        self.x = (amp[:, None, None, None] * bump + 0.02 * torch.randn(n, 1, size, size, generator=g)).contiguous()
        self.m = dust_mask((n, 1, size, size), corruption, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        op = PixelMask(self.m[i : i + 1])
        return {"y": op(self.x[i : i + 1])[0], "operator": op, "scale": 1.0, "meta": {"i": i}, "reference": self.x[i]}


def tiny_net(mask_channels: int = 1) -> EDMPrecond:
    """A very small real EDMPrecond(UNet.tiny) for CPU tests."""
    return EDMPrecond(UNet.tiny(1 + mask_channels, 1, model_channels=8), image_channels=1, mask_channels=mask_channels)


def ambient_loss(delta: float = 0.2):
    """The real AmbientLoss."""
    from ambient_imaging.training.losses import AmbientLoss

    return AmbientLoss(delta=delta)


def tiny_config(out, **kw) -> TrainConfig:
    base = dict(
        data="tiny", operator="mask", out=str(out), steps=30, batch_size=8, lr=3e-3, warmup_steps=3,
        checkpoint_every=10, log_every=1, progress=False, device="cpu", network="tiny", ema_halflife_images=64.0,
    )
    base.update(kw)
    return TrainConfig(**base)


PRIOR_INFO = {
    "family": "mask", "image_shape": [1, 8, 8], "is_complex": False, "mask_channels": 1, "noise_sigma": 0.0,
    "delta": 0.2, "corruption": 0.5, "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5, "scale_rule": "none",
}


def make_trainer(out, loss=None, dataset=None, ctx=None, **kw) -> Trainer:
    cfg = tiny_config(out, **kw)
    seed_everything(cfg.seed)
    return Trainer(cfg, dataset or TinyMasked(), tiny_net(), loss or ambient_loss(), prior_info=PRIOR_INFO, ctx=ctx)


def read_metrics(run_dir) -> list[dict[str, float]]:
    import csv

    with open(run_dir / "metrics.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ---------------------------------------------------------------------- tests
def test_loss_decreases_and_prior_loads(tmp_path):
    torch.set_num_threads(1)
    tr = make_trainer(tmp_path / "run", steps=40, lr=1e-2)
    ds = TinyMasked()
    full = collate_measurements([ds[i] for i in range(len(ds))])
    full.reference = None

    def held_fixed_loss(net) -> float:  # the training loss at fixed σ/noise draws, over the whole set
        gens = [torch.Generator().manual_seed(100 + s) for s in range(4)]
        with torch.no_grad():
            return float(torch.stack([ambient_loss()(net, full, generator=g).mean() for g in gens]).mean())

    def clean_mse(net) -> float:  # denoising error on the (never seen) clean images at σ = 1
        g = torch.Generator().manual_seed(5)
        x = ds.x
        with torch.no_grad():
            return float(((net(x + torch.randn(x.shape, generator=g), 1.0, torch.ones_like(x)) - x) ** 2).mean())

    before, mse_before = held_fixed_loss(tr.net), clean_mse(tr.net)
    res = tr.fit()
    after = held_fixed_loss(tr.net)
    assert after < 0.9 * before, (before, after)
    assert clean_mse(tr.ema) < 0.6 * mse_before
    assert res.step == 40 and res.images == 40 * 8 and res.stopped == "steps"
    rows = read_metrics(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    losses = torch.tensor([r["loss"] for r in rows])
    assert torch.isfinite(losses).all()
    assert rows[0]["lr"] == pytest.approx(1e-2 / 3, rel=1e-5) and rows[5]["lr"] == pytest.approx(1e-2)
    prior = load_prior(tmp_path / "run")
    assert prior.family == "mask" and prior.image_shape == (1, 8, 8) and prior.mask_channels == 1
    assert prior.step == 40 and not prior.denoiser.training
    assert all(not p.requires_grad for p in prior.denoiser.parameters())
    item = ds[0]
    noisy = item["y"][None] + 0.3 * torch.randn(1, 1, 8, 8)
    out = prior.denoiser(noisy, torch.tensor([0.3]), item["operator"].mask_channels())
    assert out.shape == (1, 1, 8, 8) and torch.isfinite(out).all()
    # the EMA weights differ from the raw ones (and load_prior(ema=False) gives the raw ones)
    raw = load_prior(tmp_path / "run", ema=False).denoiser.state_dict()
    ema = prior.denoiser.state_dict()
    assert not all(torch.equal(raw[k], ema[k]) for k in raw)
    assert all(torch.equal(raw[k], v.detach()) for k, v in tr.net.state_dict().items())


def test_ema_beta_and_lr_schedule(tmp_path):
    tr = make_trainer(tmp_path / "r", ema_halflife_images=100.0, ema_rampup=0.0, warmup_steps=4, lr=1e-3)
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 100))
    assert [tr.lr_at(s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    tr.cfg.ema_rampup = 0.05
    tr.images = 800  # ramp-up: half-life min(100, 0.05 * 800 = 40)
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 40))
    # one EMA update is an exact lerp with that β
    with torch.no_grad():
        for p in tr.net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in tr.ema.parameters()]
    tr._update_ema()
    b = 0.5 ** (8 / 40)
    for e0, e1, p in zip(before, tr.ema.parameters(), tr.net.parameters()):
        torch.testing.assert_close(e1, b * e0 + (1 - b) * p, rtol=1e-6, atol=1e-6)


class NaNAfter:
    """Wraps a loss; returns NaN from optimizer step ``n`` on (counts calls)."""

    def __init__(self, loss, n: int):
        self.loss, self.n, self.calls = loss, n, 0

    def __call__(self, net, batch, generator=None):
        self.calls += 1
        out = self.loss(net, batch, generator=generator)
        return out * float("nan") if self.calls >= self.n else out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    tr = make_trainer(run, loss=NaNAfter(ambient_loss(), 7), checkpoint_every=3, steps=20)
    with pytest.raises(NonFiniteLossError, match=r"NaN|nan") as err:
        tr.fit()
    assert "step 7" in str(err.value) and "step-00000006" in str(err.value)
    assert latest_checkpoint(run).name == "step-00000006"
    assert not any(p.name.startswith(".") for p in (run / "checkpoints").iterdir())
    prior = load_prior(run)
    assert prior.step == 6
    assert all(torch.isfinite(p).all() for p in prior.denoiser.parameters())
    assert max(int(r["step"]) for r in read_metrics(run)) == 6


def test_minutes_limit_and_clean_data_never_reaches_loss(tmp_path):
    seen = []

    def loss(net, batch, generator=None):
        seen.append(batch.reference)
        return ambient_loss()(net, batch, generator=generator)

    from ambient_imaging.training.data import MeasurementsOnly

    tr = make_trainer(tmp_path / "run", loss=loss, dataset=MeasurementsOnly(TinyMasked()), steps=10_000, minutes=0.01)
    res = tr.fit()
    assert res.stopped == "minutes" and 0 < res.step < 10_000
    assert latest_checkpoint(tmp_path / "run").name == f"step-{res.step:08d}"
    assert seen and all(r is None for r in seen)


def test_gradient_accumulation_matches_full_batch(tmp_path):
    """accumulate=2 × 4 gives the same update as one batch of 8 (same samples, same noise stream per sample;
    fp32: in bf16 the two sums round differently)."""

    def plain(net, batch, generator=None):  # deterministic loss: no random draws
        sigma = torch.full((len(batch),), 0.5)
        x = batch.y
        return ((net(x, sigma, batch.op.mask_channels()) - x) ** 2).flatten(1).mean(1)

    a = make_trainer(tmp_path / "a", loss=plain, steps=2, accumulate=1, grad_clip=0.0, precision="fp32")
    a.fit()
    b = make_trainer(tmp_path / "b", loss=plain, steps=2, accumulate=2, grad_clip=0.0, precision="fp32")
    b.fit()
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


def test_resumable_sampler_positions_and_shards():
    s = ResumableBatchSampler(10, 4, seed=3)
    it = iter(s)
    stream = [next(it) for _ in range(10)]
    flat = [i for b in stream for i in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # epochs are permutations
    assert flat[:10] != flat[10:20]
    resumed = ResumableBatchSampler(10, 4, seed=3, start_batch=7)
    assert next(iter(resumed)) == stream[7]
    # two ranks: disjoint halves of each epoch (9 items padded to 10)
    r0 = ResumableBatchSampler(9, 5, seed=1, rank=0, world_size=2).batch(0)
    r1 = ResumableBatchSampler(9, 5, seed=1, rank=1, world_size=2).batch(0)
    assert len(set(r0) | set(r1)) == 9
    with pytest.raises(ValueError, match="empty"):
        ResumableBatchSampler(0, 4)


def test_trainer_rejects_bad_batch_split(tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        make_trainer(tmp_path / "r", batch_size=6, accumulate=4)
    assert math.isfinite(make_trainer(tmp_path / "r").lr_at(0))


def test_fresh_fit_refuses_an_existing_run(tmp_path):
    make_trainer(tmp_path / "run", steps=1).fit()
    with pytest.raises(ValueError, match="already holds a training run"):
        make_trainer(tmp_path / "run", steps=2).fit()
    assert make_trainer(tmp_path / "run", steps=2).fit(resume=True).step == 2


def test_complex_mri_items_train_and_load(tmp_path):
    mri = pytest.importorskip("ambient_imaging.operators.mri")
    n, coils = 16, 4
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(-1, 1, n)
    maps = torch.stack([torch.exp(-((t[None, :] - 0.8 * math.cos(a)) ** 2 + (t[:, None] - 0.8 * math.sin(a)) ** 2)
                                  + 1j * a) for a in (0.0, 1.6, 3.1, 4.7)])[None].to(torch.complex64)
    items = []
    for _ in range(6):
        x = torch.complex(torch.randn(1, 1, n, n, generator=g), torch.randn(1, 1, n, n, generator=g)) * 0.3
        acs = torch.zeros(1, n, dtype=torch.bool)
        acs[:, n // 2 - 2 : n // 2 + 2] = True
        op = mri.MultiCoilMRI(maps, acs | (torch.rand(1, n, generator=g) < 0.3), acs=acs)
        items.append({"y": op(x)[0], "operator": op, "scale": 1.0})
    assert items[0]["y"].shape == (coils, n, n)
    cfg = tiny_config(tmp_path / "mri", steps=3, batch_size=2, operator="mri")
    seed_everything(0)
    net = EDMPrecond(UNet.tiny(3, 2, model_channels=8), image_channels=1, is_complex=True, mask_channels=1)
    info = dict(PRIOR_INFO, family="mri", image_shape=[1, n, n], is_complex=True)
    res = Trainer(cfg, items, net, ambient_loss(), prior_info=info).fit()
    assert res.step == 3 and math.isfinite(res.loss)
    prior = load_prior(tmp_path / "mri")
    assert prior.is_complex and prior.family == "mri"
    out = prior.denoiser(torch.zeros(1, 1, n, n, dtype=torch.complex64), 0.5, items[0]["operator"].mask_channels())
    assert out.dtype == torch.complex64 and torch.isfinite(torch.view_as_real(out)).all()


def test_config_toml_has_sections_and_old_flat_files_still_load(tmp_path):
    from ambient_imaging.training.config import SECTIONS, flat_config, write_toml

    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover
        import tomli as tomllib

    cfg = TrainConfig(data="faces", out=str(tmp_path / "r"), loss="naive", lr=5e-4, network="tiny",
                      network_overrides={"channels": 8}, center_lines=[2, 6])
    path = tmp_path / "config.toml"
    cfg.save(path)
    written = tomllib.loads(path.read_text())
    assert set(SECTIONS) <= set(written)
    assert written["optim"]["lr"] == 5e-4 and written["loss"]["name"] == "naive"
    assert written["network"] == {"preset": "tiny", "overrides": {"channels": 8}, "mask_domain": "auto"}
    assert "lr" not in written and TrainConfig.load(path) == cfg
    assert cfg.section("optim")["lr"] == 5e-4 and cfg.section("data")["data"] == "faces"
    # a config.toml of the flat layout (before the sections) reads the same
    flat = tmp_path / "old.toml"
    flat.write_text(write_toml(cfg.to_dict()))
    assert TrainConfig.load(flat) == cfg
    assert flat_config(cfg.to_dict()) == cfg.to_dict()
    with pytest.raises(ValueError, match="given twice"):
        TrainConfig.from_dict({"lr": 1e-3, "optim": {"lr": 2e-3}})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) lrr in \[optim\]"):
        TrainConfig.from_dict({"optim": {"lrr": 2e-3}})
