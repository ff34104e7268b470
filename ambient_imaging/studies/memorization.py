"""Memorisation study: train one prior per corruption level and measure memorisation and quality.

For every level the same network, seed, data order and budget are used; only the
corruption of the training data changes:

* ``mask`` levels: a fraction ``p`` of the pixels of every training face is erased
  (one fixed dust mask per image) and the prior is trained with the ambient loss
  at extra corruption ``δ`` (Daras et al. 2023, Eq. 3.2). Level ``0`` is the clean
  baseline, trained with the plain denoising loss on the un-corrupted faces.
  Samples come from the fixed-mask sampler at the training survival rate
  ``(1 − p)(1 − δ)`` (Sec. 4 of the paper); the clean baseline uses plain EDM.
* ``noise`` levels: every face carries Gaussian noise ``σ_n`` (in the ``[-1, 1]``
  image units the priors are trained in) and the prior is trained with the
  ambient-Tweedie loss (Daras et al. 2024); samples come from the truncated
  sampler, which stops at ``σ_n`` and returns ``D(x, σ_n)``. Level ``0`` is clean.

Per level the report gives memorisation against the exact training images
(:func:`ambient_imaging.metrics.memorization`: fractions of samples whose
nearest-training-image similarity exceeds 0.90 / 0.95, the mean similarity and
the mean nearest/second-nearest ℓ2 ratio) and quality: the held-out denoising
error over :data:`~ambient_imaging.metrics.SIGMA_GRID` on clean held-out faces
(evaluation only; no clean image is used for training a corrupted level).

Each level is a normal training run (``OUT/runs/<level>``), so a study is
resumable: finished levels are skipped, an interrupted one continues from its
last checkpoint, and evaluations are cached per level.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "StudyLevel",
    "study_levels",
    "run_memorization_study",
    "load_study_faces",
    "format_table",
    "DEFAULT_CORRUPTION",
    "DEFAULT_NOISE_SIGMAS",
    "DEFAULT_MINUTES",
]

#: default mask corruption levels (fraction of pixels erased); 0 = the clean baseline
DEFAULT_CORRUPTION: tuple[float, ...] = (0.0, 0.4, 0.6, 0.8, 0.9)
#: default noise levels σ_n for the Tweedie variant (images in [-1, 1]); 0 = clean
DEFAULT_NOISE_SIGMAS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)
#: default training budget per level (minutes of wall time; sized for a 2-core CPU)
DEFAULT_MINUTES = 5.0

_QUICK_CORRUPTION = (0.0, 0.8)
_QUICK_NOISE = (0.0, 0.2)
_KINDS = ("mask", "noise", "both")
_NO_STEP_LIMIT = 10**7  # "train until the minutes run out"
_MARKER = "study_level.json"
_RESULT = "study_result.json"
_CSV_COLUMNS = (
    "kind",
    "level",
    "steps",
    "train_minutes",
    "frac_above_0.90",
    "frac_above_0.95",
    "similarity_mean",
    "l2_ratio_mean",
    "denoise_mse",
)


# ---------------------------------------------------------------------- levels
@dataclass(frozen=True)
class StudyLevel:
    """One training-data corruption: ``kind`` ``"mask"`` (``value`` = fraction erased) or
    ``"noise"`` (``value`` = σ_n); ``value == 0`` is the clean baseline of that kind."""

    kind: str
    value: float

    @property
    def name(self) -> str:
        """Directory/file name, e.g. ``mask-0.6`` or ``noise-0.2``."""
        return f"{self.kind}-{self.value:g}"

    @property
    def clean(self) -> bool:
        return self.value == 0.0

    @property
    def loss(self) -> str:
        """``oracle`` (plain denoising on clean images) at level 0, else ``ambient`` / ``tweedie``."""
        if self.clean:
            return "oracle"
        return "ambient" if self.kind == "mask" else "tweedie"

    def config_changes(self) -> dict[str, Any]:
        """The :class:`~ambient_imaging.training.TrainConfig` settings that define this level."""
        if self.kind == "mask":
            return {"operator": "mask", "corruption": self.value, "noise_sigma": 0.0, "loss": self.loss}
        return {"operator": "noise", "corruption": 0.0, "noise_sigma": self.value, "loss": self.loss}


def study_levels(
    kind: str = "mask",
    corruption: tuple[float, ...] | list[float] = DEFAULT_CORRUPTION,
    noise_sigmas: tuple[float, ...] | list[float] = DEFAULT_NOISE_SIGMAS,
) -> list[StudyLevel]:
    """The validated levels of a study (``kind``: ``mask``, ``noise`` or ``both``)."""
    if kind not in _KINDS:
        raise ValueError(f"study kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    levels: list[StudyLevel] = []
    if kind in ("mask", "both"):
        levels += [StudyLevel("mask", _check_value(v, "corruption level", upper=1.0)) for v in corruption]
    if kind in ("noise", "both"):
        levels += [StudyLevel("noise", _check_value(v, "noise level σ_n", upper=None)) for v in noise_sigmas]
    if not levels:
        raise ValueError("the study has no levels; give at least one corruption (or noise) level")
    names = [lv.name for lv in levels]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate study level(s): {', '.join(dup)}")
    return levels


def _check_value(v: Any, what: str, upper: float | None) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {v!r}")
    if upper is not None and x >= upper:
        raise ValueError(f"{what} must be in [0, 1) (the fraction of pixels erased), got {v!r}")
    return x


# ---------------------------------------------------------------------- data
def load_study_faces(size: int | None = 32, n_train: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded faces: ``(train, heldout)``, each ``(N, 1, H, W)`` float32 in ``[0, 1]``.

    Uses :func:`ambient_imaging.datasets.embedded.faces.load_faces` (the 100 faces of
    scikit-image's LFW subset, 80 for training and 20 held out) when it is available;
    otherwise the same 100 faces split 90 / 10. Faces are resized to ``size`` pixels
    (antialiased bilinear); ``n_train`` keeps the first ``n_train`` training faces.
    """
    try:
        from ambient_imaging.datasets.embedded.faces import load_faces
    except ImportError:
        load_faces = None
    if load_faces is not None:
        train, heldout = load_faces()  # its default split; we resize ourselves
        train, heldout = _as_stack(train), _as_stack(heldout)
    else:
        from skimage.data import lfw_subset

        faces = _as_stack(np.asarray(lfw_subset(), dtype=np.float32)[:100])  # the first 100 are faces
        train, heldout = faces[:90], faces[90:]
    if size is not None:
        train, heldout = _resize(train, size), _resize(heldout, size)
    if n_train is not None:
        if n_train < 2:
            raise ValueError(f"n_train must be >= 2 (memorisation needs a nearest and a second-nearest), got {n_train}")
        train = train[:n_train]
    if train.shape[0] < 2 or heldout.shape[0] < 1:
        raise ValueError(f"the faces set is too small: {train.shape[0]} training, {heldout.shape[0]} held-out images")
    return train.contiguous(), heldout.contiguous()


