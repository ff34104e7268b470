"""``ambient-imaging study``: end-to-end studies that train, sample and measure several priors.

Examples::

    ambient-imaging study memorization --out studies/memo                  # 5 mask levels, ~5 min each
    ambient-imaging study memorization --out studies/memo --kind noise --minutes 10
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
    from ambient_imaging.studies.memorization import DEFAULT_CORRUPTION, DEFAULT_MINUTES, DEFAULT_NOISE_SIGMAS

    p = subparsers.add_parser("study", help="end-to-end studies (train, sample, measure)")
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    sub.required = True
    m = sub.add_parser(
        "memorization",
        aliases=["memorisation"],
        help="does training on corrupted faces reduce memorisation, and at what cost in quality?",
        description=(
            "Train one prior per corruption level on the embedded faces (same network, seed and budget), "
            "sample each, and report memorisation (fraction of samples whose nearest training face has "
            "similarity > 0.90 / 0.95, mean similarity, nearest/second-nearest l2 ratio) and quality "
            "(held-out denoising error on clean faces). Writes report.json, report.csv, memorization.png and "
            "samples_<level>.png to --out. Re-running the same command resumes: finished levels are skipped."
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
    budget.add_argument("--steps", type=int, help="training steps per level (the same for every level)")
    budget.add_argument("--minutes", type=float,
                        help=f"training wall time per level (default {DEFAULT_MINUTES:g} minutes, sized for a "
                             "2-core CPU: about 25 minutes for the 5 default mask levels plus ~1 minute of "
                             "sampling each; use --minutes 60 or more on a GPU for trained priors)")
    m.add_argument("--samples", type=int, default=64, help="unconditional samples per level (default 64)")
    m.add_argument("--network", choices=("tiny", "small"),
                   help="denoiser preset (default: small on a GPU, tiny on a CPU)")
    m.add_argument("--image-size", type=int, help="face size in pixels (default 32; --quick 16)")
    m.add_argument("--train-images", type=int, help="use only the first N training faces (default: all)")
    m.add_argument("--sampler-steps", type=int, help="EDM sampler steps (default 18)")
    m.add_argument("--quick", action="store_true",
                   help="smoke test: tiny network, 16 px, 3 steps, 4 samples, 2 levels per kind (seconds)")
    m.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    m.add_argument("--seed", type=int, default=0, help="one seed for every level (default 0)")
    m.add_argument("--no-progress", action="store_true", help="no progress bars")
    m.set_defaults(func=_run_memorization)


def _run_memorization(args: argparse.Namespace) -> int:
    from ambient_imaging.studies.memorization import format_table, run_memorization_study

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
        image_size=args.image_size,
        n_train=args.train_images,
        sampler_steps=args.sampler_steps,
        progress=not args.no_progress,
    )
    print(format_table(report))
    files = report["files"]
    print(f"report: {files['report_json']} and {files['report_csv']}; plot: {files['plot']}")
    return 0
