"""``ambient-imaging quickstart``: the whole pipeline on the embedded mri-brain data."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``quickstart``."""
    from ambient_imaging.quickstart import QuickstartConfig

    d = QuickstartConfig()
    p = subparsers.add_parser(
        "quickstart",
        help="build the embedded MRI data, train a prior on undersampled k-space, reconstruct and score",
        description=(
            "Build the embedded mri-brain set (training k-space undersampled at R=4), train a small ambient "
            "prior for a bounded time, reconstruct the held-out slices with the posterior sampler and with "
            "zero-filled and L1-wavelet baselines, and print a PSNR/SSIM/NMSE table. Ctrl-C, then the same "
            "command, resumes."
        ),
    )
    p.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    p.add_argument("--minutes", type=float, default=d.minutes,
                   help=f"training budget in minutes of wall time (default {d.minutes:g}; 2 CPU cores)")
    p.add_argument("--steps", type=int, default=None, help="cap on training steps (default: the time budget only)")
    p.add_argument("--size", choices=("default", "small"), default=d.size, help="embedded data size")
    p.add_argument("--acceleration", type=float, default=d.acceleration, help="undersampling factor R (default 4)")
    p.add_argument("--network", choices=("tiny", "small", "paper"), default=None,
                   help="network preset (default: small on a GPU, tiny on a CPU)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--samples", type=int, default=d.samples, help="posterior samples per slice")
    p.add_argument("--sampler-steps", type=int, default=None, help="posterior sampler steps (default: sampler's)")
    p.add_argument("--max-slices", type=int, default=None,
                   help="score N x (held-out files) slices, drawn at random from every held-out slice "
                        "(default: all but the 4 calibration slices on a GPU, N=2 on a CPU)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ambient_imaging.quickstart import QuickstartConfig, QuickstartError, run_quickstart

    cfg = QuickstartConfig(
        out=args.out, minutes=args.minutes, steps=args.steps, size=args.size, acceleration=args.acceleration,
        network=args.network, batch_size=args.batch_size, samples=args.samples, sampler_steps=args.sampler_steps,
        max_slices=args.max_slices, device=args.device, seed=args.seed,
    )
    try:
        run_quickstart(cfg)
    except QuickstartError as err:
        print(f"ambient-imaging: error: {err}", file=sys.stderr)
        return 1
    return 0
