"""``ambient-imaging train``: learn a diffusion prior from corrupted measurements.

Examples::

    ambient-imaging train --data faces --operator mask --corruption 0.5 --out runs/faces --network tiny
    ambient-imaging train --data /data/fastmri/brain --operator mri --out runs/brain --minutes 600
    torchrun --nproc-per-node 4 -m ambient_imaging train --data ... --operator mri --out runs/brain
    ambient-imaging train --out runs/brain --resume            # continue where it stopped

Re-running an interrupted command continues its run (same settings: automatic resume); see
:mod:`ambient_imaging.training.rundir` for the rule.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from pathlib import Path

__all__ = ["add_parser", "config_from_args", "check_numeric_flags"]

# CLI flag -> TrainConfig field (flags not listed map to their own name with - -> _)
_FLAGS = (
    "data",
    "clean_data",
    "gate",
    "gate_factor",
    "clean_share",
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


#: numeric flags and their valid range: name -> (lower bound, bound excluded?)
_RANGES: dict[str, tuple[float, bool]] = {
    "steps": (0, True), "minutes": (0, True), "batch_size": (0, True), "accumulate": (0, True),
    "corruption": (0, False), "noise_sigma": (0, False), "delta": (0, True), "seed": (0, False), "lr": (0, True),
    "warmup_steps": (0, False), "ema_halflife_images": (0, True), "checkpoint_every": (0, True),
    "log_every": (0, True), "num_workers": (0, False), "acceleration": (0, True), "image_size": (0, True),
    "gate_factor": (1, False),
}


def _clean_share(text: str) -> float | str:
    """``--clean-share``: ``auto``, ``uniform`` or a number (its range is checked with the config)."""
    from ambient_imaging.training.config import CLEAN_SHARES

    if text in CLEAN_SHARES:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {' or '.join(CLEAN_SHARES)} or a number, got {text!r}") from None


def check_numeric_flags(args: argparse.Namespace) -> None:
    """One clear ``ValueError`` for a NaN, infinite or out-of-range numeric flag (before any work)."""
    for name, (low, strict) in _RANGES.items():
        v = getattr(args, name, None)
        if v is None:
            continue
        if not math.isfinite(v) or (v <= low if strict else v < low):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {v}: must be a finite number {'>' if strict else '>='} {low:g}")
    from ambient_imaging.limits import check_seed, cpu_count

    if args.seed is not None:
        check_seed(args.seed)
    if getattr(args, "num_workers", None) is not None and args.num_workers > cpu_count():
        raise ValueError(f"--num-workers must be between 0 and {cpu_count()} (the CPUs this process may use), "
                         f"got {args.num_workers}")


_RESUME_HELP = (
    "Run folders: an empty or new --out starts a run. Re-running the same command after an interruption "
    "(Ctrl-C, SIGTERM, kill -9) resumes the run automatically when the folder holds a run of the same settings "
    "(--steps, --minutes, --device, --num-workers and logging flags may differ). A run of other settings is "
    "refused with the exact --resume / --overwrite commands. --resume continues a run with its own settings; "
    "--overwrite replaces it after every input was checked. A run folder is locked while it trains: a second "
    "process is refused ('in use by PID N on HOST')."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    from ambient_imaging.training.config import FAMILIES, GATES, LOSSES, NETWORKS

    p = subparsers.add_parser(
        "train",
        help="train a diffusion prior from corrupted measurements",
        description=(
            "Train a diffusion prior from corrupted measurements only. Settings come from the defaults, "
            "then --config FILE (TOML/YAML), then these flags. Multi-GPU: launch with torchrun. " + _RESUME_HELP
        ),
    )
    p.add_argument("--data", help="training data: a fastMRI folder, FITS folder, .npy stack, image folder, or 'faces'")
    p.add_argument("--clean-data", help="clean samples trained beside --data (a mixed set): MRI, a folder of fully "
                   "sampled fastMRI files beside undersampled --data; --operator mask|noise, a folder/stack of clean "
                   "images kept uncorrupted beside the corrupted --data (a mixed --data folder needs no flag)")
    p.add_argument("--gate", choices=GATES, help="mixed sets: auto (default) trains a complete sample with noise "
                   "σ_n only at σ >= its crossing point (Ambient Omni; Tweedie loss), clean ones at every σ; off: "
                   "noisy samples as if clean at every σ (the naive mix)")
    p.add_argument("--gate-factor", type=float, help="crossing point = factor x σ_n (>= 1; default 1: exact for "
                   "Gaussian noise of known σ_n)")
    p.add_argument("--clean-share", type=_clean_share, metavar="auto|uniform|F",
                   help="mixed sets: the share of every batch drawn from the clean samples: auto (default: half of "
                   "each batch when they are fewer than half of the set), uniform (batches drawn uniformly over the "
                   "set), or a number 0 < F < 1")
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
    p.add_argument("--precision", choices=("fp32", "bf16"), help="bf16 autocast of the network (GPUs; CPUs "
                   "with native bf16 instructions; elsewhere it is emulated and slow)")
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
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint, "
                   "with the run's own settings (a run of the same settings resumes without it)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out (its checkpoints, "
                   "config.toml, metrics.csv; nothing else) once every input was checked")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """Defaults < ``--config`` file < the run's own config.toml (on ``--resume``) < flags."""
    from ambient_imaging.training.config import TrainConfig

    check_numeric_flags(args)
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
    from ambient_imaging.training.config import check_applicable_flags

    check_applicable_flags(flags, op, flags.get("data", cfg.data))
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


