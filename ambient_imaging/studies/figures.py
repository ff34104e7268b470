"""Figures of a memorisation study (matplotlib, Agg): most-copied samples, trade-off, summary."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import atomic_bytes

__all__ = ["plot_copies", "plot_tradeoff", "plot_summary"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int = 110) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_bytes(path, buf.getvalue())


def _show(ax: Any, img: torch.Tensor) -> None:
    a = img.numpy()
    if a.shape[0] == 1:
        ax.imshow(a[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.clip(np.moveaxis(a, 0, -1), 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])


def plot_copies(
    path: Path,
    title: str,
    samples: torch.Tensor,
    train: torch.Tensor,
    similarity: np.ndarray,
    nearest: np.ndarray,
    seeds: np.ndarray,
    n: int = 8,
) -> None:
    """The ``n`` most-copied samples (highest similarity, over all seeds) above their nearest training images."""
    plt = _pyplot()
    order = np.argsort(-np.asarray(similarity))[: min(n, samples.shape[0])]
    cols = len(order)
    fig, axes = plt.subplots(2, cols, figsize=(1.25 * cols, 3.0), squeeze=False)
    for c, i in enumerate(order):
        _show(axes[0, c], samples[i])
        axes[0, c].set_title(f"{similarity[i]:.3f}", fontsize=8)
        axes[0, c].set_xlabel(f"seed {int(seeds[i])}", fontsize=6)
        _show(axes[1, c], train[int(nearest[i])])
        axes[1, c].set_xlabel(f"train #{int(nearest[i])}", fontsize=6)
    axes[0, 0].set_ylabel("sample", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    fig.suptitle(f"{title}: the {cols} most-copied samples (similarity) above their nearest training image",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    _save(fig, path)


def _err(fig: dict[str, Any]) -> list[list[float]]:
    v = fig["value"]
    return [[max(v - fig["ci_low"], 0.0)], [max(fig["ci_high"] - v, 0.0)]]


def plot_tradeoff(path: Path, levels: list[dict[str, Any]]) -> None:
    """Memorisation (fraction of samples above 0.90 similarity) against quality (KID), 95 % intervals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for k, kind in enumerate(k for k in ("mask", "noise") if any(r["kind"] == k for r in levels)):
        rs = sorted((r for r in levels if r["kind"] == kind), key=lambda r: r["level"])
        xs = [r["kid"]["value"] for r in rs]
        ys = [r["frac_above_0.90"]["value"] for r in rs]
        ax.plot(xs, ys, "-", color=f"C{k}", alpha=0.5)
        for r, x, y in zip(rs, xs, ys):
            ax.errorbar([x], [y], xerr=_err(r["kid"]), yerr=_err(r["frac_above_0.90"]), fmt="o", color=f"C{k}",
                        capsize=3, label=kind if r is rs[0] else None)  # fmt: skip
            ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("KID to held-out images (random conv features; lower = closer)")
    ax.set_ylabel("fraction of samples with similarity > 0.90")
    ax.set_title("memorisation vs quality (95 % intervals)", fontsize=10)
    ax.set_ylim(bottom=-0.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_summary(path: Path, levels: list[dict[str, Any]]) -> None:
    """``memorization.png``: memorisation fractions, ℓ2 ratio and KID against the level, one row per kind."""
    plt = _pyplot()
    kinds = [k for k in ("mask", "noise") if any(r["kind"] == k for r in levels)]
    fig, axes = plt.subplots(len(kinds), 3, figsize=(12, 3.4 * len(kinds)), squeeze=False)
    for row, kind in zip(axes, kinds):
        rs = sorted((r for r in levels if r["kind"] == kind), key=lambda r: r["level"])
        x = np.asarray([r["level"] for r in rs])
        xlabel = "fraction of pixels erased in training data" if kind == "mask" else "training noise σ_n"
        panels = (
            (("frac_above_0.90", "similarity > 0.90"), ("frac_above_0.95", "similarity > 0.95")),
            (("l2_ratio_mean", "mean nearest/second-nearest ℓ2"),),
            (("kid", "KID to held-out images"),),
        )
        for ax, keys in zip(row, panels):
            for j, (key, label) in enumerate(keys):
                vals = [r[key] for r in rs]
                yerr = np.array([[v["value"] - v["ci_low"] for v in vals], [v["ci_high"] - v["value"] for v in vals]])
                ax.errorbar(x, [v["value"] for v in vals], yerr=np.maximum(yerr, 0), fmt="o-", capsize=3,
                            color=f"C{j}", label=label)  # fmt: skip
                for xi, v in zip(x, vals):  # the per-seed values
                    ax.plot([xi] * len(v["per_seed"]), v["per_seed"], ".", color=f"C{j}", alpha=0.4)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        row[0].set_title(f"memorisation ({kind}; bars: 95 % CI, dots: seeds)", fontsize=9)
        row[1].set_title("nearest/second-nearest ratio (≪ 1: a copy)", fontsize=9)
        row[2].set_title("quality (lower is better)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
