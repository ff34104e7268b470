"""``torchrun`` + DistributedDataParallel plumbing.

Launch multi-GPU / multi-node training with ``torchrun``::

    torchrun --nproc-per-node 8 -m ambient_imaging train --data ... --operator mri --out RUN

Each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the
environment (set by ``torchrun``); without them training runs as a single
process. The backend is NCCL on CUDA and gloo on CPU. Only rank 0 writes
checkpoints, logs and progress bars; the data are sharded by rank with the
seeded, resumable sampler of :mod:`ambient_imaging.training.data`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ambient_imaging.devices import resolve_device  # the package's one device rule (re-exported here)

__all__ = ["DistContext", "init_distributed", "cleanup_distributed", "all_reduce_mean", "resolve_device"]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {v!r}") from None


def init_distributed(device: str | torch.device | None = None) -> DistContext:
    """Initialise the process group from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` if present.

    Uses NCCL for CUDA devices and gloo otherwise (``MASTER_ADDR``/``MASTER_PORT``
    come from the environment, as ``torchrun`` sets them). Reuses an already
    initialised process group. Returns a single-process context when
    ``WORLD_SIZE`` is unset or 1.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
        return DistContext(rank, world, local_rank, resolve_device(device, local_rank), False)
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, dev, True)


def cleanup_distributed(ctx: DistContext) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if ctx.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean of ``t`` over ranks (identity in a single process)."""
    if not ctx.distributed:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / ctx.world_size
