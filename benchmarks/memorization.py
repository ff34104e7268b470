"""Memorisation benchmark (issue 21): the default study's table, with 95 % intervals.

Runs ``ambient-imaging study memorization`` with its defaults (or reads a finished study) and
writes ``benchmarks/results/memorization.json`` (rows ``kind, level, samples, seeds,
frac_above_0.90, ci_low, ci_high, quality, quality_ci`` and more) and ``memorization.md``;
``--figures DIR`` copies the trade-off curve, the summary plot and the most-copied grids there.

    OMP_NUM_THREADS=1 python benchmarks/memorization.py --study /work/memo_default --figures docs/figures
    python benchmarks/memorization.py --run --study /tmp/memo      # run (or resume) the default study first
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
from pathlib import Path

import torch

from ambient_imaging.studies import benchmark_rows, format_table, markdown_table, run_memorization_study

HERE = Path(__file__).resolve().parent


def _verdict(rows: list[dict]) -> str:
    """The issue's check: clean ≥ 5× the most-erased level, with non-overlapping 95 % intervals."""
    mask = sorted((r for r in rows if r["kind"] == "mask"), key=lambda r: r["level"])
    if len(mask) < 2 or mask[0]["level"] != 0:
        return "no clean and corrupted mask levels to compare"
    clean, worst = mask[0], mask[-1]
    ratio = clean["frac_above_0.90"] / max(worst["frac_above_0.90"], 1e-12)
    apart = clean["ci_low"] > worst["ci_high"]
    return (f"clean {clean['frac_above_0.90']:.3f} [{clean['ci_low']:.3f}, {clean['ci_high']:.3f}] vs "
            f"{100 * worst['level']:g} % erased {worst['frac_above_0.90']:.3f} [{worst['ci_low']:.3f}, "
            f"{worst['ci_high']:.3f}]: ratio {'inf' if worst['frac_above_0.90'] == 0 else f'{ratio:.1f}'}, "
            f"intervals {'do not overlap' if apart else 'overlap'}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", required=True, help="the study folder (read; with --run: run or resume it first)")
    ap.add_argument("--run", action="store_true", help="run (or resume) the default study in --study first")
    ap.add_argument("--device", default=None)
    ap.add_argument("--wall-minutes", type=float, default=None, help="the measured end-to-end wall time, recorded")
    ap.add_argument("--note", default="", help="how the machine was shared, recorded with the results")
    ap.add_argument("--figures", default=None, help="copy tradeoff.png, memorization.png, copies_*.png here")
    ap.add_argument("--results", default=str(HERE / "results"))
    args = ap.parse_args()
    study = Path(args.study)
    if args.run:
        report = run_memorization_study(study, device=args.device, progress=False)
    else:
        report = json.loads((study / "report.json").read_text())
    rows = benchmark_rows(report)
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": "memorization",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "command": "ambient-imaging study memorization --out DIR (defaults)",
        "settings": report["settings"],
        "n_train": report["n_train"],
        "n_heldout": report["n_heldout"],
        "wall_minutes": args.wall_minutes,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "note": args.note,
        "verdict": _verdict(rows),
    }
    (out / "memorization.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    md = [
        "# Memorisation study (default settings)",
        "",
        f"`{meta['command']}`; {report['n_train']} training faces, {report['n_heldout']} held out; "
        f"{meta['machine']}; OMP_NUM_THREADS={meta['threads']}; wall time {args.wall_minutes} min. {args.note}",
        "",
        markdown_table(rows),
        "",
        f"Check (issue 21): {meta['verdict']}.",
        "",
        "```",
        format_table(report),
        "```",
        "",
    ]
    (out / "memorization.md").write_text("\n".join(md))
    if args.figures:
        fig_dir = Path(args.figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name in ("tradeoff.png", "memorization.png", *sorted(p.name for p in study.glob("copies_*.png"))):
            shutil.copyfile(study / name, fig_dir / f"memorization_{name}" if name != "memorization.png"
                            else fig_dir / name)  # fmt: skip
    print("\n".join(md))


if __name__ == "__main__":
    main()
