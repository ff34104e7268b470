"""The report of a memorisation study: text table, CSV, and the benchmark rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .data import atomic_bytes

__all__ = ["format_table", "write_csv", "benchmark_rows", "markdown_table", "CSV_COLUMNS"]

CSV_COLUMNS = (
    "kind",
    "level",
    "seeds",
    "samples",
    "steps",
    "train_minutes",
    "frac_above_0.90",
    "frac_above_0.90_ci_low",
    "frac_above_0.90_ci_high",
    "frac_above_0.95",
    "frac_above_0.95_ci_low",
    "frac_above_0.95_ci_high",
    "similarity_mean",
    "l2_ratio_mean",
    "l2_ratio_ci_low",
    "l2_ratio_ci_high",
    "kid",
    "kid_ci_low",
    "kid_ci_high",
    "denoise_mse",
    "denoise_mse_seed_std",
)


def _ci(fig: dict[str, Any], digits: int = 3) -> str:
    return f"{fig['value']:.{digits}f} [{fig['ci_low']:.{digits}f}, {fig['ci_high']:.{digits}f}]"


def _seeds(fig: dict[str, Any], digits: int = 2) -> str:
    s = fig["seeds"]
    return f"{s['min']:.{digits}f}-{s['max']:.{digits}f}"


def format_table(report: dict[str, Any]) -> str:
    """The report's levels as an aligned text table (95 % intervals in brackets, seed ranges after)."""
    head = ("level", "loss", "seeds", "samples", "steps", ">0.90 [95% CI]", "seeds", ">0.95 [95% CI]",
            "l2 ratio [95% CI]", "KID [95% CI]", "denoise MSE")  # fmt: skip
    rows = [
        (
            r["name"],
            r["loss"],
            str(len(r["seeds_used"])),
            str(r["samples"]),
            str(r["steps"]),
            _ci(r["frac_above_0.90"]),
            _seeds(r["frac_above_0.90"]),
            _ci(r["frac_above_0.95"]),
            _ci(r["l2_ratio_mean"]),
            _ci(r["kid"]),
            f"{r['denoise_mse']['value']:.4g} ±{r['denoise_mse']['seeds']['std']:.2g}",
        )
        for r in report["levels"]
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    sig = ", ".join(f"{s:g}" for s in report["quality_sigmas"])
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    lines.append(
        f"samples pooled over seeds vs {report['n_train']} training images; >0.90/>0.95: fraction of samples "
        f"above that similarity to the nearest training image (Wilson 95 % CI; 'seeds': range over seeds); "
        f"l2 ratio: mean nearest/second-nearest (bootstrap CI); KID: random-conv-feature KID to "
        f"{report['n_heldout']} held-out images (bootstrap CI); denoise MSE: geometric mean over "
        f"σ ∈ {{{sig}}}, mean ± sd over seeds"
    )
    return "\n".join(lines)


def _csv_row(r: dict[str, Any]) -> list[Any]:
    f90, f95, ratio, kid = r["frac_above_0.90"], r["frac_above_0.95"], r["l2_ratio_mean"], r["kid"]
    vals = [
        r["kind"], f"{r['level']:g}", len(r["seeds_used"]), r["samples"], r["steps"], r["train_minutes"],
        f90["value"], f90["ci_low"], f90["ci_high"], f95["value"], f95["ci_low"], f95["ci_high"],
        r["similarity_mean"]["value"], ratio["value"], ratio["ci_low"], ratio["ci_high"],
        kid["value"], kid["ci_low"], kid["ci_high"], r["denoise_mse"]["value"], r["denoise_mse"]["seeds"]["std"],
    ]  # fmt: skip
    return [v if isinstance(v, (str, int)) else f"{v:.6g}" for v in vals]


def write_csv(path: Path, levels: list[dict[str, Any]]) -> None:
    """``report.csv``: one row per level (:data:`CSV_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in levels:
        w.writerow(_csv_row(r))
    atomic_bytes(path, buf.getvalue().encode())


def benchmark_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``benchmarks/results/memorization.json``.

    ``kind, level, samples, seeds, frac_above_0.90, ci_low, ci_high`` (the Wilson 95 % interval
    of ``frac_above_0.90``), ``quality`` (random-feature KID to the held-out images) and
    ``quality_ci`` (its bootstrap 95 % interval), plus the other figures with their intervals.
    """
    rows = []
    for r in report["levels"]:
        f90 = r["frac_above_0.90"]
        rows.append({
            "kind": r["kind"],
            "level": r["level"],
            "samples": r["samples"],
            "seeds": len(r["seeds_used"]),
            "frac_above_0.90": f90["value"],
            "ci_low": f90["ci_low"],
            "ci_high": f90["ci_high"],
            "quality": r["kid"]["value"],
            "quality_ci": [r["kid"]["ci_low"], r["kid"]["ci_high"]],
            "quality_metric": "KID, random conv features, vs held-out images (lower is better)",
            "frac_above_0.90_per_seed": f90["per_seed"],
            "frac_above_0.95": r["frac_above_0.95"]["value"],
            "frac_above_0.95_ci": [r["frac_above_0.95"]["ci_low"], r["frac_above_0.95"]["ci_high"]],
            "l2_ratio_mean": r["l2_ratio_mean"]["value"],
            "l2_ratio_ci": [r["l2_ratio_mean"]["ci_low"], r["l2_ratio_mean"]["ci_high"]],
            "denoise_mse": r["denoise_mse"]["value"],
            "denoise_mse_seed_std": r["denoise_mse"]["seeds"]["std"],
            "steps": r["steps"],
        })  # fmt: skip
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The benchmark rows as a Markdown table."""
    lines = [
        "| level | samples (seeds) | > 0.90 similarity [95 % CI] | > 0.95 [95 % CI] | ℓ2 ratio [95 % CI] "
        "| KID [95 % CI] | denoise MSE ± sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo95, hi95 = r["frac_above_0.95_ci"]
        rlo, rhi = r["l2_ratio_ci"]
        qlo, qhi = r["quality_ci"]
        lines.append(
            f"| {r['kind']} {r['level']:g} | {r['samples']} ({r['seeds']}) "
            f"| {r['frac_above_0.90']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
            f"| {r['frac_above_0.95']:.3f} [{lo95:.3f}, {hi95:.3f}] "
            f"| {r['l2_ratio_mean']:.3f} [{rlo:.3f}, {rhi:.3f}] "
            f"| {r['quality']:.3f} [{qlo:.3f}, {qhi:.3f}] "
            f"| {r['denoise_mse']:.4f} ± {r['denoise_mse_seed_std']:.4f} |"
        )
    return "\n".join(lines)