def _as_stack(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)).float()
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise ValueError(f"faces: expected an image stack (N, H, W) or (N, C, H, W), got shape {tuple(t.shape)}")
    return t


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp(0.0, 1.0)


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_json(path: Path, obj: Any) -> None:
    _atomic_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def _save_npy(path: Path, x: torch.Tensor) -> None:
    buf = io.BytesIO()
    np.save(buf, x.numpy().astype(np.float32), allow_pickle=False)
    _atomic_bytes(path, buf.getvalue())


def _prepare_data(out: Path, size: int, n_train: int | None) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """Write (once) the exact training / held-out faces of the study to ``OUT/data``; return them."""
    d = out / "data"
    train_p, held_p = d / "train.npy", d / "heldout.npy"
    if train_p.is_file() and held_p.is_file():  # resuming: the study keeps the images it started with
        train = torch.from_numpy(np.load(train_p, allow_pickle=False))
        heldout = torch.from_numpy(np.load(held_p, allow_pickle=False))
        return train_p, train, heldout
    train, heldout = load_study_faces(size, n_train)
    d.mkdir(parents=True, exist_ok=True)
    _save_npy(held_p, heldout)
    _save_npy(train_p, train)
    return train_p, train, heldout


# ---------------------------------------------------------------------- training
def _trained_state(run_dir: Path) -> dict[str, Any]:
    from ambient_imaging.training import latest_checkpoint

    ck = latest_checkpoint(run_dir)
    if ck is None:
        return {"step": 0, "seconds": 0.0}
    with open(ck / "state.json") as f:
        state = json.load(f)
    return {"step": int(state.get("step", 0)), "seconds": float(state.get("seconds", 0.0))}


