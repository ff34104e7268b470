"""The training loop: AdamW, LR warm-up, clipping, EMA, bf16, compile, accumulation, DDP, resume.

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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ambient_imaging.datasets import MeasurementBatch, collate_measurements
from ambient_imaging.locks import RunLock

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
    "cpu_contention",
    "resolve_precision",
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


class CachedItems(Dataset):
    """Keep the items of a deterministic dataset in memory after their first read (up to ``max_bytes``).

    Measurement datasets here are pure functions of the index (files, retrospective masks and
    simulated corruption are seeded per item), so caching changes nothing but speed: e.g. a
    fastMRI slice costs an HDF5 read, its coil maps and a normalisation every time otherwise.
    Only used with ``num_workers = 0`` (worker processes would each hold a copy).
    """

    def __init__(self, dataset: Dataset, max_bytes: float = 2 * 1024**3):
        self.dataset = dataset
        self.max_bytes = float(max_bytes)
        self.bytes = 0
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        hit = self._items.get(i)
        if hit is not None:
            return hit
        item = self.dataset[i]
        size = _nbytes(item)
        if self.bytes + size <= self.max_bytes:
            self._items[i] = item
            self.bytes += size
        return item


def _nbytes(obj: Any, _depth: int = 0) -> int:
    """Approximate memory held by tensors in an item (dicts, lists, operators' tensor attributes)."""
    if isinstance(obj, Tensor):
        return obj.element_size() * obj.numel()
    if _depth > 3:
        return 0
    if isinstance(obj, dict):
        return sum(_nbytes(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_nbytes(v, _depth + 1) for v in vars(obj).values())
    return 0


def cpu_bf16_native() -> bool:
    """True when this CPU has native bf16 arithmetic (oneDNN's avx512_bf16 / AMX kernels)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for a config's ``precision`` on ``device`` (``"auto"``: bf16 on CPUs with
    native bf16 instructions only, where it is ~1.5x faster with the same training curve)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_bf16_native() else "fp32"


def cpu_contention(threshold: float = 0.5) -> str | None:
    """A warning when other processes compete for this process's CPU cores, else ``None``.

    Compares the 1-minute load average with the cores this process may use: above
    ``cores − threshold`` the cores are busy before training starts, and OpenMP threads that spin
    while waiting for a busy core make every step several times slower (about 8x measured on 2
    cores). Called by :func:`train` before it loads anything (its own load is not counted yet).
    """
    if not hasattr(os, "getloadavg"):
        return None
    try:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        load = os.getloadavg()[0]
    except OSError:
        return None
    if load <= cores - threshold:
        return None
    threads = torch.get_num_threads()
    advice = (
        f"{threads} OpenMP threads spinning on busy cores can make training several times slower (~8x measured "
        "on 2 cores): stop the other jobs, or train with OMP_NUM_THREADS=1"
        if threads > 1
        else "training gets only a share of a core"
    )
    return (
        f"the CPU is busy: load average {load:.2f} on {cores} core(s) before training starts; {advice}. "
        "Images/s will not be representative."
    )


class Trainer:
    """Train a denoiser ``net`` with ``loss`` on a measurement ``dataset``.

    Args:
        config: the run settings (validated here).
        dataset: items for :func:`~ambient_imaging.datasets.collate_measurements`.
        net: the denoiser (``net(x, sigma, mask)``); its raw weights are trained and
            an EMA copy is kept. Build it after :func:`seed_everything` so that every
            rank starts from the same weights (DDP also broadcasts rank 0's).
        loss: ``loss(net, batch, generator=...) -> (B,)`` per-sample losses.
        run_dir: where ``config.toml``, ``metrics.csv`` and ``checkpoints/`` go
            (default ``config.out``).
        prior_info: what :func:`~ambient_imaging.training.load_prior` needs besides
            the config (family, image_shape, is_complex, mask_channels, ...).
        ctx: distributed context (default: single process on ``config.device``).
        collate_fn: batch collation (default :func:`collate_measurements`).
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

    def _band_diagnostics(self, per_sample: Tensor, diagnose: bool) -> None:
        """Accumulate the loss per σ band; on diagnostic steps also the gradient norm per band.

        Needs the loss to expose the σ it drew (``loss.last_sigma``, ``(B,)``); otherwise nothing is logged.
        """
        sig = getattr(self.loss_fn, "last_sigma", None)
        if not isinstance(sig, Tensor) or sig.numel() != per_sample.numel():
            return
        bands = band_index(sig, SIGMA_BAND_EDGES)
        weighted = getattr(self.loss_fn, "last_weighted", None)  # λ(σ)·error, before a learned uncertainty
        use = weighted if isinstance(weighted, Tensor) and weighted.numel() == per_sample.numel() else per_sample
        values = use.detach().float().cpu()
        params = [p for p in self.net.parameters() if p.requires_grad] if diagnose else []
        for k in bands.unique().tolist():
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

    # ------------------------------------------------------------------ the loop
    def _loader(self) -> DataLoader:
        sampler = ResumableBatchSampler(
            len(self.dataset),  # type: ignore[arg-type]
            self.micro_batch,
            seed=self.cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            start_batch=self.step * self.cfg.accumulate,
        )
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

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until ``steps`` or ``minutes``; checkpoint periodically and at exit.

        The run folder is locked for the whole run (:class:`~ambient_imaging.locks.RunLock`, rank 0):
        a second process training into it gets :class:`~ambient_imaging.locks.RunInUseError`.
        Leftovers of killed writes (half-written checkpoints, temporaries) are removed first.
        Raises :class:`NonFiniteLossError` (after keeping the last good checkpoint)
        when the loss or gradient norm stops being finite. ``KeyboardInterrupt``
        saves a checkpoint and is re-raised.
        """
        lock = RunLock(self.run_dir, purpose="train").acquire() if self.ctx.is_main else None
        try:
            if lock is not None:
                remove_orphans(self.run_dir)
            return self._fit(resume)
        finally:
            if lock is not None:
                lock.release()

    def _fit(self, resume: bool) -> TrainResult:
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
        bar = None
        # a run bounded by wall time only (steps = a huge sentinel) shows a bar in seconds
        by_time = cfg.minutes is not None and cfg.steps >= 10**6
        if ctx.is_main and cfg.progress:
            from tqdm.auto import tqdm

            if by_time:
                bar = tqdm(total=round(60.0 * cfg.minutes), desc="train", unit="s", dynamic_ncols=True,
                           bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]")
            else:
                bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        t_start = time.perf_counter()
        seconds0 = self.seconds
        deadline = t_start + 60.0 * cfg.minutes if cfg.minutes is not None else math.inf
        log_loss, log_n, log_t, log_images, last_loss = 0.0, 0, time.perf_counter(), self.images, float("nan")
        grad_norm = torch.zeros(())
        ckpt: Path | None = latest_checkpoint(self.run_dir) if resumed else None
        stopped = "steps"
        rng_at_step_start = None
        try:
            if not resumed and ctx.is_main:
                ckpt = self.save()  # step 0: there is always a good checkpoint to fall back to
            while self.step < cfg.steps:
                stop = torch.tensor(
                    [1.0 if (self._stop_reason or time.perf_counter() >= deadline) else 0.0], device=self.device
                )
                if ctx.distributed:
                    torch.distributed.all_reduce(stop, op=torch.distributed.ReduceOp.MAX)
                if stop.item() > 0:  # all ranks agree (a signal may have reached another rank)
                    stopped = self._stop_reason or ("minutes" if time.perf_counter() >= deadline else "signal")
                    break
                rng_at_step_start = capture_rng(self.generator) if ctx.is_main else None
                lr = self.lr_at(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.optimizer.zero_grad(set_to_none=True)
                self.generator.manual_seed(_mix(cfg.seed, ctx.rank, self.step, 0x401535))
                total = torch.zeros((), device=self.device)
                for r in range(cfg.accumulate):
                    batch: MeasurementBatch = next(loader)
                    batch = batch.to(self.device)
                    if cfg.loss != "oracle":
                        batch.reference = None
                    sync = (
                        self.model.no_sync()
                        if ctx.distributed and r < cfg.accumulate - 1 and hasattr(self.model, "no_sync")
                        else contextlib.nullcontext()
                    )
                    with sync:
                        with self._autocast():
                            per_sample = self.loss_fn(self.model, batch, generator=self.generator)
                        self._band_diagnostics(per_sample, diagnose=r == 0 and self._diagnose_now())
                        mean = per_sample.float().mean() / cfg.accumulate
                        mean.backward()
                    total += mean.detach()
                total = all_reduce_mean(total, ctx)
                loss_value = float(total)
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
                rng_at_step_start = None
                last_loss = loss_value
                log_loss += loss_value
                log_n += 1
                if ctx.is_main:
                    if bar is not None:
                        now = time.perf_counter()
                        rate = (self.images - log_images) / max(now - log_t, 1e-9)
                        if by_time:
                            bar.set_postfix(step=self.step, loss=f"{loss_value:.4g}", img_s=f"{rate:.1f}",
                                            refresh=False)
                            bar.update(min(int(now - t_start), bar.total) - bar.n)
                        else:
                            bar.set_postfix(loss=f"{loss_value:.4g}", img_s=f"{rate:.1f}", refresh=False)
                            bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        now = time.perf_counter()
                        self.seconds = seconds0 + now - t_start
                        self._log(
                            {
                                "step": self.step,
                                "images": self.images,
                                "loss": log_loss / log_n,
                                "lr": lr,
                                "grad_norm": float(grad_norm),
                                "images_per_s": (self.images - log_images) / max(now - log_t, 1e-9),
                                "seconds": self.seconds,
                            }
                        )
                        log_loss, log_n, log_t, log_images = 0.0, 0, now, self.images
                if self.step % cfg.checkpoint_every == 0:
                    self.seconds = seconds0 + time.perf_counter() - t_start
                    ckpt = self.save() or ckpt
        except KeyboardInterrupt:
            # weights/optimizer are still those after self.step steps; the step that was
            # interrupted is redone on resume from its starting RNG state
            self.seconds = seconds0 + time.perf_counter() - t_start
            self.save(rng_at_step_start)
            if bar is not None:
                bar.close()
            raise
        finally:
            restore_signal()
            if ctx.is_main and hasattr(self, "_metrics_file"):
                self._metrics_file.close()
        self.seconds = seconds0 + time.perf_counter() - t_start
        if bar is not None:
            bar.close()
        final = latest_checkpoint(self.run_dir) if ctx.is_main else None
        if ctx.is_main and (final is None or final.name != f"step-{self.step:08d}"):
            ckpt = self.save()
        elif final is not None:
            ckpt = final
        ctx.barrier()
        return TrainResult(self.run_dir, self.step, self.images, last_loss, self.seconds, stopped, ckpt)


# ---------------------------------------------------------------------- building a run from a config
def build_network(
    cfg: TrainConfig, image_shape: tuple[int, int, int], is_complex: bool, mask_channels: int
) -> nn.Module:
    """``EDMPrecond(UNet.<preset>(...))`` for the data's image shape (``cfg.network_overrides`` go to the UNet)."""
    from ambient_imaging.networks import EDMPrecond, UNet

    c, h, w = image_shape
    real_ch = c * (2 if is_complex else 1)
    preset = {"tiny": UNet.tiny, "small": UNet.small, "paper": UNet.paper}[cfg.network]
    kwargs: dict[str, Any] = {} if cfg.network == "tiny" else {"img_resolution": int(min(h, w))}
    kwargs.update(cfg.network_overrides)
    try:
        backbone = preset(real_ch + mask_channels, real_ch, **kwargs)
    except TypeError as err:
        raise ValueError(f"network_overrides: {err}") from err
    # unobserved pixels / k-space lines get the σ → ∞ preconditioning (networks/precond.py); the
    # gridded-uv masks of interferometry use another FFT convention and keep plain EDM
    mask_domain = cfg.mask_domain
    if mask_domain == "auto":
        mask_domain = "none"
        if cfg.operator == "mask" and mask_channels in (1, c):
            mask_domain = "pixel"
        elif cfg.operator == "mri" and mask_channels == 1:
            mask_domain = "kspace"
    # EDM2's learned per-σ uncertainty (training only) for the losses that use it
    logvar = 128 if cfg.weighting == "uncertainty" and cfg.loss in ("ambient", "oracle", "naive") else 0
    return EDMPrecond(
        backbone, image_channels=c, is_complex=is_complex, mask_channels=mask_channels,
        sigma_data=_sigma_data(cfg), mask_domain=mask_domain, logvar_channels=logvar,
    )


def _sigma_data(cfg: TrainConfig) -> float:
    """The configured σ_data, or EDM's 0.5 when it is still unset (``train`` estimates it first)."""
    return float(cfg.sigma_data) if cfg.sigma_data is not None else 0.5


def build_loss(cfg: TrainConfig, noise_sigma: float, mask_channels: int = 0) -> LossFn:
    """The loss object for ``cfg.loss`` (see :mod:`ambient_imaging.training.losses`).

    The baselines feed all-ones mask channels to a network that takes a mask, so that
    every loss trains the same network.
    """
    from ambient_imaging.training import losses

    sd = _sigma_data(cfg)
    if cfg.loss == "ambient":
        mri = cfg.operator == "mri"
        return losses.AmbientLoss(
            delta=cfg.delta,
            space=cfg.space,
            heldout=cfg.heldout,
            fresh_subsample=cfg.fresh_subsample,
            sigma_data=sd,
            weighting=cfg.weighting,
            sigma_floor=cfg.sigma_floor,
            extra_acceleration=cfg.extra_acceleration if mri and cfg.extra_acceleration > 1 else None,
            center_range=tuple(cfg.center_lines) if mri and cfg.center_lines is not None else None,
        )
    if cfg.loss == "tweedie":  # the Tweedie loss keeps EDM's weight (it is trained at σ > σ_n only)
        return losses.AmbientTweedieLoss(sigma_n=noise_sigma, sigma_data=sd)
    mask = "ones" if mask_channels > 0 else "none"
    if cfg.loss == "oracle":
        return losses.OracleLoss(sigma_data=sd, mask=mask, weighting=cfg.weighting)
    return losses.NaiveLoss(sigma_data=sd, mask=mask, weighting=cfg.weighting)


def resolve_data_settings(cfg: TrainConfig, data: Any) -> tuple[TrainConfig, dict[str, Any], list[str]]:
    """Settings that depend on the training measurements, and what the prior records about them.

    * ``sigma_data=None``: estimated from the measurements (:func:`~.statistics.estimate_sigma_data`);
    * MRI ambient training: ``center_lines=None`` becomes ``[max(2, ACS_min // 2), ACS_max]``;
    * the prior info keys ``noise_sigma_image`` / ``noise_sigma_image_max`` (σ_n per real image
      channel: median and largest over the set), ``scoring`` (resolved ``heldout``), ``weighting``,
      ``sigma_data_estimated``, and for MRI ``data_accelerations``, ``train_accelerations``,
      ``train_center_lines`` (``[lo, hi]``).

    Returns the completed config (written to the run's ``config.toml``), the extra prior info
    and notes for the terminal.
    """
    from .statistics import estimate_sigma_data, measurement_summary

    notes: list[str] = []
    info: dict[str, Any] = {}
    summary = data.statistics if getattr(data, "statistics", None) else measurement_summary(data.dataset)
    sig = float(getattr(data, "noise_sigma", 0.0) or 0.0)
    sig_max = max(sig, float(summary["noise_sigma_range"][1]))
    factor = {"mri": 1.0 / math.sqrt(2.0), "mask": 1.0, "noise": 1.0}.get(data.family, 0.0)
    info["noise_sigma_image"] = sig * factor
    info["noise_sigma_image_max"] = sig_max * factor
    if cfg.loss != "ambient":
        info["scoring"] = "n/a"
    elif cfg.heldout is None:
        info["scoring"] = "tweedie" if sig > 0 else "all rows"
    else:
        info["scoring"] = "held-out rows" if cfg.heldout else "all rows"
    info["weighting"] = cfg.weighting if cfg.loss != "tweedie" else "edm"
    changes: dict[str, Any] = {}
    if cfg.sigma_data is None:
        est = estimate_sigma_data(data.dataset, max_items=64)
        if est is None:
            changes["sigma_data"] = 0.5
            notes.append("σ_data: no estimate for this operator family; using 0.5")
        else:
            changes["sigma_data"] = round(float(est), 4)
            notes.append(f"σ_data = {changes['sigma_data']:.4g} per real channel, estimated from the measurements "
                         "(density-compensated row energies minus noise; set sigma_data to override)")
        info["sigma_data_estimated"] = est is not None
    else:
        info["sigma_data_estimated"] = False
    if sig > 0:
        notes.append(f"measurement noise σ_n = {sig:.4g} (training scale; {info['noise_sigma_image']:.4g} per real "
                     f"image channel): trained at σ > σ_n, scoring: {info['scoring']}")
    if data.family == "mri" and cfg.loss == "ambient" and summary["accelerations"] is not None:
        acc = summary["accelerations"]
        cen = summary["center_lines"] or [0, 0]
        if cfg.center_lines is None:
            changes["center_lines"] = [max(2, int(cen[0]) // 2), int(cen[1])]
        lines = changes.get("center_lines", cfg.center_lines)
        hi = max(acc[1], acc[1] * cfg.extra_acceleration)
        info["data_accelerations"] = [float(acc[0]), float(acc[1])]
        info["train_accelerations"] = [float(acc[0]), float(hi)]
        info["train_center_lines"] = [int(lines[0]), int(min(lines[1], cen[1]))]
        info["extra_acceleration"] = float(cfg.extra_acceleration)
        notes.append(f"ambient masks: accelerations {acc[0]:.3g}..{hi:.3g}, protected centre lines "
                     f"{info['train_center_lines'][0]}..{info['train_center_lines'][1]} (recorded with the prior)")
    if changes:
        cfg = cfg.replace(**changes)
    return cfg, info, notes


def train(
    cfg: TrainConfig,
    resume: bool = False,
    ctx: DistContext | None = None,
    verbose: bool = True,
    before_fit: Callable[[], None] | None = None,
) -> TrainResult:
    """Build data, network and loss from ``cfg`` and train (what ``ambient-imaging train`` runs).

    Call under ``torchrun`` with a context from
    :func:`~ambient_imaging.training.distributed.init_distributed` for DDP.
    ``before_fit()`` runs (on every rank) once the data, network and loss are built — every
    input is valid by then — and before anything is written: ``train --overwrite`` clears the
    old run there.
    """
    import sys

    from .data import build_training_data

    cfg = cfg.validate()
    if ctx is None:
        ctx = DistContext(device=resolve_device(cfg.device))
    if ctx.device.type == "cpu" and ctx.is_main:
        busy = cpu_contention()
        if busy is not None:
            warnings.warn(busy, RuntimeWarning, stacklevel=2)
    seed_everything(cfg.seed)
    data = build_training_data(cfg)
    cfg, extra_info, notes = resolve_data_settings(cfg, data)
    seed_everything(cfg.seed)  # the estimates above read data only; start from the same state as before
    net = build_network(cfg, data.image_shape, data.is_complex, data.mask_channels)
    loss = build_loss(cfg, data.noise_sigma, data.mask_channels)
    sigma_min = getattr(net, "sigma_min", 0.002)
    if cfg.loss == "tweedie":
        sigma_min = max(sigma_min, data.noise_sigma)  # the Tweedie prior is only trained for σ ≥ σ_n
    if cfg.loss == "ambient":  # trained at σ > σ_n per real image channel (AmbientLoss): samplers stop there
        sigma_min = max(sigma_min, float(extra_info.get("noise_sigma_image_max", 0.0)))
    prior_info = {
        "family": data.family,
        "image_shape": list(data.image_shape),
        "is_complex": data.is_complex,
        "mask_channels": data.mask_channels,
        "noise_sigma": data.noise_sigma,
        "delta": cfg.delta if cfg.loss == "ambient" else 0.0,
        "corruption": cfg.corruption if data.family == "mask" else 0.0,
        "sigma_min": float(sigma_min),
        "sigma_max": float(getattr(net, "sigma_max", 80.0)),
        "sigma_data": cfg.sigma_data,
        "scale_rule": data.scale_rule,
        "normalisation": data.normalisation.to_dict(),
        **({"mask_spec": data.mask_spec.to_dict()} if data.mask_spec is not None else {}),
        "loss": cfg.loss,
        **extra_info,
    }
    if verbose:
        n_par = sum(p.numel() for p in net.parameters())
        for note in data.notes + notes:
            print(f"data: {note}", file=sys.stderr)
        print(
            f"network: {cfg.network} ({n_par / 1e6:.2f}M parameters), loss: {cfg.loss}, device: {ctx.device}, "
            f"world size: {ctx.world_size}",
            file=sys.stderr,
        )
    trainer = Trainer(cfg, data.dataset, net, loss, run_dir=cfg.out, prior_info=prior_info, ctx=ctx)
    if before_fit is not None:
        before_fit()
    return trainer.fit(resume=resume)
