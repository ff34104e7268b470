"""Sizes, counts and names checked at the boundary, before anything is allocated or started.

Every command validates what a user can make arbitrarily large (``--samples``, ``--n``,
``--batch-size``, ``--workers``, ``--seed``, a file's dimensions, a checkpoint's network widths)
with these functions, so that a typo or a hostile file gives one short line naming the flag or
the file, never a memory-allocation traceback, a fork bomb or a message megabytes long:

* :func:`check_count` — an integer flag in ``[minimum, maximum]``;
* :func:`check_workers` — ``1 <= workers <= CPU count`` (the CPUs this process may use);
* :func:`check_seed` — a seed every random generator accepts (``0 <= seed < 2**32``);
* :func:`check_memory` / :func:`array_bytes` — an estimated allocation against the memory
  available on this machine (the message gives both);
* :func:`activation_bytes` / :func:`check_batch_memory` — a network's activations for one item,
  measured in one forward pass, times the batch size against the memory available;
* :func:`parse_index_list` — ``"0,3,5-7"`` → sorted, de-duplicated indices, checked against the
  valid range without expanding a huge range first (errors state the range, not every index);
* :func:`shown` — a path as text that can always be printed (non-UTF-8 bytes escaped);
  :func:`error_text` — an error's one-line message, a codec error turned into one naming the text.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

__all__ = [
    "MEMORY_FRACTION",
    "SEED_MAX",
    "available_memory",
    "array_bytes",
    "check_count",
    "check_memory",
    "check_seed",
    "check_workers",
    "check_batch_memory",
    "activation_bytes",
    "cpu_count",
    "error_text",
    "format_bytes",
    "parse_index_list",
    "shown",
]

#: an allocation may use at most this fraction of the memory available when it is checked
MEMORY_FRACTION = 0.8

#: largest seed accepted (``numpy``'s legacy generator takes 32-bit seeds; torch takes more)
SEED_MAX = 2**32 - 1


def shown(path: str | os.PathLike | bytes) -> str:
    """``path`` as printable text: bytes that are not UTF-8 appear escaped (``\\xff``), never as a codec error."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", errors="backslashreplace")


