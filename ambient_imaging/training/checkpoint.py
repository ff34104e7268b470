"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout of a run directory::

    RUN/config.toml
    RUN/metrics.csv
    RUN/checkpoints/latest                 # text: name of the newest complete checkpoint
    RUN/checkpoints/step-00000100/
        net.safetensors                    # raw (online) weights
        ema.safetensors                    # EMA weights (what load_prior uses)
        state.safetensors                  # optimizer moments + RNG state tensors
        state.json                         # step, images, param groups, python RNG, config, network, prior

A checkpoint is written into a hidden temporary folder and moved into place
with one ``os.replace``; the ``latest`` pointer is updated (atomically) last.
A run killed at any moment therefore has either the old or the new
checkpoint, never a half-written one. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import atomic_write_text

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "remove_orphans",
    "non_finite_tensors",
    "check_inside",
    "optimizer_to_flat",
    "optimizer_from_flat",
    "capture_rng",
    "restore_rng",
]

_NAME = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A run directory or checkpoint that cannot be read (with the path in the message)."""


@dataclass
class Checkpoint:
    """A checkpoint read back from disk (tensors on CPU)."""

    path: Path
    net: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


# ---------------------------------------------------------------------- optimizer state
def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into tensors (``optim.<param>.<key>``) and JSON-able metadata."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_to_flat` (loads into ``opt`` in place)."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = t
    for pid, st in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------------- RNG state
def capture_rng(generator: torch.Generator | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All RNG states (torch CPU/CUDA, numpy, python, the noise generator) as tensors + JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    if generator is not None:
        tensors["rng.noise"] = generator.get_state()
    version, pystate, gauss = random.getstate()
    meta = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(pystate), "gauss_next": gauss},
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any], generator: torch.Generator | None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda[:n]])
    m = meta["numpy"]
    np.random.set_state(
        (m["kind"], tensors["rng.numpy"].numpy().astype(np.uint32), m["pos"], m["has_gauss"], m["cached_gaussian"])
    )
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if generator is not None and "rng.noise" in tensors:
        generator.set_state(tensors["rng.noise"])


# ---------------------------------------------------------------------- save / load
def _state_dict_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share memory
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    net: nn.Module,
    ema: nn.Module,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``RUN/checkpoints/step-XXXXXXXX`` atomically, update ``latest``, prune old ones.

    Args:
        tensors: extra tensors (optimizer moments, RNG states) for ``state.safetensors``.
        state: JSON-serialisable metadata (step, images, config, ...).
        keep: number of most recent checkpoints to keep.
    """
    root = _checkpoints_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_file(_state_dict_cpu(net), str(tmp / "net.safetensors"))
        save_file(_state_dict_cpu(ema), str(tmp / "ema.safetensors"))
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "state.safetensors"))
        with open(tmp / "state.json", "w") as f:
            json.dump(dict(state, step=int(step)), f, indent=1, allow_nan=False)
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():  # re-saving the same step (e.g. exit right after a periodic save)
            old = root / f".old-{name}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / "latest", name + "\n")
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) is ``root`` or lies inside it (symlinks resolved)."""
    try:
        real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    except OSError:
        return False
    return real == base or real.is_relative_to(base)


def check_inside(path: str | os.PathLike, run_dir: str | os.PathLike, what: str = "") -> Path:
    """``path`` if its real path (every symlink resolved) lies inside the run folder ``run_dir``.

    Called on every path of a run (``checkpoints/``, ``latest``, a ``step-*`` folder, its files,
    ``config.toml``) *before* it is opened: a link leading out of the run (to another run's
    weights, to ``/etc/passwd``) raises :class:`CheckpointError` without being read.
    """
    path = Path(path)
    if _inside(path, Path(run_dir)):
        return path
    name = f"{what} " if what else ""
    raise CheckpointError(
        f"{path}: {name}links outside the run folder {run_dir} (to {os.path.realpath(path)}); refusing to read "
        "anything from outside the run"
    )


def _checkpoints_root(run_dir: str | os.PathLike) -> Path:
    """``RUN/checkpoints``, refused when it is a link leading out of the run (another run's checkpoints)."""
    root = Path(run_dir) / "checkpoints"
    if root.exists() or root.is_symlink():
        check_inside(root, run_dir, "the checkpoints folder")
    return root


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (folders linking outside ``checkpoints/`` are ignored).

    Raises :class:`CheckpointError` when ``checkpoints/`` itself links out of the run.
    """
    root = _checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return [
        p
        for _, p in sorted(found)
        if _inside(p, root) and (p / "state.json").is_file() and (p / "ema.safetensors").is_file()
    ]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint named by ``latest`` (or the newest complete one); ``None`` if there is none.

    ``latest`` must hold the bare name of a checkpoint folder of this run (``step-XXXXXXXX``):
    a pointer to anything else (``../other-run/...``, an absolute path, a folder that is a
    symlink leading out of ``checkpoints/``) raises :class:`CheckpointError`.
    """
    root = _checkpoints_root(run_dir)
    pointer = root / "latest"
    if pointer.is_file():
        check_inside(pointer, run_dir, "the checkpoint pointer")
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{pointer}: unreadable checkpoint pointer ({err})") from err
        if not _NAME.match(name):
            raise CheckpointError(
                f"{pointer}: names {name[:200]!r}, which is not a checkpoint folder of this run (expected "
                "'step-NNNNNNNN'); refusing to follow it. Delete the file to use the newest checkpoint."
            )
        cand = root / name
        if cand.exists() and not _inside(cand, root):
            raise CheckpointError(
                f"{cand}: links outside {root} (to {cand.resolve()}); refusing to load a checkpoint of another run"
            )
        if (cand / "state.json").is_file():
            return cand
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


#: temporaries of :func:`save_checkpoint` (``.step-N.XXXX``, ``.old-step-N``) left by a killed process
_ORPHAN = re.compile(r"^\.(old-)?step-\d+(\..*)?$")


def remove_orphans(run_dir: str | os.PathLike) -> list[Path]:
    """Delete what killed writes left in a run folder; returns the removed paths.

    Removes half-written checkpoint folders (``checkpoints/.step-*``, ``checkpoints/.old-step-*``)
    and atomic-write temporaries (:func:`ambient_imaging.io.remove_stale_temporaries`) in the run
    folder and in ``checkpoints/``. Call it only while holding the run's lock
    (:class:`ambient_imaging.locks.RunLock`): a live writer's temporaries would go too.
    """
    from ambient_imaging.io import remove_stale_temporaries

    run = Path(run_dir)
    root = _checkpoints_root(run)
    gone: list[Path] = []
    if root.is_dir():
        for p in root.iterdir():
            if _ORPHAN.match(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
        gone += remove_stale_temporaries(root)
    gone += remove_stale_temporaries(run)
    return gone


def load_checkpoint(path: str | os.PathLike, weights_only: bool = False) -> Checkpoint:
    """Read a checkpoint folder (or a run directory: its latest checkpoint) onto the CPU.

    Every file is checked to lie inside the run (:func:`check_inside`; a checkpoint folder's run
    is the folder above its ``checkpoints/``) before it is opened.
    """
    path = Path(path)
    if (path / "checkpoints").is_dir() or (path / "config.toml").is_file():
        run = path
        ck = latest_checkpoint(path)
        if ck is None:
            raise CheckpointError(f"{path}: this run has no checkpoint yet (nothing under {path / 'checkpoints'})")
        path = ck
    else:
        run = path.parent.parent if path.parent.name == "checkpoints" else path
    check_inside(path, run, "the checkpoint folder")
    files = ["ema.safetensors", "state.json"] + ([] if weights_only else ["net.safetensors", "state.safetensors"])
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint (missing {', '.join(missing)})")
    for f in files:
        check_inside(path / f, path)
    try:
        with open(path / "state.json") as f:
            state = json.load(f)
        ema = load_file(str(path / "ema.safetensors"))
        net = {} if weights_only else load_file(str(path / "net.safetensors"))
        tensors = {} if weights_only else load_file(str(path / "state.safetensors"))
    except (OSError, json.JSONDecodeError, Exception) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path / 'state.json'}: not a checkpoint state (no integer 'step')")
    for part, weights in (("ema", ema), ("net", net)):
        bad = non_finite_tensors(weights)
        if bad:
            raise CheckpointError(
                f"{path}: the {part} weights contain NaN or Inf values ({len(bad)} tensor(s), e.g. {bad[0]!r}); "
                "this checkpoint is unusable. Load an earlier one (a step-* folder next to it) or retrain."
            )
    return Checkpoint(path=path, net=net, ema=ema, tensors=tensors, state=state)


def non_finite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point / complex tensors holding a NaN or an Inf."""
    return [
        k
        for k, t in tensors.items()
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())
    ]
