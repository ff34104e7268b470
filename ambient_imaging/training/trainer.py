"""The training loop: AdamW, LR warm-up, clipping, EMA, bf16, compile, accumulation, DDP, resume.

Building a run from a config (network, loss, data settings) lives in :mod:`.assembly`, the
hardware probes in :mod:`.hardware`; this module is the loop: :meth:`Trainer.fit` runs
``_start`` → (``_step`` → ``_report`` → checkpoint)* → ``_finish``.

Reproducibility model (what makes ``--resume`` bit-exact on CPU):

* the data order is a pure function of ``(seed, rank, batch index)``
  (:class:`~ambient_imaging.training.data.ResumableBatchSampler`);
* the noise/subsampling generator is re-seeded at every optimizer step from
  ``(seed, rank, step)`` (a counter-based stream), and its state is
  checkpointed as well;
* weights, EMA weights, AdamW moments and the global RNG states are
  checkpointed (safetensors + JSON, no pickle).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ambient_imaging.datasets import MeasurementBatch, collate_measurements
from ambient_imaging.locks import RunLock

from .batches import StratifiedBatchSampler, clean_batch_size
from .cache import CachedItems
from .checkpoint import (
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    remove_orphans,
    restore_rng,
    save_checkpoint,
)
from .config import TrainConfig
from .data import ResumableBatchSampler, _mix, seed_worker
from .distributed import DistContext, all_reduce_mean, resolve_device
from .hardware import resolve_precision
from .losses import Loss, LossOutput
from .losses.mixture import as_output
from .sigma import band_index, band_labels, sigma_bands

__all__ = [
    "Trainer",
    "TrainResult",
    "NonFiniteLossError",
    "seed_everything",
    "METRICS_COLUMNS",
    "BAND_COLUMNS",
    "SIGMA_BAND_EDGES",
    "CachedItems",
]

METRICS_COLUMNS = ("step", "images", "loss", "lr", "grad_norm", "images_per_s", "seconds")

#: σ bands of the per-band diagnostics (6 log-spaced bands over the EDM range 0.002 .. 80)
SIGMA_BAND_EDGES = sigma_bands(6, 0.002, 80.0)
#: the extra ``metrics.csv`` columns: the loss per σ band (mean λ(σ)-weighted error of the samples
#: that fell in the band since the last row, before a learned per-σ uncertainty) and the
#: gradient norm per σ band (norm of the
#: gradient of the band's mean loss, measured every ``diagnostics_every`` steps; ``nan``: none)
BAND_COLUMNS = tuple(f"loss_{b}" for b in band_labels(SIGMA_BAND_EDGES)) + tuple(
    f"gnorm_{b}" for b in band_labels(SIGMA_BAND_EDGES)
)

LossFn = Callable[..., Tensor]


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient) became NaN/Inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """Summary of a finished (or stopped) run."""

    run_dir: Path
    step: int
    images: int
    loss: float
    seconds: float
    stopped: str  # "steps" | "minutes" | "signal" | "interrupt"
    checkpoint: Path | None

    def summary(self) -> str:
        """One line for the terminal."""
        rate = self.images / self.seconds if self.seconds > 0 else float("nan")
        return (
            f"step {self.step}, {self.images} images, loss {self.loss:.4g}, {self.seconds:.1f} s "
            f"({rate:.1f} img/s), stopped by {self.stopped}; checkpoint {self.checkpoint}"
        )


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Train a denoiser ``net`` with ``loss`` on a measurement ``dataset``.

    Args:
        config: the run settings (validated here).
        dataset: items for :func:`~ambient_imaging.datasets.collate_measurements`.
        net: the denoiser (``net(x, sigma, mask)``); its raw weights are trained and
            an EMA copy is kept. Build it after :func:`seed_everything` so that every
            rank starts from the same weights (DDP also broadcasts rank 0's).
        loss: a :class:`~ambient_imaging.training.losses.Loss` (its record feeds the per-σ-band
            columns; clean references reach it only if it ``needs_reference``), or any
            ``loss(net, batch, generator=...) -> (B,)`` callable.
        run_dir: where ``config.toml``, ``metrics.csv`` and ``checkpoints/`` go
            (default ``config.out``).
        prior_info: what :func:`~ambient_imaging.training.load_prior` needs besides
            the config (family, image_shape, is_complex, mask_channels, ...).
        ctx: distributed context (default: single process on ``config.device``).
        collate_fn: batch collation (default :func:`collate_measurements`).
        clean_items: a mixed set's ``(N,)`` bool clean flags (:attr:`TrainingData.clean_items`); by
            ``config.clean_share`` every batch may hold a fixed number of clean samples
            (:class:`~ambient_imaging.training.data.StratifiedBatchSampler`).
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        net: nn.Module,
        loss: LossFn,
        run_dir: str | os.PathLike | None = None,
        prior_info: dict[str, Any] | None = None,
        ctx: DistContext | None = None,
        collate_fn: Callable[[list], MeasurementBatch] = collate_measurements,
        clean_items: np.ndarray | None = None,
    ):
        self.cfg = config.validate()
        self.ctx = ctx or DistContext(device=resolve_device(config.device))
        if self.cfg.batch_size % (self.cfg.accumulate * self.ctx.world_size):
            raise ValueError(
                f"batch_size {self.cfg.batch_size} must be divisible by accumulate × world size "
                f"({self.cfg.accumulate} × {self.ctx.world_size})"
            )
        self.micro_batch = self.cfg.batch_size // (self.cfg.accumulate * self.ctx.world_size)
        self.run_dir = Path(run_dir if run_dir is not None else self.cfg.out)
        if not str(self.run_dir):
            raise ValueError("no run directory given (--out RUN_DIR)")
        if self.cfg.cache_items and self.cfg.num_workers == 0:
            dataset = CachedItems(dataset)
        self.dataset = dataset
        self.device = self.ctx.device
        self.net = net.to(self.device)
        if self._channels_last():  # faster convolutions (mkldnn); the maths is unchanged
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.loss_fn = loss
        self.prior_info = dict(prior_info or {})
        self.strata = self._strata(clean_items)
        self.collate_fn = collate_fn
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=self.cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=self.cfg.weight_decay
        )
        self.model: nn.Module = self.net
        if self.ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        if self.cfg.compile:
            self.model = torch.compile(self.model)  # type: ignore[assignment]
        gen_device = self.device if self.device.type == "cuda" else "cpu"
        self.generator = torch.Generator(device=gen_device)
        self.step = 0
        self.images = 0
        self.seconds = 0.0
        nb = len(SIGMA_BAND_EDGES) - 1
        self._band_sum, self._band_n = [0.0] * nb, [0] * nb
        self._gnorm_sum, self._gnorm_n = [0.0] * nb, [0] * nb
        self._stop_reason: str | None = None

    # ------------------------------------------------------------------ helpers
    def _channels_last(self) -> bool:
        """``cfg.channels_last``, or by default: on CPU in fp32 (in bf16 GroupNorm's backward is slow then)."""
        if self.cfg.channels_last is not None:
            return bool(self.cfg.channels_last)
        return self.device.type == "cpu" and resolve_precision(self.cfg.precision, self.device) == "fp32"

    def lr_at(self, step: int) -> float:
        """Linear warm-up over ``warmup_steps`` optimizer steps, then constant."""
        w = self.cfg.warmup_steps
        return self.cfg.lr * min(1.0, (step + 1) / w) if w > 0 else self.cfg.lr

    def ema_beta(self) -> float:
        """``β = 0.5 ** (batch / halflife)``, half-life ramped up with images seen (EDM)."""
        half = self.cfg.ema_halflife_images
        if self.cfg.ema_rampup > 0:
            half = min(half, self.images * self.cfg.ema_rampup)
        return 0.5 ** (self.cfg.batch_size / max(half, 1e-8))

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = self.ema_beta()
        for pe, p in zip(self.ema.parameters(), self.net.parameters()):
            pe.lerp_(p.detach(), 1.0 - beta)
        for be, b in zip(self.ema.buffers(), self.net.buffers()):
            be.copy_(b)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if resolve_precision(self.cfg.precision, self.device) == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _state_json(self) -> dict[str, Any]:
        net_cfg = self.net.config() if hasattr(self.net, "config") else None
        return {
            "step": self.step,
            "images": self.images,
            "seconds": self.seconds,
            "world_size": self.ctx.world_size,
            "config": self.cfg.to_dict(),
            "network": net_cfg,
            "prior": self.prior_info,
            "torch_version": torch.__version__,
        }

    def save(self, rng: tuple[dict, dict] | None = None) -> Path | None:
        """Write a checkpoint (rank 0 only); returns its folder."""
        if not self.ctx.is_main:
            return None
        opt_t, opt_meta = optimizer_to_flat(self.optimizer)
        rng_t, rng_meta = rng if rng is not None else capture_rng(self.generator)
        state = self._state_json()
        state["optimizer"] = opt_meta
        state["rng"] = rng_meta
        return save_checkpoint(
            self.run_dir, self.step, self.net, self.ema, {**opt_t, **rng_t}, state, keep=self.cfg.keep_checkpoints
        )

    def resume(self) -> bool:
        """Load the latest checkpoint of ``run_dir`` (all ranks); False if there is none."""
        if latest_checkpoint(self.run_dir) is None:
            return False
        ck = load_checkpoint(self.run_dir)
        self.net.load_state_dict(ck.net)
        self.ema.load_state_dict(ck.ema)
        optimizer_from_flat(self.optimizer, ck.tensors, ck.state["optimizer"])
        restore_rng(ck.tensors, ck.state["rng"], self.generator if self.ctx.is_main else None)
        self.step = int(ck.state["step"])
        self.images = int(ck.state["images"])
        self.seconds = float(ck.state.get("seconds", 0.0))
        return True

    # ------------------------------------------------------------------ metrics
    def _open_metrics(self) -> None:
        path = self.run_dir / "metrics.csv"
        rows: list[list[str]] = []
        if path.is_file():  # drop rows past the resumed step (written after the last checkpoint)
            with open(path, newline="") as f:
                rows = [r for r in csv.reader(f)][1:]
            rows = [r for r in rows if r and r[0].isdigit() and int(r[0]) <= self.step]
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(METRICS_COLUMNS + BAND_COLUMNS)
            w.writerows(rows)
        os.replace(tmp, path)
        self._metrics_file = open(path, "a", newline="")
        self._metrics = csv.writer(self._metrics_file)

    def _log(self, row: dict[str, float]) -> None:
        nb = len(SIGMA_BAND_EDGES) - 1
        bands = [s / n if n else math.nan for s, n in zip(self._band_sum, self._band_n)]
        bands += [s / n if n else math.nan for s, n in zip(self._gnorm_sum, self._gnorm_n)]
        self._band_sum, self._band_n = [0.0] * nb, [0] * nb
        self._gnorm_sum, self._gnorm_n = [0.0] * nb, [0] * nb
        cells = [row[c] if isinstance(row[c], int) else f"{row[c]:.6g}" for c in METRICS_COLUMNS]
        self._metrics.writerow(cells + [f"{v:.6g}" for v in bands])
        self._metrics_file.flush()

    def _diagnose_now(self) -> bool:
        every = self.cfg.diagnostics_every
        return every > 0 and not self.ctx.distributed and self.ctx.is_main and (self.step + 1) % every == 0

    def _band_diagnostics(self, out: LossOutput, diagnose: bool) -> None:
        """Accumulate the loss per σ band; on diagnostic steps also the gradient norm per band.

        Needs the loss's record to carry the σ it drew (``out.sigma``, ``(B,)``); otherwise nothing is logged.
        """
        per_sample, sig = out.per_sample, out.sigma
        if not isinstance(sig, Tensor) or sig.numel() != per_sample.numel():
            return
        bands = band_index(sig, SIGMA_BAND_EDGES)
        if out.active is not None:  # samples gated out at their σ (NoiseGate) are in no band
            bands = torch.where(out.active.to(bands.device), bands, torch.full_like(bands, -1))
        use = out.band_values()  # λ(σ)·error, before a learned uncertainty
        if use.numel() != per_sample.numel():
            use = per_sample.detach()
        values = use.float().cpu()
        params = [p for p in self.net.parameters() if p.requires_grad] if diagnose else []
        for k in bands.unique().tolist():
            if k < 0:
                continue
            sel = bands == k
            self._band_sum[k] += float(values[sel].sum())
            self._band_n[k] += int(sel.sum())
            if params:
                idx = sel.nonzero().reshape(-1).to(per_sample.device)
                grads = torch.autograd.grad(per_sample.float()[idx].mean(), params, retain_graph=True,
                                            allow_unused=True)
                sq = sum(float(g.detach().float().pow(2).sum()) for g in grads if g is not None)
                self._gnorm_sum[k] += math.sqrt(sq)
                self._gnorm_n[k] += 1

    def _strata(self, clean_items: np.ndarray | None) -> tuple[list[np.ndarray], list[int]] | None:
        """The clean and corrupted index groups and their items per micro-batch (``config.clean_share``,
        :func:`~.mix.resolve_clean_share`; recorded in ``prior_info["data_mix"]["batch_clean"]``); ``None``:
        batches drawn uniformly."""
        from .mix import resolve_clean_share

        share = resolve_clean_share(self.cfg.clean_share, clean_items, self.micro_batch)
        if share is None:
            return None
        flags = np.asarray(clean_items, dtype=bool)
        if flags.shape != (len(self.dataset),):  # type: ignore[arg-type]
            raise ValueError(f"clean_items has shape {flags.shape}, the dataset {len(self.dataset)} items")  # type: ignore[arg-type]
        k = clean_batch_size(self.micro_batch, share)
        self.prior_info["data_mix"] = {**self.prior_info.get("data_mix", {}), "batch_clean": {
            "rule": str(self.cfg.clean_share), "clean_share": share, "clean_per_batch": k, "batch": self.micro_batch,
            "natural_share": round(float(flags.mean()), 4)}}
        return [np.flatnonzero(flags), np.flatnonzero(~flags)], [k, self.micro_batch - k]

    # ------------------------------------------------------------------ the loop
    def _loader(self) -> DataLoader:
        start = self.step * self.cfg.accumulate
        sampler: Sampler[list[int]]
        if self.strata is not None:
            sampler = StratifiedBatchSampler(*self.strata, seed=self.cfg.seed, rank=self.ctx.rank,
                                             world_size=self.ctx.world_size, start_batch=start)
        else:
            sampler = ResumableBatchSampler(len(self.dataset), self.micro_batch,  # type: ignore[arg-type]
                                            seed=self.cfg.seed, rank=self.ctx.rank,
                                            world_size=self.ctx.world_size, start_batch=start)
        g = torch.Generator().manual_seed(_mix(self.cfg.seed, self.ctx.rank, self.step, 0xDA7A))
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=self.collate_fn,
            num_workers=self.cfg.num_workers,
            worker_init_fn=seed_worker,
            generator=g,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _install_signal(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, frame):
            self._stop_reason = "signal"

        old = signal.signal(signal.SIGTERM, handler)
        return lambda: signal.signal(signal.SIGTERM, old)

    def fit(self, resume: bool = False, lock: RunLock | None = None) -> TrainResult:
        """Train until ``steps`` or ``minutes``; checkpoint periodically and at exit.

        The run folder is locked for the whole run (:class:`~ambient_imaging.locks.RunLock`, rank 0):
        a second process training into it gets :class:`~ambient_imaging.locks.RunInUseError`.
        Leftovers of killed writes (half-written checkpoints, temporaries) are removed first.
        Raises :class:`NonFiniteLossError` (after keeping the last good checkpoint)
        when the loss or gradient norm stops being finite. ``KeyboardInterrupt``
        saves a checkpoint and is re-raised. ``lock``: the run folder's lock when the caller holds it
        already (the CLI); otherwise it is taken here, once, and released at the end.
        """
        own = lock is None or not lock.held
        if own:
            lock = RunLock(self.run_dir, purpose="train").acquire() if self.ctx.is_main else None
        try:
            if lock is not None:
                remove_orphans(self.run_dir)
            return self._fit(resume)
        finally:
            if own and lock is not None:
                lock.release()

    def _fit(self, resume: bool) -> TrainResult:
        run = self._start(resume)
        try:
            if not run.resumed and self.ctx.is_main:
                run.ckpt = self.save()  # step 0: there is always a good checkpoint to fall back to
            while self.step < self.cfg.steps:
                if self._should_stop(run):
                    break
                run.rng_at_step_start = capture_rng(self.generator) if self.ctx.is_main else None
                loss_value, grad_norm, lr = self._step(run)
                run.rng_at_step_start = None
                self._report(run, loss_value, grad_norm, lr)
                if self.step % self.cfg.checkpoint_every == 0:
                    self.seconds = run.seconds0 + time.perf_counter() - run.t_start
                    run.ckpt = self.save() or run.ckpt
        except KeyboardInterrupt:
            # weights/optimizer are still those after self.step steps; the step that was
            # interrupted is redone on resume from its starting RNG state
            self.seconds = run.seconds0 + time.perf_counter() - run.t_start
            self.save(run.rng_at_step_start)
            if run.bar is not None:
                run.bar.close()
            raise
        finally:
            run.restore_signal()
            if self.ctx.is_main and hasattr(self, "_metrics_file"):
                self._metrics_file.close()
        return self._finish(run)

    # ---- the parts of a run -----------------------------------------------------------
    def _start(self, resume: bool) -> _Run:
        """Check/resume the run folder, write the config and open the metrics; the loop state."""
        cfg, ctx = self.cfg, self.ctx
        if not resume and latest_checkpoint(self.run_dir) is not None:
            raise ValueError(
                f"{self.run_dir} already holds a training run; resume it (resume=True / --resume) "
                "or train into a new directory"
            )
        resumed = self.resume() if resume else False
        ctx.barrier()  # every rank has checked/read the run directory before rank 0 writes to it
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.toml")
            self._open_metrics()
        loader = iter(self._loader())
        restore_signal = self._install_signal()
        # a run bounded by wall time only (steps = a huge sentinel) shows a bar in seconds
        by_time = cfg.minutes is not None and cfg.steps >= 10**6
        bar = self._progress_bar(by_time) if ctx.is_main and cfg.progress else None
        t_start = time.perf_counter()
        return _Run(
            loader=loader, restore_signal=restore_signal, bar=bar, by_time=by_time, resumed=resumed,
            t_start=t_start, seconds0=self.seconds,
            deadline=t_start + 60.0 * cfg.minutes if cfg.minutes is not None else math.inf,
            log_t=t_start, log_images=self.images,
            ckpt=latest_checkpoint(self.run_dir) if resumed else None,
        )

    def _progress_bar(self, by_time: bool) -> Any:
        from tqdm.auto import tqdm

        if by_time:
            return tqdm(total=round(60.0 * self.cfg.minutes), desc="train", unit="s", dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
        return tqdm(total=self.cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)

    def _should_stop(self, run: _Run) -> bool:
        """True (on every rank) once a signal arrived or the time is up; sets ``run.stopped``."""
        stop = torch.tensor(
            [1.0 if (self._stop_reason or time.perf_counter() >= run.deadline) else 0.0], device=self.device
        )
        if self.ctx.distributed:
            torch.distributed.all_reduce(stop, op=torch.distributed.ReduceOp.MAX)
        if stop.item() > 0:  # all ranks agree (a signal may have reached another rank)
            run.stopped = self._stop_reason or ("minutes" if time.perf_counter() >= run.deadline else "signal")
            return True
        return False

    def _step(self, run: _Run) -> tuple[float, Tensor, float]:
        """One optimizer step (all accumulation rounds); returns the loss, gradient norm and LR."""
        cfg, ctx = self.cfg, self.ctx
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        self.generator.manual_seed(_mix(cfg.seed, ctx.rank, self.step, 0x401535))
        keep_reference = isinstance(self.loss_fn, Loss) and self.loss_fn.needs_reference
        total = torch.zeros((), device=self.device)
        for r in range(cfg.accumulate):
            batch: MeasurementBatch = next(run.loader)
            batch = batch.to(self.device)
            if not keep_reference:  # clean images reach only the losses that declare they need them
                batch.reference = None
            sync = (
                self.model.no_sync()
                if ctx.distributed and r < cfg.accumulate - 1 and hasattr(self.model, "no_sync")
                else contextlib.nullcontext()
            )
            with sync:
                with self._autocast():
                    out = as_output(self.loss_fn, self.model, batch, self.generator)
                self._band_diagnostics(out, diagnose=r == 0 and self._diagnose_now())
                mean = out.per_sample.float().mean() / cfg.accumulate
                mean.backward()
            total += mean.detach()
        loss_value = float(all_reduce_mean(total, ctx))
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"the training loss became {loss_value} at step {self.step + 1} "
                f"(after {self.images} images); stopped without saving this state. The last good "
                f"checkpoint is {latest_checkpoint(self.run_dir)}. Try a lower --lr, a longer warm-up, "
                "or check the data for NaN/Inf values."
            )
        params = [p for p in self.net.parameters() if p.grad is not None]
        clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip) if params else torch.zeros(())
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"the gradient norm became {float(grad_norm)} at step {self.step + 1}; stopped without "
                f"saving this state. The last good checkpoint is {latest_checkpoint(self.run_dir)}."
            )
        self.optimizer.step()
        self.step += 1
        self.images += cfg.batch_size
        self._update_ema()
        return loss_value, grad_norm, lr

    def _report(self, run: _Run, loss_value: float, grad_norm: Tensor, lr: float) -> None:
        """Progress bar and, every ``log_every`` steps, a ``metrics.csv`` row (rank 0)."""
        run.last_loss = loss_value
        run.log_loss += loss_value
        run.log_n += 1
        if not self.ctx.is_main:
            return
        if run.bar is not None:
            now = time.perf_counter()
            rate = (self.images - run.log_images) / max(now - run.log_t, 1e-9)
            if run.by_time:
                run.bar.set_postfix(step=self.step, loss=f"{loss_value:.4g}", img_s=f"{rate:.1f}", refresh=False)
                run.bar.update(min(int(now - run.t_start), run.bar.total) - run.bar.n)
            else:
                run.bar.set_postfix(loss=f"{loss_value:.4g}", img_s=f"{rate:.1f}", refresh=False)
                run.bar.update(1)
        if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
            now = time.perf_counter()
            self.seconds = run.seconds0 + now - run.t_start
            self._log(
                {
                    "step": self.step,
                    "images": self.images,
                    "loss": run.log_loss / run.log_n,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "images_per_s": (self.images - run.log_images) / max(now - run.log_t, 1e-9),
                    "seconds": self.seconds,
                }
            )
            run.log_loss, run.log_n, run.log_t, run.log_images = 0.0, 0, now, self.images

    def _finish(self, run: _Run) -> TrainResult:
        """The final checkpoint (unless the last step has one) and the run's summary."""
        ctx = self.ctx
        self.seconds = run.seconds0 + time.perf_counter() - run.t_start
        if run.bar is not None:
            run.bar.close()
        final = latest_checkpoint(self.run_dir) if ctx.is_main else None
        ckpt = run.ckpt
        if ctx.is_main and (final is None or final.name != f"step-{self.step:08d}"):
            ckpt = self.save()
        elif final is not None:
            ckpt = final
        ctx.barrier()
        return TrainResult(self.run_dir, self.step, self.images, run.last_loss, self.seconds, run.stopped, ckpt)


@dataclass
class _Run:
    """The loop state of one :meth:`Trainer.fit` call."""

    loader: Any
    restore_signal: Callable[[], Any]
    bar: Any
    by_time: bool
    resumed: bool
    t_start: float
    seconds0: float
    deadline: float
    log_t: float
    log_images: int
    ckpt: Path | None = None
    stopped: str = "steps"
    rng_at_step_start: Any = None
    log_loss: float = 0.0
    log_n: int = 0
    last_loss: float = float("nan")
