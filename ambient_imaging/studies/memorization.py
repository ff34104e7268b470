"""Memorisation study: train priors per corruption level and training seed; measure copying and quality.

For every level the same network, seeds, data order and budget are used; only the corruption of
the training data changes:

* ``mask`` levels: a fraction ``p`` of the pixels of every training image is erased (one fixed
  dust mask per image) and the prior is trained with the ambient loss at extra corruption ``δ``
  (Daras et al. 2023, Eq. 3.2). Level ``0`` is the clean baseline, trained with the plain
  denoising loss on the un-corrupted images. Samples come from the fixed-mask sampler at the
  training survival rate ``(1 − p)(1 − δ)`` (Sec. 4 of the paper); the clean baseline uses EDM.
* ``noise`` levels: every image carries Gaussian noise ``σ_n`` (in the ``[-1, 1]`` units the
  priors are trained in); ambient-Tweedie loss (Daras et al. 2024); truncated sampler.

Each level is trained with several seeds (``OUT/runs/<level>/seed-<s>``). Per level the report
gives, pooled over seeds and each with a 95 % interval and the seed spread
(:mod:`ambient_imaging.studies.summary`): the fractions of samples whose similarity to their
nearest training image exceeds 0.90 / 0.95, the mean nearest/second-nearest ℓ2 ratio, the KID
of the samples to the held-out images on random conv features, and the held-out denoising error.

The study is resumable: finished runs are skipped, an interrupted one continues from its last
checkpoint, and evaluations are cached per run.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import atomic_json, load_study_faces, prepare_study_data
from .figures import plot_copies, plot_summary, plot_tradeoff
from .levels import DEFAULT_CORRUPTION, DEFAULT_NOISE_SIGMAS, StudyLevel, study_levels
from .report import format_table, write_csv
from .runs import evaluate_run, train_run
from .summary import summarise_level

__all__ = [
    "StudyLevel",
    "study_levels",
    "run_memorization_study",
    "load_study_faces",
    "format_table",
    "DEFAULT_CORRUPTION",
    "DEFAULT_NOISE_SIGMAS",
    "DEFAULT_STEPS",
    "DEFAULT_SEEDS",
    "DEFAULT_SAMPLES",
    "DEFAULT_TRAIN_IMAGES",
    "DEFAULT_SAMPLER_STEPS",
]

#: default training steps per run (sized with the other defaults for ≤ 45 min on a 2-core CPU)
DEFAULT_STEPS = 500
#: default number of training seeds per level
DEFAULT_SEEDS = 3
#: default unconditional samples per run (per level: this × seeds = 384)
DEFAULT_SAMPLES = 128
#: default number of training images (the embedded faces left out join the held-out set)
DEFAULT_TRAIN_IMAGES = 16
#: default EDM sampler steps (Heun: 2 × steps − 1 network calls per sample)
DEFAULT_SAMPLER_STEPS = 10
#: learning rate of the study's priors (a small set memorised within the CPU budget)
STUDY_LR = 1e-3
#: the study's ``tiny`` network has a third resolution level (8x8 at 32 px): with the preset's two
#: levels the clean prior copied 50 % of its samples after 1,000 steps, with three 95 % (16 faces)
TINY_OVERRIDES: dict[str, Any] = {"channel_mult": [1, 2, 2]}

_QUICK_CORRUPTION = (0.0, 0.8)
_QUICK_NOISE = (0.0, 0.2)


def _positive_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or int(v) != v or int(v) < 1:
        raise ValueError(f"{what} must be a positive integer, got {v!r}")
    return int(v)


def _resolve(opts: dict[str, Any]) -> dict[str, Any]:
    """Validate the options and fill in the defaults (``quick``: a seconds-long smoke test)."""
    quick = bool(opts["quick"])
    corruption = opts["corruption"]
    if corruption is None:
        corruption = _QUICK_CORRUPTION if quick else DEFAULT_CORRUPTION
    noise = opts["noise_sigmas"]
    if noise is None:
        noise = _QUICK_NOISE if quick else DEFAULT_NOISE_SIGMAS
    levels = study_levels(opts["kind"], corruption, noise)
    if not 0.0 < float(opts["delta"]) < 1.0:
        raise ValueError(f"delta (ambient extra corruption δ) must be in (0, 1), got {opts['delta']}")
    from ambient_imaging.training.config import NETWORKS

    network = opts["network"] or "tiny"
    if quick:
        network = "tiny"
    if network not in NETWORKS:
        raise ValueError(f"unknown network preset {network!r}; choose one of {', '.join(NETWORKS)}")
    steps, minutes = opts["steps"], opts["minutes"]
    if steps is not None:
        steps = _positive_int(steps, "steps")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    if steps is None and minutes is None:
        steps = 3 if quick else DEFAULT_STEPS
    n_samples = _positive_int(opts["n_samples"] if opts["n_samples"] is not None else DEFAULT_SAMPLES, "n_samples")
    n_seeds = _positive_int(opts["n_seeds"] if opts["n_seeds"] is not None else (2 if quick else DEFAULT_SEEDS),
                            "n_seeds")  # fmt: skip
    n_train = opts["n_train"] if opts["n_train"] is not None else (32 if quick else DEFAULT_TRAIN_IMAGES)
    if opts["data"] is not None and not Path(opts["data"]).is_dir():
        raise FileNotFoundError(f"{opts['data']}: no such folder (--data takes a folder of images)")
    return {
        "levels": levels,
        "network": network,
        "network_overrides": dict(TINY_OVERRIDES) if network == "tiny" else {},
        "steps": steps,
        "minutes": minutes,
        "n_samples": min(n_samples, 8) if quick else n_samples,
        "seeds": [int(opts["seed"]) + i for i in range(n_seeds)],
        "image_size": int(opts["image_size"] or (16 if quick else 32)),
        "batch_size": int(opts["batch_size"] or (4 if quick else 16)),
        "sampler_steps": int(opts["sampler_steps"] or (4 if quick else DEFAULT_SAMPLER_STEPS)),
        "sample_batch": int(opts["sample_batch"] or 256),
        "n_train": int(n_train),
        "lr": float(opts["lr"] if opts["lr"] is not None else STUDY_LR),
    }


def _open_study(out: Path, defining: dict[str, Any], resume: bool) -> None:
    """Refuse a folder holding a different study; record the defining settings."""
    meta_p = out / "study.json"
    if meta_p.is_file():
        if not resume:
            raise ValueError(f"{out} already holds a memorisation study; resume it or choose a new --out folder")
        old = {"seeds": None, **_json_load(meta_p).get("defining", {})}
        diff = sorted(k for k in defining if k != "seeds" and old.get(k) != defining[k])
        if diff:
            was = ", ".join(f"{k}={old.get(k)!r} (now {defining[k]!r})" for k in diff)
            raise ValueError(f"{out} holds a study with different settings: {was}; use a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_json(meta_p, {"study": "memorization", "defining": defining})


def _json_load(path: Path) -> dict[str, Any]:
    """Read a JSON file."""
    import json

    return json.loads(path.read_text())


def _base_config(train_path: Path, s: dict[str, Any], delta: float, device: str | None, quick: bool,
                 progress: bool) -> Any:  # fmt: skip
    from ambient_imaging.training import TrainConfig

    return TrainConfig(
        data=str(train_path.resolve()),
        network=s["network"],
        network_overrides=s["network_overrides"],
        image_size=None,
        batch_size=s["batch_size"],
        lr=s["lr"],
        delta=float(delta),
        device=device,
        warmup_steps=0 if quick else 100,
        checkpoint_every=100,
        log_every=10,
        progress=progress,
    )


def _run_level(
    i: int, level: StudyLevel, ctx: dict[str, Any], out: Path, verbose: bool
) -> dict[str, Any]:
    """Train, sample and measure every seed of one level; its figures, pictures and report row."""
    s, n_levels = ctx["settings"], ctx["n_levels"]
    runs, samples, trained = [], [], []
    for seed in s["seeds"]:
        run_dir = out / "runs" / level.name / f"seed-{seed}"
        if verbose:
            print(f"[{i + 1}/{n_levels}] {level.name} seed {seed}: training ({level.loss} loss)", file=sys.stderr)
        tr = train_run(level, ctx["base"].replace(seed=seed), run_dir, ctx["budget"], verbose)
        if verbose:
            print(f"[{i + 1}/{n_levels}] {level.name} seed {seed}: sampling {s['n_samples']}", file=sys.stderr)
        res, smp = evaluate_run(level, run_dir, ctx["train"], ctx["heldout"], ctx["sample_settings"], seed,
                                ctx["device"], ctx["progress"])  # fmt: skip
        runs.append(res)
        samples.append(smp)
        trained.append(tr)
    figs = summarise_level(runs, samples, ctx["heldout"], ctx["quality_sigmas"])
    grid_p = out / f"copies_{level.name}.png"
    strata = np.concatenate([np.full(len(r["similarity"]), r["seed"]) for r in runs])
    sim = np.concatenate([r["similarity"] for r in runs])
    nearest = np.concatenate([r["nearest"] for r in runs])
    plot_copies(grid_p, level.label, torch.cat(samples), ctx["train"], sim, nearest, strata)
    row = {
        "kind": level.kind,
        "level": level.value,
        "name": level.name,
        "label": level.label,
        "loss": runs[0]["loss"],
        "sampler": runs[0]["sampler"],
        "run_dirs": [str(out / "runs" / level.name / f"seed-{sd}") for sd in s["seeds"]],
        "steps": int(min(t["step"] for t in trained)),
        "train_minutes": float(sum(t["seconds"] for t in trained)) / 60.0,
        "sample_seconds": float(sum(r["sample_seconds"] for r in runs)),
        "trained_now": any(bool(t["trained_now"]) for t in trained),
        **figs,
        "copies_png": str(grid_p),
        "similarity": [float(v) for v in sim],  # per sample (seeds in order): to its nearest training image
        "nearest": [int(i) for i in nearest],  # per sample: index of that image in data/train.npy
        "sample_seed": [int(v) for v in strata],  # per sample: the training seed of its prior
    }
    if verbose:
        f90, kid = row["frac_above_0.90"], row["kid"]
        print(f"    {level.name}: sim>0.90 {f90['value']:.3f} [{f90['ci_low']:.3f}, {f90['ci_high']:.3f}], "
              f"KID {kid['value']:.3f} [{kid['ci_low']:.3f}, {kid['ci_high']:.3f}]", file=sys.stderr)  # fmt: skip
    return row


def run_memorization_study(
    out_dir: str | os.PathLike,
    corruption: tuple[float, ...] | list[float] | None = None,
    delta: float = 0.1,
    noise_sigmas: tuple[float, ...] | list[float] | None = None,
    kind: str = "mask",
    steps: int | None = None,
    minutes: float | None = None,
    n_samples: int | None = None,
    network: str | None = None,
    seed: int = 0,
    device: str | None = None,
    quick: bool = False,
    resume: bool = True,
    *,
    n_seeds: int | None = None,
    data: str | os.PathLike | None = None,
    image_size: int | None = None,
    n_train: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    sampler_steps: int | None = None,
    sample_batch: int | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train priors per corruption level and seed; measure memorisation and quality with intervals.

    Args:
        out_dir: the study folder (``report.json``, ``report.csv``, ``memorization.png``,
            ``tradeoff.png``, ``copies_<level>.png``, ``data/``, ``runs/<level>/seed-<s>/``).
        corruption: mask levels (fractions of pixels erased, each in ``[0, 1)``; 0 = clean
            baseline). Default :data:`DEFAULT_CORRUPTION` (``quick``: ``(0, 0.8)``).
        delta: ambient extra corruption δ of the mask levels.
        noise_sigmas: noise levels σ_n ≥ 0 (Tweedie variant), in ``[-1, 1]`` image units.
        kind: ``mask``, ``noise`` or ``both``.
        steps, minutes: training budget of *every* run (both: whichever comes first).
            Default :data:`DEFAULT_STEPS` steps (``quick``: 3).
        n_samples: unconditional samples per run (default :data:`DEFAULT_SAMPLES`; per level × seeds).
        network: ``tiny`` (default), ``small`` or ``paper``.
        seed, n_seeds: the training seeds are ``seed … seed + n_seeds − 1`` (default
            :data:`DEFAULT_SEEDS`); a seed fixes initial weights, data order, corruption masks and
            sampler noise, the same for every level.
        device: ``cpu``/``cuda``/``cuda:N`` (default: CUDA when available).
        quick: tiny network, 16 px, 3 steps, 2 seeds, 8 samples, 4 sampler steps, 2 levels per kind.
        resume: continue a study in ``out_dir`` (finished runs are skipped, an unfinished one
            resumes from its last checkpoint). ``False`` refuses a non-empty study folder.
        data: a folder of images (PNG/JPEG/TIFF/FITS/NumPy) instead of the embedded faces, split
            80/20 into training and held-out images.
        image_size: image size in pixels (default 32; ``quick``: 16). n_train: use the first
            ``n_train`` training images (default :data:`DEFAULT_TRAIN_IMAGES`; the others are held
            out). batch_size: images per step (default 16). lr: learning rate (default 1e-3).
        sampler_steps: EDM steps of the samplers (default 10). sample_batch: samples per sampler call.
        progress, verbose: progress bars; status lines on stderr.

    Returns:
        The report (also written to ``report.json``): ``settings``, ``quality_sigmas``, ``levels``
        (one dict per level: figures with ``value, ci_low, ci_high, per_seed, seeds``) and ``files``.
    """
    opts = dict(corruption=corruption, noise_sigmas=noise_sigmas, kind=kind, delta=delta, network=network,
                steps=steps, minutes=minutes, n_samples=n_samples, n_seeds=n_seeds, seed=seed, quick=quick,
                n_train=n_train, image_size=image_size, batch_size=batch_size, sampler_steps=sampler_steps,
                sample_batch=sample_batch, lr=lr, data=data)  # fmt: skip
    s = _resolve(opts)
    out = Path(out_dir)
    keys = ("network", "network_overrides", "image_size", "batch_size", "n_train", "lr", "seeds")
    defining = {k: s[k] for k in keys}
    defining.update(delta=float(delta), data=None if data is None else str(Path(data).resolve()))
    _open_study(out, defining, resume)
    train_path, train_images, heldout = prepare_study_data(out, s["image_size"], s["n_train"], data)
    from ambient_imaging.metrics import SIGMA_GRID

    floor = max([lv.value for lv in s["levels"] if lv.kind == "noise"], default=0.0)
    ctx = {
        "settings": s,
        "n_levels": len(s["levels"]),
        "base": _base_config(train_path, s, delta, device, quick, progress),
        "budget": {"steps": s["steps"], "minutes": None if s["minutes"] is None else float(s["minutes"])},
        "sample_settings": {k: s[k] for k in ("n_samples", "sampler_steps", "sample_batch")},
        "quality_sigmas": [x for x in SIGMA_GRID if x >= floor],
        "train": train_images,
        "heldout": heldout,
        "device": device,
        "progress": progress,
    }
    rows = [_run_level(i, lv, ctx, out, verbose) for i, lv in enumerate(s["levels"])]
    return _write_report(out, rows, ctx, defining, kind, device, quick, train_images.shape[0], heldout.shape[0])


def _write_report(out: Path, rows: list[dict[str, Any]], ctx: dict[str, Any], defining: dict[str, Any], kind: str,
                  device: str | None, quick: bool, n_train: int, n_heldout: int) -> dict[str, Any]:  # fmt: skip
    """``report.json``, ``report.csv``, ``memorization.png`` and ``tradeoff.png``; returns the report."""
    settings = {**defining, "kind": kind, "budget": ctx["budget"], **ctx["sample_settings"], "device": device,
                "quick": bool(quick)}  # fmt: skip
    files = {"report_json": str(out / "report.json"), "report_csv": str(out / "report.csv"),
             "plot": str(out / "memorization.png"), "tradeoff": str(out / "tradeoff.png")}  # fmt: skip
    report = {"study": "memorization", "settings": settings, "n_train": int(n_train), "n_heldout": int(n_heldout),
              "quality_sigmas": ctx["quality_sigmas"], "levels": rows, "files": files}  # fmt: skip
    write_csv(out / "report.csv", rows)
    plot_summary(out / "memorization.png", rows)
    plot_tradeoff(out / "tradeoff.png", rows)
    atomic_json(out / "report.json", report)
    return report
