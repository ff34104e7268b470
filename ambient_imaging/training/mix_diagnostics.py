"""Per-σ-band loss of each kind of a mixed set (issue 19's diagnostics).

The trainer's ``metrics.csv`` columns ``loss_s*`` merge every sample of a batch: in a mixed set the
complete (clean / fully sampled) and the corrupted samples share one number per band. To say *why* a
mixture prior does or does not beat an all-corrupted one, :func:`kind_band_losses` evaluates a
trained denoiser on the training set with the mixture's parts separately and returns the mean
``λ(σ) · error`` per σ band (the same bands and values as ``metrics.csv``) for each kind.

::

    from ambient_imaging.training.mix_diagnostics import run_kind_band_losses
    run_kind_band_losses("runs/mixture")      # {"complete": {"s0.002": ..., ...}, "corrupted": {...}, "counts": ...}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

__all__ = ["kind_band_losses", "run_kind_band_losses"]


@torch.no_grad()
def kind_band_losses(net: Any, loss: Any, dataset: Any, batches: int = 4, batch_size: int = 16,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean ``λ(σ)·error`` per σ band of each kind, for ``net`` under a :class:`~.losses.MixtureLoss`.

    ``batches`` batches of ``batch_size`` items of ``dataset`` (seeded order); σ drawn by the loss
    (seeded). Samples gated out at their σ are left out, as in the trainer. Returns
    ``{"complete": {band: value}, "corrupted": {band: value}, "counts": {"complete": {band: n}, ...}}``
    (``nan`` where no sample of the kind fell in the band).
    """
    from ambient_imaging.datasets import collate_measurements

    from .data import ResumableBatchSampler
    from .losses.mixture import as_output, select
    from .sigma import band_index, band_labels
    from .trainer import SIGMA_BAND_EDGES

    if not hasattr(loss, "clean_loss") or not hasattr(loss, "corrupted_loss"):
        raise TypeError(f"kind_band_losses: needs a MixtureLoss, got {type(loss).__name__}")
    labels = band_labels(SIGMA_BAND_EDGES)
    sums = {k: [0.0] * len(labels) for k in ("complete", "corrupted")}
    counts = {k: [0] * len(labels) for k in ("complete", "corrupted")}
    sampler = ResumableBatchSampler(len(dataset), batch_size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    for k in range(int(batches)):
        batch = collate_measurements([dataset[i] for i in sampler.batch(k)])
        flags = [bool(m.get(loss.key, False)) for m in batch.meta]
        for kind, part, want in (("complete", loss.clean_loss, True), ("corrupted", loss.corrupted_loss, False)):
            idx = [i for i, f in enumerate(flags) if f == want]
            if not idx:
                continue
            out = as_output(part, net, select(batch, idx), gen)
            if out.sigma is None:
                continue
            bands = band_index(out.sigma, SIGMA_BAND_EDGES)
            vals = out.band_values().double().cpu().reshape(-1)
            keep = torch.ones_like(bands, dtype=torch.bool) if out.active is None else out.active.cpu()
            for b in range(len(labels)):
                sel = (bands == b) & keep
                sums[kind][b] += float(vals[sel].sum())
                counts[kind][b] += int(sel.sum())
    res: dict[str, dict[str, Any]] = {
        kind: {lab: (sums[kind][b] / counts[kind][b] if counts[kind][b] else math.nan) for b, lab in enumerate(labels)}
        for kind in sums
    }
    res["counts"] = {kind: dict(zip(labels, counts[kind])) for kind in counts}
    return res


def run_kind_band_losses(run: str | Path, batches: int = 4, batch_size: int = 16,
                         seed: int = 0) -> dict[str, dict[str, float]]:
    """:func:`kind_band_losses` of a mixed training run (its EMA denoiser, its data and loss, rebuilt from
    its ``config.toml``)."""
    from .assembly import build_loss
    from .config import TrainConfig
    from .data import build_training_data
    from .mix import apply_mix
    from .prior import load_prior

    cfg = TrainConfig.load(Path(run) / "config.toml")
    data = build_training_data(cfg)
    if getattr(data, "mix", None) is None or not data.mix.mixed:
        raise ValueError(f"{run}: not a mixed training set (nothing to split by kind)")
    loss = apply_mix(cfg, data, build_loss(cfg, data.noise_sigma, data.mask_channels), {}, [])
    return kind_band_losses(load_prior(run).denoiser, loss, data.dataset, batches, batch_size, seed)