def error_text(err: BaseException) -> str:
    """The one line the CLI prints for ``err``; a bare codec error (a file name that is not UTF-8 reaching
    a writer that needs UTF-8) becomes a sentence that shows the name, escaped."""
    if isinstance(err, UnicodeError) and isinstance(getattr(err, "object", None), (str, bytes)):
        obj, start, end = err.object, int(getattr(err, "start", 0)), int(getattr(err, "end", 0))
        lo, hi = max(0, start - 60), min(len(obj), end + 60)
        around = obj[lo:hi] if isinstance(obj, str) else obj[lo:hi].decode("utf-8", "backslashreplace")
        text = shown(around) if isinstance(around, str) else around
        if isinstance(err, UnicodeDecodeError):
            return f"not UTF-8 text: ...{text}... (a file holding text in another encoding?)"
        return (f"a name is not valid UTF-8 and cannot be stored as text here: ...{text}... (rename the file "
                "or folder to UTF-8, e.g. with convmv)")
    return str(err)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available for new allocations (Linux ``MemAvailable``; ``None`` where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # pragma: no cover - non-Linux POSIX
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return None


def format_bytes(n: float) -> str:
    """``1.5e9`` → ``"1.4 GiB"`` (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def array_bytes(shape: Iterable[int], itemsize: int) -> int:
    """Bytes of an array of ``shape`` with ``itemsize``-byte elements (Python integers: no overflow)."""
    return math.prod(int(s) for s in shape) * int(itemsize)


def check_memory(nbytes: float, what: str, where: str, hint: str = "",
                 available: int | None = None) -> None:
    """Raise ``ValueError`` when ``nbytes`` exceed :data:`MEMORY_FRACTION` of the available memory.

    Args:
        nbytes: the estimated allocation. what: what needs it (``"one k-space slice (8, 40000, 40000)"``).
        where: the file or flag responsible, first in the message. hint: what to do instead.
        available: bytes available (default: :func:`available_memory`; unknown → no check).
    """
    avail = available_memory() if available is None else available
    if avail is None or nbytes <= MEMORY_FRACTION * avail:
        return
    msg = f"{where}: {what} needs about {format_bytes(nbytes)}, but only {format_bytes(avail)} of memory is available"
    raise ValueError(msg + (f"; {hint}" if hint else ""))


def check_count(flag: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``, or a one-line ``ValueError`` naming ``flag``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{flag} must be an integer, got {value!r}")
    try:
        as_float = float(value)  # type: ignore[arg-type]
        n = int(as_float) if not isinstance(value, int) else value
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{flag} must be an integer, got {str(value)[:40]!r}") from None
    if not isinstance(value, int) and (not math.isfinite(as_float) or as_float != n):
        raise ValueError(f"{flag} must be an integer, got {str(value)[:40]}")
    if n < minimum or (maximum is not None and n > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{flag} must be >= {minimum}{upper}, got {_short(n)}")
    return n


def check_workers(value: object, flag: str = "--workers") -> int:
    """Worker processes: ``1 <= value <= cpu_count()`` (more only oversubscribes the cores)."""
    n_cpu = cpu_count()
    if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= n_cpu:
        raise ValueError(f"{flag} must be between 1 and {n_cpu} (the CPUs this process may use), "
                         f"got {_short(value)}")
    return check_count(flag, value, 1, n_cpu)


def check_seed(value: object, flag: str = "--seed") -> int:
    """A seed in ``[0, SEED_MAX]`` (accepted by torch, numpy and Python's ``random``)."""
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= SEED_MAX:
        raise ValueError(f"{flag} must be between 0 and {SEED_MAX} (2**32 - 1), got {_short(value)}")
    return check_count(flag, value, 0, SEED_MAX)


def _short(n: int) -> str:
    text = str(n)
    return text if len(text) <= 24 else f"{text[:8]}...({len(text)} digits)"


def parse_index_list(spec: str | Sequence[int] | None, n: int, flag: str = "--slices",
                     strict: bool = True, what: str = "slices") -> list[int]:
    """``"0,3,5-7"`` (any order, repeats allowed) → sorted unique indices in ``range(n)``; ``None`` → all.

    Ranges are checked before they are expanded, so ``0-10000000`` costs nothing; an index out of
    range raises one short ``ValueError`` giving the valid range (``strict=False``: such indices are
    dropped instead, for a folder of files with different counts).
    """
    if spec is None:
        return list(range(n))
    parts = [str(p).strip() for p in spec] if not isinstance(spec, str) else [p.strip() for p in spec.split(",")]
    found: set[int] = set()
    valid = f"the data has {n} {what} (valid: 0-{n - 1})" if n > 0 else f"the data has no {what}"
    for part in parts:
        if not part:
            continue
        try:
            a, b = part.split("-", 1) if "-" in part else (part, part)
            lo, hi = int(a), int(b)
        except ValueError:
            raise ValueError(f"{flag}: cannot read {part[:40]!r} (use e.g. 0,1,5-7)") from None
        if hi < lo:
            raise ValueError(f"{flag}: the range {part[:40]} is reversed (write {hi}-{lo})")
        if lo >= n or hi >= n:
            if strict:
                raise ValueError(f"{flag} {part[:40]}: out of range; {valid}")
            hi = min(hi, n - 1)
        found.update(range(lo, hi + 1))
    return sorted(found)


def activation_bytes(module: object, *inputs: object) -> int:
    """Bytes of the outputs of every leaf module of ``module`` (a ``torch.nn.Module``) in one forward pass
    on ``inputs`` (without gradients): what training keeps for the backward pass, per item when the
    inputs hold one item."""
    import torch

    total = 0

    def count(_m: object, _inp: object, out: object) -> None:
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]  # type: ignore[attr-defined]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            module(*inputs)  # type: ignore[operator]
    finally:
        for h in handles:
            h.remove()
    return total


def check_batch_memory(batch: int, per_item: int, flag: str = "--batch-size", device: str = "cpu",
                       available: int | None = None) -> None:
    """Refuse a batch whose activations (``per_item`` bytes each, twice: forward outputs and gradients)
    exceed the memory available (the GPU's free memory on ``cuda``), naming ``flag`` and both amounts."""
    if available is None and str(device).startswith("cuda"):
        import torch

        available = int(torch.cuda.mem_get_info(torch.device(device))[0])
    check_memory(2 * int(batch) * int(per_item), f"a batch of {int(batch)} items ({format_bytes(2 * per_item)} of "
                 "activations each)", f"{flag} {int(batch)}", "use a smaller --batch-size (with --accumulate to "
                 "keep the effective batch)", available=available)