def _train_level(level: StudyLevel, base, run_dir: Path, budget: dict[str, Any], verbose: bool) -> dict[str, Any]:
    """Train (or resume, or skip) one level; returns ``{"step", "seconds", "trained_now", ...}``."""
    from ambient_imaging.training import train

    marker = run_dir / _MARKER
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("budget") == budget:
            return {**done, "trained_now": False}
    prev = _trained_state(run_dir)
    steps = budget["steps"] if budget["steps"] is not None else _NO_STEP_LIMIT
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
    _atomic_json(marker, done)
    if trained_now:  # the cached evaluation is of older weights
        (run_dir / _RESULT).unlink(missing_ok=True)
    return {**done, "trained_now": trained_now}


# ---------------------------------------------------------------------- evaluation
def _sampler(prior, sampler_steps: int, progress: bool):
    from ambient_imaging.sampling import EDMSampler, FixedMaskSampler, TruncatedSampler

    loss = str(prior.config.get("loss", ""))
    if loss == "ambient" and prior.family == "mask":
        return FixedMaskSampler(steps=sampler_steps, corruption=prior.corruption, delta=prior.delta, progress=progress)
    if loss == "tweedie":
        return TruncatedSampler(steps=sampler_steps, sigma_n=float(prior.noise_sigma), progress=progress)
    return EDMSampler(steps=sampler_steps, progress=progress)


