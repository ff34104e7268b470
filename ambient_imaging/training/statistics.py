"""Statistics of training measurements that a prior records: σ_data, σ_n, and the range of masks it saw.

* :func:`estimate_sigma_data` — the data's RMS per real channel (EDM's σ_data) from corrupted
  measurements only: row energies of ``y`` weighted by the inverse sampling density of each row
  (estimated over the set), minus the noise energy;
* :func:`measurement_summary` — σ_n (median and range, training scale), sampled fraction /
  acceleration and centre (ACS) width per sample, over a subset of a dataset;
* :func:`mask_in_training_range` — whether a reconstruction operator's mask lies inside the
  ``train_accelerations`` / ``train_center_lines`` a prior was trained on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "estimate_sigma_data",
    "measurement_summary",
    "mask_in_training_range",
    "mask_statistics",
    "line_center_width",
]


def _indices(n: int, max_items: int) -> list[int]:
    """Up to ``max_items`` indices spread evenly over ``range(n)``."""
    if n <= max_items:
        return list(range(n))
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, max_items)})


def _noise(op: Any) -> float:
    s = getattr(op, "noise_sigma", 0.0)
    if isinstance(s, Tensor):
        return float(s.reshape(-1)[0]) if s.numel() else 0.0
    return float(s)


def _row_energy(op: Any, y: Tensor) -> tuple[Tensor, Tensor, float, int, bool] | None:
    """``(rows (R,), energy per row (R,), entries per row, real dof per image, complex image)`` for one item.

    Handles Cartesian MRI (line or point masks) and pixel masks; ``None`` for other operators.
    """
    from ambient_imaging.operators import MultiCoilMRI, PixelMask

    if isinstance(op, MultiCoilMRI):
        nc, h, w = y.shape[-3:]
        e = y.abs().pow(2).reshape(nc, h, w).double()
        rows = op.row_mask()[0].bool()
        if rows.ndim == 1:  # lines: energy per column over coils and readout
            return rows, e.sum(dim=(0, 1)), float(nc * h), 2 * h * w, True
        return rows.reshape(-1), e.sum(0).reshape(-1), float(nc), 2 * h * w, True
    if isinstance(op, PixelMask):
        m = op.mask[0].bool()
        yy = y.reshape(-1, *y.shape[-2:]).double()
        c = yy.shape[0]
        m = m.expand(c, *m.shape[-2:]) if m.shape[0] == 1 else m
        dof = int(yy.numel())
        return m.reshape(-1), (yy.pow(2) if not yy.is_complex() else yy.abs().pow(2)).reshape(-1), 1.0, dof, False
    return None


def estimate_sigma_data(dataset: Any, max_items: int = 256) -> float | None:
    """EDM's σ_data (RMS per real image channel) estimated from the measurements of ``dataset``.

    For an orthonormal forward model (Cartesian MRI with an orthonormal FFT and coil maps with
    ``Σ|S_c|² = 1``; pixel masks) ``‖x‖² = Σ_rows ‖(A_full x)_row‖²``. Each measured row's energy
    is divided by that row's sampling probability ``p`` (the fraction of samples measuring it,
    over the items read; e.g. 1 for ACS lines) and the noise energy ``σ_n² × entries`` is
    subtracted, which gives an unbiased estimate of ``E‖x‖²`` under random sampling; σ_data is
    ``√(E‖x‖² / real dof)``. Items are dicts with ``"y"`` and ``"operator"`` (batch 1); up to
    ``max_items`` spread over the set are read. Returns ``None`` when the operator is not one
    of those (interferometry, Gaussian noise: keep the configured σ_data).
    """
    n = len(dataset)
    if n == 0:
        return None
    rows_list, energy_list, noise_list, dofs = [], [], [], []
    for i in _indices(n, max_items):
        item = dataset[i]
        got = _row_energy(item["operator"], item["y"])
        if got is None:
            return None
        rows, energy, entries, dof, _ = got
        rows_list.append(rows)
        energy_list.append(energy)
        noise_list.append(_noise(item["operator"]) ** 2 * entries)
        dofs.append(dof)
    shapes = {tuple(r.shape) for r in rows_list}
    if len(shapes) != 1:  # mixed sizes: no common density; fall back to the sampled fraction per item
        total = [float(((e - s) * r).clamp_min(0).sum() / r.double().mean().clamp_min(1e-12))
                 for r, e, s in zip(rows_list, energy_list, noise_list)]
    else:
        rows_all = torch.stack(rows_list).double()
        p = rows_all.mean(0).clamp_min(1.0 / rows_all.shape[0])
        total = [float(((e - s) * r.double() / p).sum()) for r, e, s in zip(rows_list, energy_list, noise_list)]
    mean_sq = sum(t / d for t, d in zip(total, dofs)) / len(total)
    if not (mean_sq > 0 and math.isfinite(mean_sq)):
        return None
    return math.sqrt(mean_sq)


def line_center_width(rows: Tensor) -> int:
    """Width of the contiguous block of sampled lines around the centre column ``W // 2`` of ``(W,)`` rows."""
    r = rows.bool().reshape(-1).tolist()
    c = len(r) // 2
    if not r[c]:
        return 0
    lo = hi = c
    while lo - 1 >= 0 and r[lo - 1]:
        lo -= 1
    while hi + 1 < len(r) and r[hi + 1]:
        hi += 1
    return hi - lo + 1


