"""Batches of a mixed set with a fixed share of its clean samples (``train --clean-share``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from .data import ResumableBatchSampler, _mix

__all__ = ["StratifiedBatchSampler", "clean_batch_size"]


class StratifiedBatchSampler(Sampler[list[int]]):
    """Infinite stream of index batches with a fixed number of items from each group.

    ``groups`` are disjoint index arrays (e.g. the clean and the corrupted samples of a mixed set) and
    ``sizes`` how many items of each a batch holds. Each group is streamed by its own
    :class:`ResumableBatchSampler` (its own seeded epochs over the group, sharded by rank), so a group
    is oversampled exactly when its share of the batch exceeds its share of the set; batch ``k``
    concatenates the groups' batches ``k``. Start anywhere with ``start_batch``.
    """

    def __init__(self, groups: list[np.ndarray], sizes: list[int], seed: int = 0, rank: int = 0,
                 world_size: int = 1, start_batch: int = 0):
        if len(groups) != len(sizes) or not groups:
            raise ValueError("StratifiedBatchSampler: one size per group")
        self.groups = [torch.as_tensor(np.asarray(g, dtype=np.int64)) for g in groups]
        for j, (g, b) in enumerate(zip(self.groups, sizes)):
            if g.numel() == 0:
                raise ValueError(f"StratifiedBatchSampler: group {j} is empty")
            if b <= 0:
                raise ValueError(f"StratifiedBatchSampler: group {j} gets {b} items per batch (must be >= 1)")
        self.samplers = [ResumableBatchSampler(int(g.numel()), int(b), seed=_mix(seed, j, 0x57A7), rank=rank,
                                               world_size=world_size, start_batch=start_batch)
                         for j, (g, b) in enumerate(zip(self.groups, sizes))]
        self.start_batch = start_batch
        self.batch_size = int(sum(sizes))

    def batch(self, k: int) -> list[int]:
        """Indices of batch ``k`` on this rank (group by group)."""
        return [int(g[i]) for g, s in zip(self.groups, self.samplers) for i in s.batch(k)]

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1


def clean_batch_size(batch: int, share: float) -> int:
    """Clean items in a batch of ``batch`` for ``--clean-share``: ``round(share · batch)``, at least one of each
    kind (a one-item batch cannot hold both: ``ValueError``)."""
    if batch < 2:
        raise ValueError(f"--clean-share needs at least 2 items per batch and process, got {batch}; raise --batch-size "
                         "or lower --accumulate")
    return min(max(int(round(share * batch)), 1), batch - 1)
