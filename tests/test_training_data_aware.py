"""Training that respects the data (issue 10): σ_n, scoring, per-σ weighting and bands, σ_data estimate,
ranges of masks, throughput helpers."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.networks import EDMPrecond, UNet
from ambient_imaging.operators import MultiCoilMRI, PixelMask
from ambient_imaging.training import TrainConfig, Trainer, seed_everything
from ambient_imaging.training.hardware import cpu_contention, resolve_precision
from ambient_imaging.training.losses import AmbientLoss, image_noise_sigma
from ambient_imaging.training.sigma import LogNormalSigma, band_index, edm_weight, floor_weight, sigma_bands
from ambient_imaging.training.statistics import (
    estimate_sigma_data,
    line_center_width,
    mask_in_training_range,
    mask_statistics,
)
from ambient_imaging.training.trainer import BAND_COLUMNS, CachedItems


class FixedSigma(LogNormalSigma):
    """Always the same σ (also when truncated above σ_n)."""

    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def sample(self, n, generator=None, device=None, dtype=torch.float32):
        return torch.full((n,), self.s, device=device, dtype=dtype)

    def sample_truncated(self, n, lower=None, upper=None, generator=None, device=None, dtype=torch.float32):
        return self.sample(n, generator, device, dtype)


class Const(torch.nn.Module):
    """Denoiser returning a fixed image (optionally with a learned-uncertainty value)."""

    def __init__(self, out: torch.Tensor, logvar: float | None = None):
        super().__init__()
        self.out, self.lv = out, logvar
        self.mask_channels = 1
        self.seen: list[torch.Tensor] = []

    def forward(self, x, sigma, mask=None, return_logvar=False):
        self.seen.append(x)
        d = self.out.expand_as(x).to(x.dtype)
        if return_logvar:
            return d, torch.full((x.shape[0],), float(self.lv or 0.0))
        return d


def _line_op(b: int, w: int = 16, h: int = 8, acs: int = 4, lines: int = 8, seed: int = 0, noise: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, w, dtype=torch.bool)
    c0 = w // 2 - acs // 2
    mask[:, c0 : c0 + acs] = True
    acs_t = mask.clone()
    for i in range(b):
        others = torch.nonzero(~mask[i]).reshape(-1)
        pick = others[torch.randperm(len(others), generator=g)[: lines - acs]]
        mask[i, pick] = True
    maps = torch.ones(1, 1, h, w, dtype=torch.complex64)
    return MultiCoilMRI(maps, mask, noise_sigma=noise, acs=acs_t)


# ---------------------------------------------------------------------- weights and bands
def test_floor_weight_matches_edm_without_floor_and_saturates_below_it():
    s = torch.logspace(-3, 1, 9)
    assert torch.allclose(floor_weight(s, 0.3, 0.0), edm_weight(s, 0.3))
    w = floor_weight(s, 0.3, 0.05)
    top = (0.05**2 + 0.3**2) / (0.05 * 0.3) ** 2
    assert float(w.max()) <= top * (1 + 1e-5) and float(w[0]) > 0.9 * top
    assert torch.allclose(w[-1], edm_weight(s[-1:], 0.3)[0], rtol=0.05)


def test_sigma_bands_cover_the_edm_range_log_evenly():
    e = sigma_bands(6, 0.002, 80.0)
    assert len(e) == 7 and math.isclose(e[0], 0.002) and math.isclose(e[-1], 80.0)
    ratios = [b / a for a, b in zip(e, e[1:])]
    assert max(ratios) - min(ratios) < 1e-9
    idx = band_index(torch.tensor([1e-4, 0.003, 0.5, 79.0, 500.0]), e)
    assert idx.tolist() == [0, 0, 3, 5, 5]


# ---------------------------------------------------------------------- measurement noise
def test_image_noise_level_follows_the_operator_convention():
    y = torch.zeros(2, 1, 4, 4)
    assert image_noise_sigma(PixelMask(torch.ones(1, 1, 4, 4), noise_sigma=0.1), y, y) == pytest.approx(0.1)
    op = _line_op(2, noise=0.2)
    yk = torch.zeros(2, 1, 8, 16, dtype=torch.complex64)
    assert image_noise_sigma(op, yk, torch.zeros(2, 1, 8, 16, dtype=torch.complex64)) == pytest.approx(0.2 / 2**0.5)


def test_noisy_data_train_above_sigma_n_and_the_input_noise_adds_up():
    b, sn = 4, 0.3
    op = PixelMask(torch.ones(b, 1, 16, 16), noise_sigma=sn)
    y = torch.zeros(b, 1, 16, 16)  # x = 0: the input is exactly the noise added by the loss
    loss = AmbientLoss(0.2, keep=False)
    net = Const(torch.zeros(1, 1, 16, 16))
    out = loss.evaluate(net, MeasurementBatch(y, op, torch.ones(b)), torch.Generator().manual_seed(0))
    assert bool(torch.all(out.sigma > sn))
    # a fixed σ: the loss adds only √(σ² − σ_n²) (the data already carry σ_n)
    loss = AmbientLoss(0.2, keep=False, sigma_dist=FixedSigma(0.5))
    net = Const(torch.zeros(1, 1, 16, 16))
    loss(net, MeasurementBatch(y, op, torch.ones(b)), torch.Generator().manual_seed(0))
    u = net.seen[0]
    kept = u != 0
    assert float(u[kept].std()) == pytest.approx(math.sqrt(0.5**2 - sn**2), rel=0.1)


def test_tweedie_scoring_prefers_the_clean_denoiser_and_plain_scoring_the_noisy_one():
    """On Ã's rows the target's noise is in the input: plain scoring rewards reproducing it."""
    b, n, sn, sig = 8, 32, 0.3, 0.35
    g = torch.Generator().manual_seed(1)
    op = PixelMask(torch.ones(b, 1, n, n), noise_sigma=sn)
    y = sn * torch.randn(b, 1, n, n, generator=g)  # clean x = 0

    class Echo(torch.nn.Module):
        mask_channels = 1

        def forward(self, x, sigma, mask=None):
            return x  # reproduces the noisy input

    def score(heldout, net):
        loss = AmbientLoss(0.3, keep=False, heldout=heldout, sigma_dist=FixedSigma(sig))
        return float(loss(net, MeasurementBatch(y, op, torch.ones(b)), torch.Generator().manual_seed(2)).mean())

    clean = Const(torch.zeros(1, 1, n, n))
    assert score(False, Echo()) < score(False, clean)  # the old default is biased towards the noise
    assert score(None, clean) < score(None, Echo())  # Tweedie-corrected scoring is not
    assert score(True, clean) <= score(True, Echo())  # held-out pixels: the echo has no input there


# ---------------------------------------------------------------------- weighting
def test_uncertainty_weighting_is_edm2s_form():
    b = 3
    op = PixelMask(torch.ones(b, 1, 8, 8))
    y = torch.ones(b, 1, 8, 8) * 0.5
    args = dict(keep=False, sigma_dist=FixedSigma(0.2), sigma_data=0.5)
    plain = AmbientLoss(0.3, weighting="edm", **args)(Const(torch.zeros(1, 1, 8, 8)), MeasurementBatch(
        y, op, torch.ones(b)), torch.Generator().manual_seed(0))
    unc = AmbientLoss(0.3, weighting="uncertainty", **args)(Const(torch.zeros(1, 1, 8, 8), logvar=0.7),
                                                            MeasurementBatch(y, op, torch.ones(b)),
                                                            torch.Generator().manual_seed(0))
    assert torch.allclose(unc, plain * math.exp(-0.7) + 0.7, rtol=1e-5)
    with pytest.raises(TypeError, match="return_logvar"):
        class NoLogvar(torch.nn.Module):
            mask_channels = 1

            def forward(self, x, sigma, mask=None, return_logvar=False):
                return x

        AmbientLoss(0.3, weighting="uncertainty", **args)(NoLogvar(), MeasurementBatch(y, op, torch.ones(b)))


def test_edmprecond_logvar_head_round_trips_and_starts_at_zero():
    net = EDMPrecond(UNet.tiny(3, 2, model_channels=8), 1, is_complex=True, mask_channels=1, logvar_channels=16)
    x = torch.randn(2, 1, 8, 8, dtype=torch.complex64)
    d, lv = net(x, torch.tensor([0.1, 2.0]), mask=torch.ones(1, 1, 8, 8), return_logvar=True)
    assert d.shape == x.shape and lv.shape == (2,) and torch.all(lv == 0)
    again = EDMPrecond.from_config(net.config())
    again.load_state_dict(net.state_dict())
    assert again.logvar_channels == 16
    assert torch.equal(again(x, 0.5, mask=torch.ones(1, 1, 8, 8)), net(x, 0.5, mask=torch.ones(1, 1, 8, 8)))


# ---------------------------------------------------------------------- ranges of masks
def test_per_sample_delta_and_centre_range():
    b = 64
    op = _line_op(b, w=32, acs=8, lines=16)
    rows = op.row_mask()
    d = torch.linspace(0.05, 0.9, b)
    a_t = op.subsample(d, torch.Generator().manual_seed(0), keep=False, batch_size=b)
    kept = a_t.row_mask().sum(1).float() / rows.sum(1).float()
    assert bool(torch.all(a_t.row_mask() <= rows))
    assert float(kept[:16].mean()) > float(kept[-16:].mean()) + 0.4  # more δ, fewer rows

    loss = AmbientLoss(0.1, extra_acceleration=2.0, center_range=(2, 6))
    y = torch.zeros(b, 1, 8, 32, dtype=torch.complex64)
    a_t = loss.further_corrupt(MeasurementBatch(y, op, torch.ones(b)), torch.Generator().manual_seed(3))
    ratio = rows.sum(1).float() / a_t.row_mask().sum(1).float()
    assert 1.0 <= float(ratio.min()) and float(ratio.max()) <= 4.0 and float(ratio.mean()) > 1.2
    widths = [line_center_width(r) for r in a_t.row_mask()]
    assert min(widths) >= 2  # the protected centre block (2..6 lines) always survives
    assert len(set(widths)) > 2


def test_mask_in_training_range_names_the_problem():
    info = {"train_accelerations": [2.0, 4.0], "train_center_lines": [2, 6]}
    op = _line_op(2, w=16, acs=4, lines=8)  # R = 2, 4 centre lines (or more, when random lines touch it)
    stats = mask_statistics(op)
    assert stats[0]["acceleration"] == pytest.approx(2.0)
    ok, msg = mask_in_training_range(info, op)
    assert ok or "centre lines" in msg
    ok, msg = mask_in_training_range(info, _line_op(1, w=32, acs=4, lines=4))  # R = 8
    assert not ok and "R=8" in msg and "[2, 4]" in msg
    ok, msg = mask_in_training_range({}, op)
    assert ok and "no training mask range" in msg


# ---------------------------------------------------------------------- σ_data estimate
def test_sigma_data_estimate_from_undersampled_kspace_and_masked_pixels():
    g = torch.Generator().manual_seed(0)
    n, h, w = 48, 8, 16
    items = []
    true = []
    for i in range(n):
        x = torch.complex(torch.randn(1, 1, h, w, generator=g), torch.randn(1, 1, h, w, generator=g)) * 0.3
        x[..., :, : w // 4] *= 3.0  # not white: energy differs between k-space lines
        op = _line_op(1, w=w, h=h, acs=4, lines=8, seed=i, noise=0.05)
        eps = 0.05 * torch.complex(torch.randn(1, 1, h, w, generator=g), torch.randn(1, 1, h, w, generator=g))
        items.append({"y": (op(x) + op.restrict(eps / 2**0.5))[0], "operator": op})
        true.append(float(x.abs().pow(2).mean() / 2))
    est = estimate_sigma_data(items)
    assert est == pytest.approx(math.sqrt(sum(true) / n), rel=0.12)

    pix = []
    for _ in range(n):
        m = torch.rand(1, 1, h, w, generator=g) < 0.6
        pix.append({"y": (0.4 * m.float())[0], "operator": PixelMask(m)})
    assert estimate_sigma_data(pix) == pytest.approx(0.4, rel=0.05)
    assert estimate_sigma_data([{"y": torch.zeros(3), "operator": object()}]) is None


# ---------------------------------------------------------------------- trainer: bands, cache, precision
def test_metrics_have_per_band_loss_and_gradient_norms(tmp_path):
    from tests.test_trainer import TinyMasked, tiny_net

    cfg = TrainConfig(data="x", out=str(tmp_path / "run"), steps=6, batch_size=6, log_every=3, diagnostics_every=1,
                      progress=False, device="cpu", checkpoint_every=100, warmup_steps=0, precision="fp32")
    seed_everything(0)
    tr = Trainer(cfg, TinyMasked(n=12), tiny_net(), AmbientLoss(0.2, keep=False))
    tr.fit()
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 2 and set(BAND_COLUMNS) <= set(rows[0])
    losses = [float(rows[-1][c]) for c in BAND_COLUMNS if c.startswith("loss_")]
    gnorms = [float(rows[-1][c]) for c in BAND_COLUMNS if c.startswith("gnorm_")]
    assert any(math.isfinite(v) for v in losses) and any(math.isfinite(v) and v > 0 for v in gnorms)
    assert [math.isfinite(v) for v in losses] == [math.isfinite(v) for v in gnorms]


def test_item_cache_reads_each_item_once():
    class Counting(torch.utils.data.Dataset):
        def __init__(self):
            self.reads = 0

        def __len__(self):
            return 4

        def __getitem__(self, i):
            self.reads += 1
            return {"y": torch.full((2,), float(i))}

    base = Counting()
    c = CachedItems(base)
    assert [float(c[i]["y"][0]) for i in (0, 1, 0, 1, 3)] == [0, 1, 0, 1, 3]
    assert base.reads == 3
    tiny = CachedItems(Counting(), max_bytes=8)  # room for one item
    tiny[0], tiny[1], tiny[1]
    assert tiny.dataset.reads == 3


def test_contention_warning_and_precision(monkeypatch):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    msg = cpu_contention()
    assert msg is not None and "load average 7.50" in msg and "OMP_NUM_THREADS=1" in msg
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert cpu_contention() is None
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("fp32", "bf16")


def test_attention_kernel_choice_does_not_change_the_block():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ambient_imaging.networks.layers import UNetBlock

    torch.manual_seed(0)
    blk = UNetBlock(16, 16, emb_channels=8, attention=True, channels_per_head=8)
    torch.nn.init.normal_(blk.proj.weight)
    x, emb = torch.randn(2, 16, 4, 4), torch.randn(2, 8)
    fast = blk(x, emb)
    with sdpa_kernel(SDPBackend.MATH):
        ref = blk(x, emb)
    assert torch.allclose(fast, ref, atol=1e-5)


def test_resolve_data_settings_records_noise_sigma_data_and_mask_range():
    from types import SimpleNamespace

    from ambient_imaging.training.assembly import resolve_data_settings

    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(12):
        op = _line_op(1, w=16, h=8, acs=4, lines=8, seed=i, noise=0.04)
        x = 0.3 * torch.complex(torch.randn(1, 1, 8, 16, generator=g), torch.randn(1, 1, 8, 16, generator=g))
        items.append({"y": op(x)[0], "operator": op, "scale": 1.0, "meta": {}})
    data = SimpleNamespace(dataset=items, family="mri", noise_sigma=0.04, statistics=None)
    cfg = TrainConfig(data="x", operator="mri", out="o")
    cfg2, info, notes = resolve_data_settings(cfg, data)
    assert cfg2.sigma_data == pytest.approx(0.3, rel=0.2) and info["sigma_data_estimated"]
    assert info["noise_sigma_image"] == pytest.approx(0.04 / 2**0.5)
    assert info["scoring"] == "tweedie" and info["weighting"] == "uncertainty"
    assert info["data_accelerations"] == [2.0, 2.0] and info["train_accelerations"] == [2.0, 4.0]
    lo, hi = info["train_center_lines"]
    assert cfg2.center_lines[0] == lo == 2 and hi >= 4
    assert any("σ_data" in n for n in notes)
    # an explicit σ_data and heldout are kept
    cfg3, info3, _ = resolve_data_settings(cfg.replace(sigma_data=0.5, heldout=True), data)
    assert cfg3.sigma_data == 0.5 and not info3["sigma_data_estimated"] and info3["scoring"] == "held-out rows"
