"""Keep the items of a deterministic training set in memory after their first read."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["CachedItems"]


class CachedItems(Dataset):
    """Keep the items of a deterministic dataset in memory after their first read (up to ``max_bytes``).

    Measurement datasets here are pure functions of the index (files, retrospective masks and
    simulated corruption are seeded per item), so caching changes nothing but speed: e.g. a
    fastMRI slice costs an HDF5 read, its coil maps and a normalisation every time otherwise.
    Only used with ``num_workers = 0`` (worker processes would each hold a copy).
    """

    def __init__(self, dataset: Dataset, max_bytes: float = 2 * 1024**3):
        self.dataset = dataset
        self.max_bytes = float(max_bytes)
        self.bytes = 0
        self._items: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        hit = self._items.get(i)
        if hit is not None:
            return hit
        item = self.dataset[i]
        size = _nbytes(item)
        if self.bytes + size <= self.max_bytes:
            self._items[i] = item
            self.bytes += size
        return item


def _nbytes(obj: Any, _depth: int = 0) -> int:
    """Approximate memory held by tensors in an item (dicts, lists, operators' tensor attributes)."""
    if isinstance(obj, Tensor):
        return obj.element_size() * obj.numel()
    if _depth > 3:
        return 0
    if isinstance(obj, dict):
        return sum(_nbytes(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_nbytes(v, _depth + 1) for v in vars(obj).values())
    return 0
