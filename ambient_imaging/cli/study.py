"""``ambient-imaging study``: end-to-end studies that train, sample and measure several priors.

Examples::

    ambient-imaging study memorization --out studies/memo                  # clean, 60 %, 90 % erased; 3 seeds
    ambient-imaging study memorization --out studies/memo --data my_images/ --image-size 64 --device cuda
    ambient-imaging study memorization --out /tmp/memo --quick             # seconds: a smoke test
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one level")
    return values


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``study memorization``."""
    from ambient_imaging.studies.memorization import (
        DEFAULT_CORRUPTION,
        DEFAULT_NOISE_SIGMAS,
        DEFAULT_SAMPLER_STEPS,
        DEFAULT_SAMPLES,
        DEFAULT_SEEDS,
        DEFAULT_STEPS,
        DEFAULT_TRAIN_IMAGES,
    )

    p = subparsers.add_parser("study", help="end-to-end studies (train, sample, measure)")
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    sub.required = True
    m = sub.add_parser(
        "memorization",
        aliases=["memorisation"],
        help="does training on corrupted images reduce memorisation, and at what cost in quality?",
        description=(
            "Train priors per corruption level and training seed on the embedded faces (or --data DIR), "
            "with the same network, seeds and budget; sample each and report, with 95 % intervals and the "
            "seed spread: memorisation (fraction of samples whose nearest training image has similarity "
            "> 0.90 / 0.95, nearest/second-nearest l2 ratio) and quality (KID to held-out images on random "
            "conv features; held-out denoising error). Writes report.json, report.csv, memorization.png, "
            "tradeoff.png and copies_<level>.png to --out. Re-running the same command resumes. The defaults "
            "take about 45 minutes on a 2-core CPU."
        ),
    )
    m.add_argument("--out", required=True, help="study folder (reports, plots, data/, runs/<level>/)")
    m.add_argument("--kind", choices=("mask", "noise", "both"), default="mask",
                   help="mask: pixels erased, ambient loss; noise: Gaussian noise, Tweedie loss (default: mask)")
    fmt = ",".join(f"{v:g}" for v in DEFAULT_CORRUPTION)
    m.add_argument("--levels", type=_floats, default=None,
                   help=f"mask levels: fractions of pixels erased, each in [0, 1); 0 = clean baseline (default {fmt})")
    m.add_argument("--delta", type=float, default=0.1, help="ambient extra corruption δ in (0, 1) (default 0.1)")
    fmt = ",".join(f"{v:g}" for v in DEFAULT_NOISE_SIGMAS)
    m.add_argument("--noise-levels", type=_floats, default=None,
                   help=f"noise levels σ_n >= 0 in [-1, 1] image units; 0 = clean baseline (default {fmt})")
    budget = m.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int,
                        help=f"training steps per run, the same for every level (default {DEFAULT_STEPS})")
    budget.add_argument("--minutes", type=float, help="training wall time per run instead of --steps")
    m.add_argument("--seeds", type=int, default=None,
                   help=f"training seeds per level: --seed, --seed+1, ... (default {DEFAULT_SEEDS})")
    m.add_argument("--samples", type=int, default=None,
                   help=f"unconditional samples per run (default {DEFAULT_SAMPLES}; per level: x seeds)")
    m.add_argument("--data", help="a folder of images (PNG/JPEG/TIFF/FITS/.npy) instead of the embedded faces; "
                                  "centre-cropped, resized to --image-size, 20 %% held out")
    m.add_argument("--network", choices=("tiny", "small", "paper"), help="denoiser preset (default tiny)")
    m.add_argument("--image-size", type=int, help="image size in pixels (default 32; --quick 16)")
    m.add_argument("--train-images", type=int,
                   help=f"use the first N training images; the rest are held out (default {DEFAULT_TRAIN_IMAGES})")
    m.add_argument("--batch-size", type=int, help="images per training step (default 16)")
    m.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    m.add_argument("--sampler-steps", type=int, help=f"EDM sampler steps (default {DEFAULT_SAMPLER_STEPS})")
    m.add_argument("--sample-batch", type=int, help="samples per sampler call (default 256)")
    m.add_argument("--quick", action="store_true",
                   help="smoke test: tiny network, 16 px, 3 steps, 2 seeds, 8 samples, 2 levels per kind (seconds)")
    m.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    m.add_argument("--seed", type=int, default=0, help="the first training seed (default 0)")
    m.add_argument("--no-progress", action="store_true", help="no progress bars")
    m.set_defaults(func=_run_memorization)


def _run_memorization(args: argparse.Namespace) -> int:
    from ambient_imaging.studies import format_table, run_memorization_study

    report = run_memorization_study(
        args.out,
        corruption=args.levels,
        delta=args.delta,
        noise_sigmas=args.noise_levels,
        kind=args.kind,
        steps=args.steps,
        minutes=args.minutes,
        n_samples=args.samples,
        network=args.network,
        seed=args.seed,
        device=args.device,
        quick=args.quick,
        n_seeds=args.seeds,
        data=args.data,
        image_size=args.image_size,
        n_train=args.train_images,
        batch_size=args.batch_size,
        lr=args.lr,
        sampler_steps=args.sampler_steps,
        sample_batch=args.sample_batch,
        progress=not args.no_progress,
    )
    print(format_table(report))
    files = report["files"]
    print(f"report: {files['report_json']} and {files['report_csv']}; plots: {files['plot']}, {files['tradeoff']}")
    return 0
