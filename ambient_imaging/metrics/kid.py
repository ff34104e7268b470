"""Sample quality as a distance between distributions, with no downloaded weights.

:class:`RandomConvFeatures` is a fixed, seeded, *untrained* convolutional network (three
conv–ReLU–pool stages, pooled to a small grid): the same seed gives the same features on
every machine, so nothing has to be downloaded. :func:`kernel_distance` is the unbiased
squared MMD with the cubic polynomial kernel ``k(a, b) = (a·b / d + 1)³`` of the KID
(Bińkowski et al. 2018), on features scaled by the reference set's root mean square, and a
bootstrap interval over both sets. :func:`random_feature_kid` does both steps.

What it can say: whether generated images have the low-level statistics (contrast, edges,
blob sizes and their spatial layout, as seen through random filters) of held-out real images;
0 means "indistinguishable in these features", larger is further. What it cannot say:
random filters are not trained to see faces, so the number is not comparable with a
published KID/FID (Inception features) nor across image sizes or feature seeds; and a prior
that copies its training images scores *well* (copies are real images): read it next to the
memorisation figures, never alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .intervals import Interval

__all__ = ["RandomConvFeatures", "kernel_distance", "random_feature_kid"]


class RandomConvFeatures(nn.Module):
    """A fixed random conv net: ``(N, C, H, W)`` images in ``[0, 1]`` → ``(N, D)`` features.

    Args:
        in_channels: image channels. width: channels of the first stage (doubled per stage).
        grid: the last stage is average-pooled to ``grid × grid`` (spatial layout is kept).
        seed: the weights' generator seed (features are a deterministic function of it).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, grid: int = 2, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        chans = [int(in_channels), int(width), 2 * int(width), 4 * int(width)]
        self.convs = nn.ModuleList()
        for cin, cout in zip(chans[:-1], chans[1:]):
            conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=g))
            self.convs.append(conv)
        self.grid = int(grid)
        self.requires_grad_(False)

    @property
    def dim(self) -> int:
        """Feature dimension ``D``."""
        return sum(int(c.out_channels) for c in self.convs) + int(self.convs[-1].out_channels) * self.grid**2

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Features of a batch (any device; returned on the input's device, float32): the spatial
        mean of every stage's responses (fine to coarse texture statistics) and the last stage
        pooled to ``grid × grid`` (layout), each block divided by the square root of its size so
        that every block weighs the same in ``a·b``."""
        h = 2.0 * x.float() - 1.0
        blocks = []
        for i, conv in enumerate(self.convs):
            h = torch.relu(conv.to(h.device)(h))
            blocks.append(h.mean((-2, -1)))
            if i < len(self.convs) - 1 and min(h.shape[-2:]) >= 2:
                h = nn.functional.avg_pool2d(h, 2)
        blocks.append(nn.functional.adaptive_avg_pool2d(h, self.grid).flatten(1))
        return torch.cat([b / b.shape[1] ** 0.5 for b in blocks], dim=1)

    @torch.no_grad()
    def features(self, images: Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Features of a stack ``(N, C, H, W)`` as float64 numpy, computed in batches."""
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
        if x.ndim != 4:
            raise ValueError(f"RandomConvFeatures: images must be (N, C, H, W), got shape {tuple(x.shape)}")
        out = [self(x[i : i + batch_size]).cpu().double() for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out).numpy()


def _standardise(a: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One global scale (the reference's root mean square entry), so that ``a·b / d`` is O(1)."""
    s = float(np.sqrt(np.mean(ref * ref)))
    s = s if s > 0 else 1.0
    return a / s, ref / s


def _weighted_terms(k: np.ndarray, ca: np.ndarray, cb: np.ndarray | None) -> np.ndarray:
    """Mean kernel over pairs of *distinct* points, weighted by resampling counts ``(B, n)``."""
    if cb is None:  # within one set: exclude pairs of the same original point
        k0 = k - np.diag(np.diag(k))
        num = np.einsum("bi,bi->b", ca @ k0, ca)
        tot = ca.sum(1)
        return num / np.maximum(tot * tot - (ca * ca).sum(1), 1.0)
    num = np.einsum("bi,bi->b", ca @ k, cb)
    return num / (ca.sum(1) * cb.sum(1))


def _counts(n: int, n_boot: int, rng: np.random.Generator, strata: np.ndarray | None) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata).reshape(-1)
    c = np.zeros((n_boot, n))
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        c[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size), size=n_boot)
    return c


def kernel_distance(
    feats: np.ndarray,
    ref_feats: np.ndarray,
    *,
    strata: Sequence[int] | np.ndarray | None = None,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Unbiased KID (cubic polynomial kernel) between ``feats`` ``(N, D)`` and ``ref_feats`` ``(M, D)``.

    Features are scaled by one number, the reference set's root mean square entry. The interval is a
    percentile bootstrap over both sets (``strata``: resample ``feats`` within each label,
    e.g. the training seed of each sample); in each replicate, pairs of copies of the same
    original point are left out of the within-set terms, so every replicate is unbiased too.
    """
    a, b = np.asarray(feats, dtype=np.float64), np.asarray(ref_feats, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"kernel_distance: features must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"kernel_distance: need >= 2 points per set, got {a.shape[0]} and {b.shape[0]}")
    a, b = _standardise(a, b)
    d = a.shape[1]
    kaa, kbb, kab = ((a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3)
    one_a, one_b = np.ones((1, a.shape[0])), np.ones((1, b.shape[0]))
    est = float((_weighted_terms(kaa, one_a, None) + _weighted_terms(kbb, one_b, None)
                 - 2 * _weighted_terms(kab, one_a, one_b))[0])  # fmt: skip
    rng = np.random.default_rng(seed)
    ca, cb = _counts(a.shape[0], int(n_boot), rng, strata), _counts(b.shape[0], int(n_boot), rng, None)
    reps = _weighted_terms(kaa, ca, None) + _weighted_terms(kbb, cb, None) - 2 * _weighted_terms(kab, ca, cb)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return Interval(est, float(min(lo, est)), float(max(hi, est)), level)


def random_feature_kid(
    images: Tensor | np.ndarray,
    reference: Tensor | np.ndarray,
    *,
    strata: Sequence[int] | np.ndarray | None = None,
    feature_seed: int = 0,
    n_boot: int = 500,
    seed: int = 0,
) -> Interval:
    """KID of ``images`` against ``reference`` (both ``(N, C, H, W)`` in ``[0, 1]``) on random conv features."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    r = torch.as_tensor(np.asarray(reference) if not isinstance(reference, Tensor) else reference)
    if x.ndim != 4 or r.ndim != 4 or x.shape[1:] != r.shape[1:]:
        raise ValueError(f"random_feature_kid: image stacks must match (N, C, H, W), got "
                         f"{tuple(x.shape)} and {tuple(r.shape)}")  # fmt: skip
    net = RandomConvFeatures(in_channels=int(x.shape[1]), seed=feature_seed)
    return kernel_distance(net.features(x.cpu()), net.features(r.cpu()), strata=strata, n_boot=n_boot, seed=seed)
