"""The quickstart: real embedded data in, a reconstruction table out, on a laptop.

``ambient-imaging quickstart`` runs the whole pipeline with the real commands:

1. builds the embedded ``mri-brain`` set (multi-coil k-space of the MNI152
   template; the training split is undersampled at R=4, the held-out split is
   fully sampled and kept for scoring only);
2. trains a small ambient prior on the undersampled training k-space only, for a
   bounded wall-clock budget (``--minutes``, 15 by default; a GPU when present);
3. reconstructs the held-out slices at R=4 with the prior's default posterior
   sampler and with the zero-filled and L1-wavelet baselines, through the same
   reconstruction layer as ``ambient-imaging reconstruct``; the prior's std map is
   calibrated (split conformal) on 4 held-out slices that are never scored
   (``data/calibration/``), drawn at random from the same pool as the scored ones
   (``data/val/``) so that the calibrated coverage holds for them;
4. prints a table (PSNR/SSIM/NMSE, seconds per slice) and writes NetCDF
   outputs, metrics JSON/CSV and a comparison figure into one folder.

Every stage is resumable: Ctrl-C, then the same command continues (the data
build is skipped when complete, training resumes from its last checkpoint with
the remaining budget, finished reconstructions are not redone).

The quickstart works at 64×64, which trains in minutes on a CPU. Its prior
reconstructs 64×64 k-space only: ``reconstruct`` refuses a scan of another matrix
(``--allow-size-mismatch`` runs it anyway, warned). For a scan's resolution, build
the set at its matrix and train on it (README, "A prior at your scan's resolution")::

    ambient-imaging data build mri-brain --matrix 230,180 --out data/mri-brain-230x180
    ambient-imaging train --data data/mri-brain-230x180/train --operator mri --out runs/brain230x180
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["QuickstartConfig", "run_quickstart"]

#: the reconstruction methods of the table, in order (CLI names; "prior": the prior's default sampler)
METHODS = ("zero-filled", "l1-wavelet", "prior")


@dataclass
class QuickstartConfig:
    """Settings of :func:`run_quickstart` (CLI flags of the same names)."""

    out: str = "ambient-quickstart"
    minutes: float = 15.0
    steps: int | None = None
    size: str = "default"
    acceleration: float = 4.0
    network: str | None = None
    batch_size: int = 8
    samples: int = 4
    sampler_steps: int | None = None
    max_slices: int | None = None
    device: str | None = None
    seed: int = 0
    methods: tuple[str, ...] = field(default=METHODS)

    def resolve(self) -> QuickstartConfig:
        """Fill the device-dependent defaults: on a GPU the 'small' network and every
        held-out slice; on a CPU the 'tiny' network and 2 scored slices per held-out file (drawn at random)
        (so that the whole quickstart stays near 20 minutes on 2 cores)."""
        import torch

        on_gpu = (self.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        if self.network is None:
            self.network = "small" if on_gpu else "tiny"
        if self.max_slices is None and not on_gpu:
            self.max_slices = 2
        return self

    def validate(self) -> QuickstartConfig:
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ValueError(f"quickstart: --minutes must be > 0, got {self.minutes}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"quickstart: --steps must be >= 1, got {self.steps}")
        if self.acceleration < 1:
            raise ValueError(f"quickstart: --acceleration must be >= 1, got {self.acceleration}")
        if self.samples < 1:
            raise ValueError(f"quickstart: --samples must be >= 1, got {self.samples}")
        return self


def _say(msg: str) -> None:
    print(f"[quickstart] {msg}", file=sys.stderr, flush=True)


def _build_data(cfg: QuickstartConfig, data_dir: Path) -> None:
    from ambient_imaging.datasets.embedded.mri_brain import build_mri_brain

    if (data_dir / "build.json").is_file():
        _say(f"1/4 data: {data_dir} is already built (delete it to rebuild)")
        return
    _say(f"1/4 data: building the embedded mri-brain set into {data_dir} (R={cfg.acceleration:g} training k-space)")
    summary = build_mri_brain(
        data_dir, size=cfg.size, acceleration=cfg.acceleration, seed=cfg.seed, progress=True
    )
    _say(f"    built in {summary.get('seconds', float('nan')):.1f} s")


def _train(cfg: QuickstartConfig, data_dir: Path, run_dir: Path) -> None:
    from ambient_imaging.training import TrainConfig, latest_checkpoint, load_checkpoint, train

    done = run_dir / "quickstart-done.json"
    if done.is_file():
        _say(f"2/4 prior: {run_dir} is trained (delete {done.name} to train more)")
        return
    resume = latest_checkpoint(run_dir) is not None
    spent = float(load_checkpoint(run_dir, weights_only=True).state.get("seconds", 0.0)) if resume else 0.0
    remaining = cfg.minutes - spent / 60.0
    if remaining <= 0.05 and cfg.steps is None:
        _say("2/4 prior: the training budget is spent")
    else:
        _say(
            f"2/4 prior: training a '{cfg.network}' ambient prior on undersampled k-space only "
            f"({'resuming, ' if resume else ''}{max(remaining, 0):.1f} min budget left) -> {run_dir}"
        )
        tcfg = TrainConfig(
            data=str(data_dir / "train"),
            operator="mri",
            out=str(run_dir),
            loss="ambient",
            steps=cfg.steps if cfg.steps is not None else 10**9,
            minutes=max(remaining, 0.05),
            batch_size=cfg.batch_size,
            network=cfg.network,
            warmup_steps=50,
            checkpoint_every=50,
            ema_halflife_images=2_000.0,
            lr=5e-4,
            seed=cfg.seed,
            device=cfg.device,
        )
        result = train(tcfg, resume=resume)
        _say(f"    {result.summary()}")
        if result.stopped not in ("steps", "minutes"):
            raise KeyboardInterrupt
    done.write_text(json.dumps({"finished": time.strftime("%Y-%m-%d %H:%M:%S")}))


def _reconstruct(cfg: QuickstartConfig, data_dir: Path, run_dir: Path, results: Path) -> None:
    """Reconstruct the held-out files with each method (the library's reconstruction app, as the CLI does)."""
    from ambient_imaging.devices import resolve_device
    from ambient_imaging.reconstruction import ReconstructOptions, default_method_name, reconstruct_path
    from ambient_imaging.sampling import get_method
    from ambient_imaging.training import load_prior

    val = data_dir / "val"
    calib = _heldout_split(cfg, data_dir)
    files = sorted(val.glob("*.h5"))
    if not files:
        raise FileNotFoundError(f"{val}: no held-out files (was the data build interrupted? delete {data_dir})")
    device = resolve_device(cfg.device)
    prior = load_prior(run_dir, device)
    for i, method in enumerate(cfg.methods):
        name = default_method_name(prior) if method == "prior" else method
        target = results / ("prior-" + name if method == "prior" else method)
        if target.is_dir() and len(list(target.glob("*.metrics.json"))) >= len(files):
            _say(f"3/4 reconstruct [{name}]: done already")
            continue
        _say(f"3/4 reconstruct [{name}] ({i + 1}/{len(cfg.methods)}) held-out slices at R={cfg.acceleration:g}")
        uses_prior = get_method(name).needs_prior
        calibrate = str(calib) if (uses_prior and calib is not None and cfg.samples >= 2) else None
        opts = ReconstructOptions(method=name, samples=cfg.samples if uses_prior else 1, steps=cfg.sampler_steps,
                                  acceleration=cfg.acceleration, mask_seed=cfg.seed, seed=cfg.seed,
                                  calibrate=calibrate)
        try:
            reconstruct_path(val, target, prior if uses_prior else None, opts, device=device, say=_say)
        except (ValueError, FileNotFoundError, TypeError) as err:
            raise QuickstartError(f"quickstart: reconstructing with {name} failed: {err}") from err


CALIBRATION_SLICES = 4


def _heldout_split(cfg: QuickstartConfig, data_dir: Path) -> Path | None:
    """Split the held-out slices at random (seed ``cfg.seed``) into scored and calibration slices.

    Split conformal calibration promises its coverage only on slices exchangeable with the calibration ones
    (``docs/sampling.md``, "Choose calibration slices like the ones you will reconstruct"). So the held-out
    files move to ``data/heldout/`` untouched, every slice of them goes into one pool, and a seeded shuffle
    gives :data:`CALIBRATION_SLICES` calibration slices (``data/calibration/``) and the scored ones
    (``data/val/``: ``max_slices`` per held-out file, or all the rest), each written as fastMRI files of the
    chosen slices (:func:`~ambient_imaging.datasets.fastmri.writer.copy_slices`). The split is recorded in
    ``data/heldout/split.json``; a re-run reuses it. ``None`` (nothing calibrated) with fewer than 3 slices.
    """
    import random

    from ambient_imaging.datasets.fastmri import check_layout, open_fastmri
    from ambient_imaging.datasets.fastmri.writer import copy_slices

    val, calib, heldout = data_dir / "val", data_dir / "calibration", data_dir / "heldout"
    record = heldout / "split.json"
    if record.is_file():
        return calib if json.loads(record.read_text()).get("calibration") else None
    results = data_dir.parent / "results"
    if results.is_dir() and any(results.iterdir()):  # scored on an earlier split: keep, but do not reuse
        kept = results.with_name(f"results.before-{time.strftime('%Y%m%d-%H%M%S')}")
        results.replace(kept)
        _say(f"    the held-out split is new: earlier results moved to {kept.name}/ and redone")
    if not heldout.is_dir():
        heldout.mkdir()
        for f in [*val.glob("*.h5"), *calib.glob("*.h5")]:  # calibration/: a quickstart of before 2026-12-07
            f.replace(heldout / f.name)
    files = sorted(heldout.glob("*.h5"))
    if not files:
        raise FileNotFoundError(f"{heldout}: no held-out files (was the data build interrupted? delete {data_dir})")
    pool = []
    for f in files:
        with open_fastmri(f) as h:
            pool += [(f.name, i) for i in range(check_layout(h, f)[0])]
    random.Random(cfg.seed).shuffle(pool)
    n_cal = min(CALIBRATION_SLICES, len(pool) // 3)
    rest = pool[n_cal:]
    scored = rest[: cfg.max_slices * len(files)] if cfg.max_slices else rest
    for folder, chosen in ((val, scored), (calib, pool[:n_cal])):
        for old in folder.glob("*.h5"):
            old.unlink()
        folder.mkdir(exist_ok=True)
        for f in files:
            idx = sorted(i for name, i in chosen if name == f.name)
            if idx:
                copy_slices(f, folder / f.name, idx)
    split = {"seed": cfg.seed, "scored": sorted(scored), "calibration": sorted(pool[:n_cal])}
    record.write_text(json.dumps(split, indent=1))
    _say(f"    held-out slices: {len(scored)} scored (data/val), {n_cal} for calibration (data/calibration), "
         f"drawn at random from {len(pool)} ({record})")
    return calib if n_cal else None


class QuickstartError(RuntimeError):
    """A step of the quickstart failed (the message says which and why)."""


def _table(results: Path) -> list[dict[str, Any]]:
    """One row per method: mean PSNR/SSIM/NMSE and seconds per slice over all held-out slices."""
    rows = []
    for method_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        slices = []
        for f in sorted(method_dir.glob("*.metrics.json")):
            slices += json.loads(f.read_text()).get("slices", [])
        if not slices:
            continue
        row: dict[str, Any] = {"method": method_dir.name, "slices": len(slices)}
        for key in ("psnr", "ssim", "nmse", "seconds", "coverage_raw", "coverage"):
            vals = [float(s[key]) for s in slices if isinstance(s.get(key), (int, float))]
            row[key] = sum(vals) / len(vals) if vals else float("nan")
        rows.append(row)
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: order.get(r["method"], 99))


def format_table(rows: list[dict[str, Any]]) -> str:
    """The quickstart table as fixed-width text (also written to ``table.md``)."""
    head = (f"{'method':<12} {'slices':>6} {'PSNR dB':>8} {'SSIM':>7} {'NMSE':>8} {'s/slice':>8} "
            f"{'2σ cov.':>8} {'calib.':>7}")
    lines = [head, "-" * len(head)]

    def pct(v: float, width: int) -> str:  # coverage in %, "—" for point estimates
        return f"{100 * v:>{width}.1f}" if math.isfinite(v) else f"{'—':>{width}}"

    for r in rows:
        lines.append(
            f"{r['method']:<12} {r['slices']:>6d} {r['psnr']:>8.2f} {r['ssim']:>7.4f} {r['nmse']:>8.4f} "
            f"{r['seconds']:>8.2f} {pct(r.get('coverage_raw', math.nan), 8)} {pct(r.get('coverage', math.nan), 7)}"
        )
    return "\n".join(lines)


def run_quickstart(cfg: QuickstartConfig) -> dict[str, Any]:
    """Run (or resume) the quickstart; returns the table rows and output paths."""
    cfg.validate().resolve()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir, run_dir, results = out / "data", out / "prior", out / "results"
    t0 = time.perf_counter()
    _build_data(cfg, data_dir)
    _train(cfg, data_dir, run_dir)
    _reconstruct(cfg, data_dir, run_dir, results)
    _say("4/4 evaluate: table and figure")
    from ambient_imaging.reconstruction import collect_metrics, comparison_figure, write_csv

    write_csv(results / "metrics.csv", collect_metrics(results))
    comparison_figure(results, results / "metrics.png")
    rows = _table(results)
    text = format_table(rows)
    (out / "table.md").write_text(
        f"Held-out mri-brain slices, R={cfg.acceleration:g}, prior trained {cfg.minutes:g} min "
        f"('{cfg.network}' network) on undersampled k-space only.\n\n```\n{text}\n```\n"
    )
    print(text)
    print(
        f"\noutputs in {out.resolve()}: table.md, results/<method>/*.nc (samples, mean, std), "
        f"results/metrics.csv, results/metrics.png (this run: {time.perf_counter() - t0:.0f} s)"
    )
    return {"rows": rows, "out": str(out), "figure": str(results / "metrics.png")}