def _command_line(args: argparse.Namespace) -> list[str]:
    """This command's arguments (after ``ambient-imaging``), rebuilt from the parsed flags."""
    line = ["train"]
    if args.config:
        line += ["--config", str(args.config)]
    for name in _FLAGS:
        v = getattr(args, name, None)
        if v is not None:
            line += ["--" + name.replace("_", "-"), f"{v:g}" if isinstance(v, float) else str(v)]
    if args.compile:
        line.append("--compile")
    if args.no_progress:
        line.append("--no-progress")
    return line


def run(args: argparse.Namespace) -> int:
    """Run ``train``: check everything cheap, lock ``--out``, decide resume/overwrite, build, train.

    Order (nothing is written or deleted before every check passed): flags and config; ``--device``;
    ``--data`` exists; ``--out`` is a writable folder outside ``--data``; lock ``--out`` (a second
    process is refused); what to do with an existing run (:func:`~ambient_imaging.training.rundir.plan_run`);
    build data, network and loss (every input is valid); only then ``--overwrite`` clears the old run.
    """
    from ambient_imaging.devices import resolve_device
    from ambient_imaging.locks import RunLock
    from ambient_imaging.paths import check_output_dir
    from ambient_imaging.training import NonFiniteLossError, train
    from ambient_imaging.training.distributed import cleanup_distributed, init_distributed
    from ambient_imaging.training.rundir import clear_run, plan_run

    cfg = config_from_args(args)
    if not cfg.data:
        raise ValueError("--data is required (a fastMRI folder, FITS folder, .npy stack, image folder or 'faces'), "
                         "on the command line or in the --config file")
    resolve_device(cfg.device)
    data = Path(cfg.data)
    if cfg.data != "faces" and not data.exists() and not glob.glob(cfg.data):
        raise FileNotFoundError(f"training data not found: --data {data} (no such file, folder or glob match)")
    out = check_output_dir(cfg.out, inputs=[cfg.data])
    ctx = init_distributed(cfg.device)
    lock = None
    try:
        resume = args.resume
        if ctx.is_main:
            try:
                lock = RunLock(out, purpose="train").acquire()
            except PermissionError as err:
                raise ValueError(f"--out {out}: cannot write there ({err.strerror})") from err
            plan = plan_run(out, cfg, resume=args.resume, overwrite=args.overwrite, argv=_command_line(args))
            resume = plan.resume
            cfg = plan.config or cfg
            if plan.note:
                print(f"ambient-imaging train: {plan.note}", file=sys.stderr)
            print(f"ambient-imaging train: run directory {out.resolve()}", file=sys.stderr)
        if ctx.distributed:
            import torch.distributed as dist

            shared = [resume, cfg]
            dist.broadcast_object_list(shared, src=0)
            resume, cfg = bool(shared[0]), shared[1]

        def before_fit() -> None:
            if ctx.is_main and args.overwrite:
                clear_run(out)
            ctx.barrier()

        try:
            result = train(cfg, resume=resume, ctx=ctx, verbose=ctx.is_main, before_fit=before_fit, lock=lock)
        except NonFiniteLossError as err:
            print(f"ambient-imaging: error: {err}", file=sys.stderr)
            return 1
        if ctx.is_main:
            print(f"done: {result.summary()}")
            print(f"load it with: ambient_imaging.training.load_prior({str(out)!r})")
    finally:
        if lock is not None:
            lock.release()
        cleanup_distributed(ctx)
    return 0
