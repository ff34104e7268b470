"""Operator throughput: ours vs the reference libraries, in one run.

    python benchmarks/operators.py [--device cpu|cuda] [--threads N] [--out benchmarks/results/operators.md]

Runs the MRI cases (`bench_mri.py`: MultiCoilMRI vs sigpy, 8 coils, 320x320,
batch 4) and the interferometry cases (`bench_interferometry.py`:
Interferometer, 128x128, 10k and 100k visibilities, vs finufft / direct DFT),
prints one table and writes it (markdown) with the date and machine.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_interferometry  # noqa: E402
import bench_mri  # noqa: E402


def _machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    desc = f"{platform.system()} {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def table(rows: list[dict]) -> str:
    """Markdown table of benchmark rows (union of keys, in first-seen order)."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch/numpy threads (default: all cores)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "operators.md"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    groups = {
        "MultiCoilMRI vs sigpy (target ratio <= 1.0)": bench_mri.run(device=args.device),
        "Interferometer: torch NUFFT vs finufft vs direct DFT": bench_interferometry.run(device=args.device),
    }
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# Operator benchmark\n\n`python benchmarks/operators.py --device {args.device}`"
        f" — {stamp} — {_machine(args.device)}\n\n"
        + "\n".join(f"## {title}\n\n{table(rows)}\n" for title, rows in groups.items())
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
