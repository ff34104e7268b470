"""``--device``: one function that turns a name into a usable ``torch.device`` or one clear error.

Every command validates its ``--device`` with :func:`resolve_device` before it reads any data,
so ``--device bogus`` or ``--device cuda`` on a machine without a GPU fails at once with a
line saying what is available, not with a traceback after the data were loaded.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "available_devices"]

_KINDS = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names that :func:`resolve_device` accepts on this machine (``cpu``, ``cuda:N``..., ``mps``)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device | None = None, local_rank: int = 0, flag: str = "--device") -> torch.device:
    """The ``torch.device`` for ``name``; ``ValueError`` naming what is available otherwise.

    * ``None``, ``""`` or ``"auto"``: the GPU when one is available (CUDA, then Apple ``mps``), else the CPU;
    * ``"cpu"``; ``"cuda"`` (this process's local GPU under ``torchrun``: ``cuda:<local_rank>``);
      ``"cuda:N"`` (N must exist); ``"mps"``.

    Anything else (a typo, ``meta``, a GPU that is not there) raises ``ValueError``.
    """
    if isinstance(name, torch.device):
        text = str(name)
    else:
        text = "" if name is None else str(name).strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            text = "cuda"
        elif _mps_available():
            text = "mps"
        else:
            text = "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"{flag} {name}: not a device; use one of {', '.join(available_devices())} (or auto)"
        ) from None
    if dev.type not in _KINDS:
        raise ValueError(f"{flag} {name}: unsupported device type {dev.type!r}; use one of "
                         f"{', '.join(available_devices())}")
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "mps":
        if not _mps_available():
            raise ValueError(f"{flag} {name}: Apple MPS is not available on this machine; use --device cpu")
        return dev
    if not torch.cuda.is_available():
        why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise ValueError(f"{flag} {name}: {why} (torch {torch.__version__}); use --device cpu")
    n = torch.cuda.device_count()
    if dev.index is None:
        return torch.device("cuda", local_rank % max(n, 1))
    if not 0 <= dev.index < n:
        raise ValueError(f"{flag} {name}: there is no GPU {dev.index}; this machine has {n} (cuda:0..cuda:{n - 1})")
    return dev
