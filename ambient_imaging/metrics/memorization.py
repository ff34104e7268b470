"""Memorisation: how close are generated samples to their nearest training images?

Following Daras et al. 2023 (Ambient Diffusion, Sec. 5.2) and Somepalli et
al. 2023: cosine similarity on mean-removed pixels to the nearest training
image; the ℓ2 ratio nearest/second-nearest (≪ 1 flags copies); the
fractions of samples above 0.90 and 0.95 similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["MemorizationReport", "nearest_neighbors", "memorization"]


def _flat(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x.detach().cpu() if hasattr(x, "detach") else np.asarray(x))
    if t.is_complex():
        t = t.abs()
    if t.ndim < 2:
        raise ValueError(f"memorization: {name} must be a stack of images (N, ...), got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], -1).double()


@dataclass
class MemorizationReport:
    """Per-sample similarity to the training set and summary fractions."""

    similarity: np.ndarray  # (N,) cosine similarity to the nearest training image (mean-removed pixels)
    nearest: np.ndarray  # (N,) index of that training image
    l2_ratio: np.ndarray  # (N,) ℓ2 distance nearest / second nearest
    frac_above_090: float
    frac_above_095: float

    def as_dict(self) -> dict[str, float]:
        return {
            "similarity_mean": float(self.similarity.mean()),
            "similarity_max": float(self.similarity.max()),
            "l2_ratio_median": float(np.median(self.l2_ratio)),
            "frac_above_0.90": self.frac_above_090,
            "frac_above_0.95": self.frac_above_095,
        }


def nearest_neighbors(samples, train, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each sample: max cosine similarity (mean-removed), its index, and the ℓ2 nearest/second ratio."""
    s, t = _flat(samples, "samples"), _flat(train, "train")
    if s.shape[1] != t.shape[1]:
        raise ValueError(f"memorization: samples have {s.shape[1]} pixels, training images {t.shape[1]}")
    if t.shape[0] < 2:
        raise ValueError("memorization: need at least 2 training images")
    sc = s - s.mean(1, keepdim=True)
    sc = sc / sc.norm(dim=1, keepdim=True).clamp_min(1e-12)
    best = torch.full((s.shape[0],), -2.0, dtype=torch.float64)
    idx = torch.zeros(s.shape[0], dtype=torch.long)
    d2 = torch.full((s.shape[0], 2), float("inf"), dtype=torch.float64)
    for start in range(0, t.shape[0], chunk):
        tb = t[start : start + chunk]
        tc = tb - tb.mean(1, keepdim=True)
        tc = tc / tc.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sim = sc @ tc.T
        m, j = sim.max(dim=1)
        upd = m > best
        best = torch.where(upd, m, best)
        idx = torch.where(upd, j + start, idx)
        dist = torch.cdist(s, tb)
        d2 = torch.cat([d2, dist], dim=1).topk(2, dim=1, largest=False).values
    ratio = d2[:, 0] / d2[:, 1].clamp_min(1e-12)
    return best.numpy(), idx.numpy(), ratio.numpy()


def memorization(samples, train, chunk: int = 1024) -> MemorizationReport:
    """Memorisation report of generated ``samples`` ``(N, ...)`` against ``train`` ``(M, ...)``."""
    sim, idx, ratio = nearest_neighbors(samples, train, chunk)
    return MemorizationReport(sim, idx, ratio, float(np.mean(sim > 0.90)), float(np.mean(sim > 0.95)))