def mask_statistics(op: Any) -> list[dict[str, float]]:
    """Per sample of ``op``: ``{"acceleration": W·H / measured entries, "center_lines": centre block width}``
    for Cartesian MRI line masks (``center_lines`` is ``nan`` for point masks); empty for other operators."""
    from ambient_imaging.operators import MultiCoilMRI

    if not isinstance(op, MultiCoilMRI):
        return []
    out = []
    rows = op.row_mask().bool()
    for b in range(rows.shape[0]):
        r = rows[b]
        frac = float(r.double().mean())
        acc = 1.0 / frac if frac > 0 else math.inf
        width = float(line_center_width(r)) if r.ndim == 1 else math.nan
        out.append({"acceleration": acc, "center_lines": width})
    return out


def measurement_summary(dataset: Any, max_items: int = 64) -> dict[str, Any]:
    """σ_n and sampling statistics over up to ``max_items`` items of ``dataset``.

    The mask statistics leave out fully sampled slices kept fully sampled (a mixed set's complete
    part, ``meta["fully_sampled"]`` and not ``meta["retrospective"]``): the ambient mask ranges are
    those of the undersampled slices.

    Returns ``{"noise_sigma": median σ_n (operator convention, training scale), "noise_sigma_range":
    [min, max], "accelerations": [min, max] or None, "center_lines": [min, max] or None, "items": n}``.
    """
    sig, acc, cen = [], [], []
    idx = _indices(len(dataset), max_items)
    for i in idx:
        item = dataset[i]
        op = item["operator"]
        sig.append(_noise(op))
        meta = item.get("meta") or {}
        if meta.get("fully_sampled") and not meta.get("retrospective"):
            continue  # a complete slice of a mixed set: its band mask says nothing about the undersampled ones
        for st in mask_statistics(op):
            acc.append(st["acceleration"])
            if math.isfinite(st["center_lines"]):
                cen.append(int(st["center_lines"]))
    return {
        "noise_sigma": float(np.median(sig)) if sig else 0.0,
        "noise_sigma_range": [float(min(sig)), float(max(sig))] if sig else [0.0, 0.0],
        "accelerations": [float(min(acc)), float(max(acc))] if acc else None,
        "center_lines": [int(min(cen)), int(max(cen))] if cen else None,
        "items": len(idx),
    }


def mask_in_training_range(prior: Any, op: Any, tolerance: float = 0.05) -> tuple[bool, str]:
    """Is ``op``'s sampling mask inside the range of masks ``prior`` was trained on?

    ``prior`` is a :class:`~ambient_imaging.training.Prior` (its ``info`` holds
    ``train_accelerations`` and ``train_center_lines``, both ``[lo, hi]``) or such a dict. For
    every sample of a Cartesian MRI ``op`` the acceleration (within ``tolerance``, relative) and
    the width of the centre block of lines are checked. Returns ``(ok, message)``; ``message``
    names the sample, the value and the range when ``ok`` is False, and says so when the prior
    records no range (then ``ok`` is True: nothing to check against).
    """
    info = prior if isinstance(prior, dict) else getattr(prior, "info", None) or {}
    acc_rng = info.get("train_accelerations")
    cen_rng = info.get("train_center_lines")
    stats = mask_statistics(op)
    if not stats:
        return True, f"{type(op).__name__}: no line-mask statistics to check"
    if acc_rng is None and cen_rng is None:
        return True, "the prior records no training mask range (trained before it was recorded)"
    problems = []
    for b, st in enumerate(stats):
        a = st["acceleration"]
        if acc_rng is not None and not (acc_rng[0] * (1 - tolerance) <= a <= acc_rng[1] * (1 + tolerance)):
            problems.append(f"sample {b}: acceleration R={a:.3g} outside the trained range "
                            f"[{acc_rng[0]:.3g}, {acc_rng[1]:.3g}]")
        c = st["center_lines"]
        if cen_rng is not None and math.isfinite(c) and not (cen_rng[0] <= c <= cen_rng[1]):
            problems.append(f"sample {b}: {int(c)} centre lines outside the trained range "
                            f"[{cen_rng[0]}, {cen_rng[1]}]")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return False, ("the mask is outside what the prior was trained on: " + "; ".join(problems[:3]) + more
                       + ". Its denoiser was never conditioned on such masks; expect a worse reconstruction, or "
                         "train a prior with a wider extra_acceleration / center_lines range")
    return True, "the mask is inside the prior's training range"
