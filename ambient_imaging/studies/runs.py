"""One training run of a memorisation study (a level and a training seed): train, sample, measure.

Each run is an ordinary training run in ``OUT/runs/<level>/seed-<s>/``. It is resumable: a run
whose budget is met is skipped (``study_level.json``), an interrupted one continues from its last
checkpoint, and its evaluation (``study_result.json``, ``study_samples.npy``) is cached and redone
only when the weights or the sampling settings change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import atomic_json, save_npy
from .levels import StudyLevel

__all__ = ["train_run", "evaluate_run", "load_run_samples", "NO_STEP_LIMIT"]

NO_STEP_LIMIT = 10**7  # "train until the minutes run out"
_MARKER = "study_level.json"
_RESULT = "study_result.json"
_SAMPLES = "study_samples.npy"


def _trained_state(run_dir: Path) -> dict[str, Any]:
    from ambient_imaging.training import latest_checkpoint

    ck = latest_checkpoint(run_dir)
    if ck is None:
        return {"step": 0, "seconds": 0.0}
    with open(ck / "state.json") as f:
        state = json.load(f)
    return {"step": int(state.get("step", 0)), "seconds": float(state.get("seconds", 0.0))}


def train_run(level: StudyLevel, base: Any, run_dir: Path, budget: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """Train (or resume, or skip) one run; returns ``{"step", "seconds", "stopped", "trained_now", ...}``.

    ``base`` is the study's :class:`~ambient_imaging.training.TrainConfig` (with this run's seed);
    ``budget`` is ``{"steps", "minutes"}`` (``None`` = no limit of that kind).
    """
    from ambient_imaging.training import train

    marker = run_dir / _MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("budget") == budget:
            return {**done, "trained_now": False}
    prev = _trained_state(run_dir)
    steps = budget["steps"] if budget["steps"] is not None else NO_STEP_LIMIT
    minutes = budget["minutes"]
    remaining = None if minutes is None else minutes - prev["seconds"] / 60.0
    trained_now = False
    stopped = "steps" if prev["step"] >= steps else "minutes"
    if prev["step"] < steps and (remaining is None or remaining > 1e-3):
        cfg = base.replace(**level.config_changes(), out=str(run_dir), steps=steps)
        cfg.minutes = remaining
        result = train(cfg, resume=True, verbose=verbose)
        trained_now = True
        if result.stopped not in ("steps", "minutes"):  # SIGTERM: stop the study; re-running resumes
            raise KeyboardInterrupt
        stopped = result.stopped
    state = _trained_state(run_dir)
    done = {"budget": budget, "step": state["step"], "seconds": state["seconds"], "stopped": stopped}
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_json(marker, done)
    if trained_now:  # the cached evaluation is of older weights
        (run_dir / _RESULT).unlink(missing_ok=True)
    return {**done, "trained_now": trained_now}


def _sampler(prior: Any, sampler_steps: int, progress: bool) -> Any:
    """The prior's own sampler: fixed-mask for ambient mask priors, truncated for Tweedie, else EDM."""
    from ambient_imaging.sampling import EDMSampler, FixedMaskSampler, TruncatedSampler

    loss = str(prior.config.get("loss", ""))
    if loss == "ambient" and prior.family == "mask":
        return FixedMaskSampler(steps=sampler_steps, corruption=prior.corruption, delta=prior.delta, progress=progress)
    if loss == "tweedie":
        return TruncatedSampler(steps=sampler_steps, sigma_n=float(prior.noise_sigma), progress=progress)
    return EDMSampler(steps=sampler_steps, progress=progress)


def _draw(prior: Any, settings: dict[str, Any], seed: int, progress: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n_samples`` samples in batches of ``sample_batch`` from one generator; ``[0, 1]``, on the CPU."""
    from ambient_imaging.sampling import sample

    dev = next(prior.denoiser.parameters()).device
    g = torch.Generator(device=dev).manual_seed(int(seed))
    sampler = _sampler(prior, int(settings["sampler_steps"]), progress)
    n, batch = int(settings["n_samples"]), max(1, int(settings["sample_batch"]))
    chunks, nfe, name = [], 0, ""
    for start in range(0, n, batch):
        rec = sample(prior, min(batch, n - start), sampler, generator=g)
        chunks.append(rec.samples[:, 0].float().cpu())
        nfe, name = int(rec.nfe), str(rec.info.get("sampler", ""))
    return torch.cat(chunks).clamp(0.0, 1.0), {"nfe": nfe, "sampler": name}


def evaluate_run(
    level: StudyLevel,
    run_dir: Path,
    train_images: torch.Tensor,
    heldout: torch.Tensor,
    settings: dict[str, Any],
    seed: int,
    device: str | None,
    progress: bool,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Sample one run's prior and measure it; cached in ``RUN/study_result.json``.

    Returns the per-run results (per-sample similarity, nearest index and ℓ2 ratio; held-out
    denoising error per σ) and the samples ``(N, C, H, W)`` in ``[0, 1]``.
    """
    from ambient_imaging.metrics import SIGMA_GRID, heldout_denoising_error, memorization
    from ambient_imaging.training import load_prior
    from ambient_imaging.training.distributed import resolve_device

    cache = run_dir / _RESULT
    prior = load_prior(run_dir, device=resolve_device(device))
    if cache.is_file() and (run_dir / _SAMPLES).is_file():
        res = json.loads(cache.read_text())
        if res.get("settings") == settings and res.get("step") == prior.step:
            return res, load_run_samples(run_dir)
    t0 = time.perf_counter()
    samples, info = _draw(prior, settings, seed, progress)
    sample_seconds = time.perf_counter() - t0
    if not torch.isfinite(samples).all():
        raise FloatingPointError(f"{level.name} (seed {seed}): the sampler produced NaN/Inf samples")
    mem = memorization(samples, train_images)
    # quality: held-out denoising error on clean images in the prior's [-1, 1] units, for σ ≥ σ_n
    # (a Tweedie prior is only trained for σ ≥ σ_n)
    dev = next(prior.denoiser.parameters()).device
    sigmas = tuple(s for s in SIGMA_GRID if s >= float(prior.noise_sigma))
    err = heldout_denoising_error(prior.denoiser, (2.0 * heldout - 1.0).to(dev), sigmas,
                                  mask_channels=int(prior.mask_channels), seed=int(seed))  # fmt: skip
    res = {
        "kind": level.kind,
        "level": level.value,
        "name": level.name,
        "seed": int(seed),
        "loss": str(prior.config.get("loss", "")),
        "sampler": info["sampler"],
        "settings": settings,
        "step": prior.step,
        "nfe": info["nfe"],
        "sample_seconds": sample_seconds,
        "similarity": [float(v) for v in mem.similarity],
        "nearest": [int(i) for i in mem.nearest],
        "l2_ratio": [float(v) for v in mem.l2_ratio],
        "denoise_mse_per_sigma": {f"{s:g}": v for s, v in err.items()},
    }
    save_npy(run_dir / _SAMPLES, samples)
    atomic_json(cache, res)
    return res, samples


def load_run_samples(run_dir: Path) -> torch.Tensor:
    """The cached samples of one run ``(N, C, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.load(run_dir / _SAMPLES, allow_pickle=False))
