"""``ambient-imaging train``: learn a diffusion prior from corrupted measurements.

Examples::

    ambient-imaging train --data faces --operator mask --corruption 0.5 --out runs/faces --network tiny
    ambient-imaging train --data /data/fastmri/brain --operator mri --out runs/brain --minutes 600
    torchrun --nproc-per-node 4 -m ambient_imaging train --data ... --operator mri --out runs/brain
    ambient-imaging train --out runs/brain --resume            # continue where it stopped
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["add_parser", "config_from_args"]

# CLI flag -> TrainConfig field (flags not listed map to their own name with - -> _)
_FLAGS = (
    "data",
    "operator",
    "out",
    "steps",
    "minutes",
    "batch_size",
    "corruption",
    "noise_sigma",
    "delta",
    "loss",
    "network",
    "device",
    "seed",
    "lr",
    "checkpoint_every",
    "accumulate",
    "precision",
    "warmup_steps",
    "ema_halflife_images",
    "num_workers",
    "acceleration",
    "image_size",
    "log_every",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    from ambient_imaging.training.config import FAMILIES, LOSSES, NETWORKS

    p = subparsers.add_parser(
        "train",
        help="train a diffusion prior from corrupted measurements",
        description=(
            "Train a diffusion prior from corrupted measurements only. Settings come from the defaults, "
            "then --config FILE (TOML/YAML), then these flags. Multi-GPU: launch with torchrun."
        ),
    )
    p.add_argument("--data", help="training data: a fastMRI folder, FITS folder, .npy stack, image folder, or 'faces'")
    p.add_argument("--operator", choices=FAMILIES, help="measurement family of the data")
    p.add_argument("--out", help="run directory (config.toml, metrics.csv, checkpoints/); required unless the "
                   "--config file sets 'out'")
    p.add_argument("--config", help="TOML or YAML file of settings (flags override it)")
    p.add_argument("--steps", type=int, help="optimizer steps to train for (total, including resumed ones)")
    p.add_argument("--minutes", type=float, help="stop after this much wall time (whichever comes first)")
    p.add_argument("--batch-size", type=int, help="images per optimizer step (all GPUs together)")
    p.add_argument("--accumulate", type=int, help="gradient-accumulation rounds per step")
    p.add_argument("--corruption", type=float, help="fraction of pixels erased in synthetic masks (mask family)")
    p.add_argument("--noise-sigma", type=float, help="measurement noise std σ_n (noise family; Tweedie loss)")
    p.add_argument("--delta", type=float, help="ambient extra corruption δ in (0, 1)")
    p.add_argument("--loss", choices=LOSSES, help="ambient (default), tweedie (default for noise), naive, oracle")
    p.add_argument("--network", choices=NETWORKS, help="denoiser size preset")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument("--warmup-steps", type=int, help="linear LR warm-up, in optimizer steps")
    p.add_argument("--ema-halflife-images", type=float, help="EMA half-life in images")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast (CUDA only)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, help="steps between metrics.csv rows")
    p.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    p.add_argument(
        "--acceleration",
        type=int,
        help="MRI: retrospective acceleration, passed to the reader where it supports one "
        "(FastMRISlices reads already-undersampled files)",
    )
    p.add_argument("--image-size", type=int, help="resize/crop images to this size (where supported)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run in --out and start afresh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Defaults < ``--config`` file < the run's own config.toml (on ``--resume``) < flags."""
    from ambient_imaging.training.config import TrainConfig

    file_cfg = TrainConfig.load(Path(args.config)) if args.config else None
    out_arg = args.out or (file_cfg.out if file_cfg is not None else "")
    if not out_arg:
        raise ValueError("--out is required (the run directory), unless the --config file sets 'out'")
    out = Path(out_arg)
    resuming = args.resume and (out / "config.toml").is_file()
    source = out / "config.toml" if resuming else (Path(args.config) if args.config else None)
    if resuming:
        cfg = TrainConfig.load(source)
    else:
        cfg = file_cfg if file_cfg is not None else TrainConfig()
    raw_keys = set(_raw_keys(source)) if source is not None else set()
    explicit = cfg.to_dict()
    flags = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
    if args.compile:
        flags["compile"] = True
    if args.no_progress:
        flags["progress"] = False
    if resuming:
        for key in ("data", "operator", "loss", "network"):
            if key in flags and flags[key] != explicit.get(key):
                raise ValueError(
                    f"--resume: --{key} {flags[key]} differs from the run's {key} {explicit.get(key)!r}; "
                    "start a new run (another --out) to change it"
                )
    flags["out"] = str(out)
    # the noise family trains with the Tweedie loss unless a loss is given explicitly
    op = flags.get("operator", cfg.operator)
    if op == "noise" and "loss" not in flags and "loss" not in raw_keys:
        flags["loss"] = "tweedie"
    cfg = cfg.replace(**flags)
    return cfg.validate()


def _raw_keys(path) -> list[str]:
    from ambient_imaging.training.config import tomllib

    path = Path(path)
    if path.suffix.lower() == ".toml":
        with open(path, "rb") as f:
            d = tomllib.load(f)
    else:
        import yaml

        with open(path) as f:
            d = yaml.safe_load(f) or {}
    d = d.get("train", d) if isinstance(d.get("train"), dict) else d
    return list(d)


def _prepare_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    is_run = (out / "config.toml").is_file() or (out / "checkpoints").is_dir()
    if resume and is_run:
        return
    if overwrite:
        if not is_run:
            raise ValueError(f"--out {out} is not empty and is not a training run; refusing to delete it")
        for name in ("checkpoints", "config.toml", "metrics.csv"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        return
    raise ValueError(
        f"run directory {out} is not empty; use --resume to continue that run, --overwrite to replace it, "
        "or choose another --out"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``train``."""
    from ambient_imaging.training.distributed import cleanup_distributed, init_distributed
    from ambient_imaging.training.trainer import NonFiniteLossError, train

    cfg = config_from_args(args)
    if not cfg.data:
        raise ValueError("--data is required (a fastMRI folder, FITS folder, .npy stack, image folder or 'faces'), "
                         "on the command line or in the --config file")
    ctx = init_distributed(cfg.device)
    out = Path(cfg.out)
    try:
        if ctx.is_main:
            _prepare_run_dir(out, args.resume, args.overwrite)
        ctx.barrier()
        if ctx.is_main:
            print(f"ambient-imaging train: run directory {out.resolve()}", file=sys.stderr)
        try:
            result = train(cfg, resume=args.resume, ctx=ctx, verbose=ctx.is_main)
        except NonFiniteLossError as err:
            print(f"ambient-imaging: error: {err}", file=sys.stderr)
            return 1
        if ctx.is_main:
            print(f"done: {result.summary()}")
            print(f"load it with: ambient_imaging.training.load_prior({str(out)!r})")
    finally:
        cleanup_distributed(ctx)
    return 0