def _evaluate_level(
    level: StudyLevel,
    run_dir: Path,
    train_images: torch.Tensor,
    heldout: torch.Tensor,
    settings: dict[str, Any],
    device: str | None,
    progress: bool,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Sample the level's prior and measure it; cached in ``RUN/study_result.json``.

    Returns the metrics and the samples ``(N, 1, H, W)`` in ``[0, 1]`` (``None`` when cached).
    """
    from ambient_imaging.metrics import SIGMA_GRID, heldout_denoising_error, memorization
    from ambient_imaging.sampling import sample
    from ambient_imaging.training import load_prior
    from ambient_imaging.training.distributed import resolve_device

    cache = run_dir / _RESULT
    prior = load_prior(run_dir, device=resolve_device(device))
    if cache.is_file():
        res = json.loads(cache.read_text())
        if res.get("settings") == settings and res.get("step") == prior.step:
            return res, None
    dev = next(prior.denoiser.parameters()).device
    g = torch.Generator(device=dev).manual_seed(int(settings["seed"]))
    t0 = time.perf_counter()
    rec = sample(prior, int(settings["n_samples"]), _sampler(prior, int(settings["sampler_steps"]), progress),
                 generator=g)
    sample_seconds = time.perf_counter() - t0
    samples = rec.samples[:, 0].float().cpu().clamp(0.0, 1.0)
    if not torch.isfinite(samples).all():
        raise FloatingPointError(f"{level.name}: the sampler produced NaN/Inf samples")
    mem = memorization(samples, train_images)
    # quality: held-out denoising error on clean faces in the prior's [-1, 1] units, for σ ≥ σ_n
    # (a Tweedie prior is only trained for σ ≥ σ_n)
    sigmas = tuple(s for s in SIGMA_GRID if s >= float(prior.noise_sigma))
    err = heldout_denoising_error(
        prior.denoiser, (2.0 * heldout - 1.0).to(dev), sigmas, mask_channels=int(prior.mask_channels),
        seed=int(settings["seed"]),
    )
    res = {
        "kind": level.kind,
        "level": level.value,
        "name": level.name,
        "loss": str(prior.config.get("loss", "")),
        "sampler": rec.info.get("sampler", ""),
        "settings": settings,
        "step": prior.step,
        "nfe": int(rec.nfe),
        "sample_seconds": sample_seconds,
        "frac_above_0.90": mem.frac_above_090,
        "frac_above_0.95": mem.frac_above_095,
        "similarity_mean": float(mem.similarity.mean()),
        "similarity_max": float(mem.similarity.max()),
        "l2_ratio_mean": float(mem.l2_ratio.mean()),
        "l2_ratio_median": float(np.median(mem.l2_ratio)),
        "similarity": [float(v) for v in mem.similarity],
        "nearest": [int(i) for i in mem.nearest],
        "denoise_mse_per_sigma": {f"{s:g}": v for s, v in err.items()},
    }
    _save_npy(run_dir / "study_samples.npy", samples)
    _atomic_json(cache, res)
    return res, samples


def _geometric_mean(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(np.exp(np.mean(np.log(np.maximum(v, 1e-300))))) if v.size else float("nan")


# ---------------------------------------------------------------------- outputs
def format_table(report: dict[str, Any]) -> str:
    """The report's levels as an aligned text table."""
    head = ("level", "loss", "steps", "min", ">0.90", ">0.95", "sim mean", "l2 ratio", "denoise MSE")
    rows = [
        (
            r["name"],
            r["loss"],
            str(r["steps"]),
            f"{r['train_minutes']:.1f}",
            f"{r['frac_above_0.90']:.3f}",
            f"{r['frac_above_0.95']:.3f}",
            f"{r['similarity_mean']:.3f}",
            f"{r['l2_ratio_mean']:.3f}",
            f"{r['denoise_mse']:.4g}",
        )
        for r in report["levels"]
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    sig = ", ".join(f"{s:g}" for s in report["quality_sigmas"])
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    lines.append(
        f"{report['settings']['n_samples']} samples per level vs {report['n_train']} training faces; "
        f"denoise MSE: geometric mean over σ ∈ {{{sig}}} on {report['n_heldout']} held-out faces ([-1, 1] units)"
    )
    return "\n".join(lines)


def _write_csv(path: Path, levels: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_CSV_COLUMNS)
    for r in levels:
        w.writerow([r[c] if isinstance(r[c], (str, int)) else f"{r[c]:.6g}" for c in _CSV_COLUMNS])
    _atomic_bytes(path, buf.getvalue().encode())


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    _atomic_bytes(path, buf.getvalue())


def _plot_summary(path: Path, levels: list[dict[str, Any]]) -> None:
    """``memorization.png``: memorisation (left) and quality (right) vs corruption level, one row per kind."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    kinds = [k for k in ("mask", "noise") if any(r["kind"] == k for r in levels)]
    fig, axes = plt.subplots(len(kinds), 2, figsize=(10, 3.6 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        rs = sorted((r for r in levels if r["kind"] == kind), key=lambda r: r["level"])
        x = [r["level"] for r in rs]
        xlabel = "training noise σ_n ([-1, 1] units)"
        if kind == "mask":
            xlabel = "fraction of pixels erased in training data"
        ax = row[0]
        ax.plot(x, [r["frac_above_0.90"] for r in rs], "o-", label="fraction sim > 0.90")
        ax.plot(x, [r["frac_above_0.95"] for r in rs], "s-", label="fraction sim > 0.95")
        ax.plot(x, [r["similarity_mean"] for r in rs], "^--", label="mean similarity")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(f"memorisation ({kind})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = row[1]
        ax.plot(x, [r["denoise_mse"] for r in rs], "o-", color="C3")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out denoising MSE (lower is better)")
        ax.set_title(f"quality ({kind})")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save_figure(fig, path)


def _plot_samples(path: Path, title: str, samples: torch.Tensor, train: torch.Tensor, res: dict[str, Any]) -> None:
    """Samples (odd rows) above their nearest training faces (even rows), with the similarity."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = min(samples.shape[0], 16)
    cols = min(n, 8)
    pairs = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * pairs, cols, figsize=(1.3 * cols, 2.7 * pairs), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        j = res["nearest"][i]
        axes[2 * r, c].imshow(samples[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2 * r, c].set_title(f"{res['similarity'][i]:.2f}", fontsize=8)
        axes[2 * r + 1, c].imshow(train[j, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2 * r + 1, c].set_title(f"train #{j}", fontsize=7)
    fig.suptitle(f"{title}: samples (similarity) above their nearest training face", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)


# ---------------------------------------------------------------------- the study
def run_memorization_study(
    out_dir: str | os.PathLike,
    corruption: tuple[float, ...] | list[float] | None = None,
    delta: float = 0.1,
    noise_sigmas: tuple[float, ...] | list[float] | None = None,
    kind: str = "mask",
    steps: int | None = None,
    minutes: float | None = None,
    n_samples: int = 64,
    network: str | None = None,
    seed: int = 0,
    device: str | None = None,
    quick: bool = False,
    resume: bool = True,
    *,
    image_size: int | None = None,
    n_train: int | None = None,
    batch_size: int | None = None,
    sampler_steps: int | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train one prior per corruption level on the embedded faces and measure memorisation and quality.

    Args:
        out_dir: the study folder (``report.json``, ``report.csv``, ``memorization.png``,
            ``samples_<level>.png``, ``data/``, ``runs/<level>/`` training runs).
        corruption: mask levels (fraction of pixels erased, each in ``[0, 1)``; 0 = clean
            baseline). Default :data:`DEFAULT_CORRUPTION` (``quick``: ``(0, 0.8)``).
        delta: ambient extra corruption δ of the mask levels.
        noise_sigmas: noise levels σ_n ≥ 0 of the Tweedie variant, in ``[-1, 1]`` image units.
            Default :data:`DEFAULT_NOISE_SIGMAS` (``quick``: ``(0, 0.2)``).
        kind: ``mask``, ``noise`` or ``both``.
        steps, minutes: training budget of *every* level (both: whichever comes first).
            Neither: :data:`DEFAULT_MINUTES` minutes (``quick``: 3 steps).
        n_samples: unconditional samples per level.
        network: ``tiny``, ``small`` or ``paper``; default ``small`` on a GPU, ``tiny`` on a CPU
            (``small`` runs about 0.8 steps/s at 32 px on one CPU core, ``tiny`` about 2.5).
        seed: one seed for every level (same initial weights, data order, sampler noise).
        device: ``cpu``/``cuda``/``cuda:N`` (default: CUDA when available).
        quick: tiny network, 16 px faces, 3 steps, 4 samples, 4 sampler steps, 2 levels per kind.
        resume: continue a study in ``out_dir`` (finished levels are skipped, an unfinished
            one resumes from its last checkpoint). ``False`` refuses a non-empty study folder.
        image_size: face size in pixels (default 32; ``quick``: 16). n_train: use only the
            first ``n_train`` training faces. batch_size: images per step (default 16; quick 4).
        sampler_steps: EDM steps of the samplers (default 18; quick 4).
        progress, verbose: progress bars; one status line per level on stderr.

    Returns:
        The report (also written to ``report.json``): ``settings``, ``quality_sigmas``,
        ``levels`` (one dict per level: training steps/minutes, memorisation, quality,
        ``trained_now``), and the output file paths.
    """
    from ambient_imaging.training import TrainConfig
    from ambient_imaging.training.config import NETWORKS

    out = Path(out_dir)
    if corruption is None:
        corruption = _QUICK_CORRUPTION if quick else DEFAULT_CORRUPTION
    if noise_sigmas is None:
        noise_sigmas = _QUICK_NOISE if quick else DEFAULT_NOISE_SIGMAS
    levels = study_levels(kind, corruption, noise_sigmas)
    if not 0.0 < float(delta) < 1.0:
        raise ValueError(f"delta (ambient extra corruption δ) must be in (0, 1), got {delta}")
    if network is None:
        from ambient_imaging.training.distributed import resolve_device

        network = "small" if resolve_device(device).type == "cuda" else "tiny"
    if network not in NETWORKS:
        raise ValueError(f"unknown network preset {network!r}; choose one of {', '.join(NETWORKS)}")
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"minutes must be > 0, got {minutes!r}")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if steps is None and minutes is None:
        steps, minutes = (3, None) if quick else (None, DEFAULT_MINUTES)
    if quick:
        network = "tiny"
        n_samples = min(int(n_samples), 4)
    image_size = image_size or (16 if quick else 32)
    batch_size = batch_size or (4 if quick else 16)
    sampler_steps = sampler_steps or (4 if quick else 18)
    if n_train is None and quick:
        n_train = 32

    # the settings that define the trained priors: a study folder keeps them for life
    defining = {
        "network": network,
        "image_size": int(image_size),
        "batch_size": int(batch_size),
        "delta": float(delta),
        "seed": int(seed),
        "n_train": n_train,
    }
    meta_p = out / "study.json"
    if meta_p.is_file():
        if not resume:
            raise ValueError(f"{out} already holds a memorisation study; resume it or choose a new --out folder")
        old = json.loads(meta_p.read_text()).get("defining", {})
        diff = sorted(k for k in defining if old.get(k) != defining[k])
        if diff:
            was = ", ".join(f"{k}={old.get(k)!r} (now {defining[k]!r})" for k in diff)
            raise ValueError(f"{out} holds a study with different settings: {was}; use a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    _atomic_json(meta_p, {"study": "memorization", "defining": defining})
    train_path, train_images, heldout = _prepare_data(out, int(image_size), n_train)

    base = TrainConfig(
        data=str(train_path.resolve()),
        network=network,
        image_size=None,
        batch_size=int(batch_size),
        delta=float(delta),
        seed=int(seed),
        device=device,
        warmup_steps=0 if quick else 100,
        checkpoint_every=100,
        log_every=10,
        progress=progress,
    )
    budget = {"steps": None if steps is None else int(steps), "minutes": None if minutes is None else float(minutes)}
    sample_settings = {"n_samples": int(n_samples), "sampler_steps": int(sampler_steps), "seed": int(seed)}
    floor = max([lv.value for lv in levels if lv.kind == "noise"], default=0.0)
    from ambient_imaging.metrics import SIGMA_GRID

    quality_sigmas = [s for s in SIGMA_GRID if s >= floor]

    rows: list[dict[str, Any]] = []
    for i, level in enumerate(levels):
        run_dir = out / "runs" / level.name
        if verbose:
            print(f"[{i + 1}/{len(levels)}] {level.name}: training ({level.loss} loss)", file=sys.stderr)
        tr = _train_level(level, base, run_dir, budget, verbose)
        if verbose:
            print(f"[{i + 1}/{len(levels)}] {level.name}: sampling {n_samples} and evaluating", file=sys.stderr)
        res, samples = _evaluate_level(level, run_dir, train_images, heldout, sample_settings, device, progress)
        grid_p = out / f"samples_{level.name}.png"
        if samples is not None or not grid_p.is_file():
            if samples is None:
                samples = torch.from_numpy(np.load(run_dir / "study_samples.npy", allow_pickle=False))
            _plot_samples(grid_p, level.name, samples, train_images, res)
        per_sigma = res["denoise_mse_per_sigma"]
        row = {
            "kind": level.kind,
            "level": level.value,
            "name": level.name,
            "loss": res["loss"],
            "sampler": res["sampler"],
            "run_dir": str(run_dir),
            "steps": int(tr["step"]),
            "train_minutes": float(tr["seconds"]) / 60.0,
            "trained_now": bool(tr["trained_now"]),
            "frac_above_0.90": res["frac_above_0.90"],
            "frac_above_0.95": res["frac_above_0.95"],
            "similarity_mean": res["similarity_mean"],
            "similarity_max": res["similarity_max"],
            "l2_ratio_mean": res["l2_ratio_mean"],
            "l2_ratio_median": res["l2_ratio_median"],
            "denoise_mse": _geometric_mean([per_sigma[f"{s:g}"] for s in quality_sigmas]),
            "denoise_mse_per_sigma": per_sigma,
            "similarity": res["similarity"],  # per sample: to its nearest training face
            "nearest": res["nearest"],  # per sample: index of that face in data/train.npy
            "samples_png": str(grid_p),
        }
        rows.append(row)
        if verbose:
            print(
                f"    {level.name}: {row['steps']} steps, sim>0.95 {row['frac_above_0.95']:.3f}, "
                f"mean sim {row['similarity_mean']:.3f}, denoise MSE {row['denoise_mse']:.4g}",
                file=sys.stderr,
            )

    report = {
        "study": "memorization",
        "settings": {
            **defining,
            "kind": kind,
            "budget": budget,
            **sample_settings,
            "device": device,
            "quick": bool(quick),
        },
        "n_train": int(train_images.shape[0]),
        "n_heldout": int(heldout.shape[0]),
        "quality_sigmas": quality_sigmas,
        "levels": rows,
        "files": {
            "report_json": str(out / "report.json"),
            "report_csv": str(out / "report.csv"),
            "plot": str(out / "memorization.png"),
        },
    }
    _write_csv(out / "report.csv", rows)
    _plot_summary(out / "memorization.png", rows)
    _atomic_json(out / "report.json", report)
    return report
