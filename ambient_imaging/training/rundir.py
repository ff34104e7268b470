"""What ``train`` does with an existing run folder: start, resume, replace, or refuse (with the exact command).

The rule (documented in ``ambient-imaging train --help``):

* an empty or missing ``--out`` starts a new run;
* ``--resume`` continues the run in ``--out`` with its recorded settings (flags such as
  ``--steps``/``--minutes`` may extend it; data, operator, loss and network cannot change);
* without ``--resume``, a run folder holding a run **of the same settings** is resumed
  automatically, so re-running the interrupted command (Ctrl-C, SIGTERM, kill -9) continues
  where it stopped. Settings that may differ between the two commands are those that do not
  change what is learned (:data:`RESUMABLE_CHANGES`);
* a run of other settings is refused with the differences and the exact commands to continue
  it (``--resume``) or to replace it (``--overwrite``);
* ``--overwrite`` replaces the run, but only after every input was checked (the data are
  built first), and only the run's own files are removed.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ambient_imaging.locks import LOCK_NAME

from .checkpoint import latest_checkpoint
from .config import TrainConfig

__all__ = ["RunPlan", "plan_run", "clear_run", "RESUMABLE_CHANGES", "RUN_FILES"]

#: settings that may differ between the command that started a run and the one resuming it
RESUMABLE_CHANGES = frozenset(
    {"out", "steps", "minutes", "progress", "num_workers", "device", "log_every", "checkpoint_every",
     "keep_checkpoints", "compile", "diagnostics_every", "precision", "channels_last"}
)

#: what ``--overwrite`` removes from a run folder (nothing else is touched)
RUN_FILES = ("checkpoints", "config.toml", "metrics.csv")


@dataclass
class RunPlan:
    """What to do with ``out``: ``action`` is ``"new"``, ``"resume"`` or ``"overwrite"``; ``note`` says why.

    ``config`` is what to train with: for an automatic resume, the run's recorded settings (values
    estimated from the data included) with this command's :data:`RESUMABLE_CHANGES` applied.
    """

    out: Path
    action: str
    note: str = ""
    step: int | None = None
    config: TrainConfig | None = None

    @property
    def resume(self) -> bool:
        return self.action == "resume"


def _is_run(out: Path) -> bool:
    return (out / "config.toml").is_file() or (out / "checkpoints").is_dir()


def _contents(out: Path) -> list[Path]:
    """Entries of ``out`` besides our own lock file and hidden temporaries."""
    if not out.is_dir():
        return []
    return [p for p in out.iterdir() if p.name != LOCK_NAME and not p.name.startswith(".")]


def _norm(key: str, value: Any) -> Any:
    if key == "data" and isinstance(value, str) and value and Path(value).exists():
        return os.path.realpath(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def differences(stored: TrainConfig, wanted: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Settings of ``wanted`` that differ from the run's ``stored`` ones (besides :data:`RESUMABLE_CHANGES`).

    Settings left unset in ``wanted`` (``None``: e.g. ``sigma_data``, estimated from the data
    and recorded by the run) are not compared.
    """
    old, new = stored.to_dict(), wanted.to_dict()
    out = {}
    for k, v in new.items():
        if k in RESUMABLE_CHANGES:
            continue
        if _norm(k, old.get(k)) != _norm(k, v):
            out[k] = (old.get(k), v)
    return out


def _command(argv: list[str] | None, add: str) -> str:
    args = [a for a in (argv or []) if a not in ("--resume", "--overwrite")]
    return "ambient-imaging " + " ".join(shlex.quote(a) for a in [*args, add])


def plan_run(out: str | os.PathLike, cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
             argv: list[str] | None = None) -> RunPlan:
    """Decide what ``train`` does with ``out`` (module docstring); raise a ``ValueError`` that says what to type.

    Args:
        cfg: the settings of this command (for ``--resume``: the run's own, flags applied).
        argv: this command's arguments (after ``ambient-imaging``), for the suggested commands.
    """
    out = Path(out)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other; give one of them")
    entries = _contents(out)
    if not entries:
        note = "resume requested but the folder holds no run yet; starting it" if resume else ""
        return RunPlan(out, "new", note, None, cfg)
    if not _is_run(out):
        names = ", ".join(sorted(p.name for p in entries)[:5])
        raise ValueError(
            f"--out {out} is not empty ({names}{', ...' if len(entries) > 5 else ''}) and holds no training run; "
            "refusing to write into it (or delete anything there): choose another --out"
        )
    ck = latest_checkpoint(out)
    step = int(ck.name.split("-")[1]) if ck is not None else 0
    if overwrite:
        return RunPlan(out, "overwrite", f"replacing the run in {out} (at step {step})", step, cfg)
    if resume:
        return RunPlan(out, "resume", f"resuming the run in {out} from step {step}", step, cfg)
    try:
        stored = TrainConfig.load(out / "config.toml")
    except (ValueError, OSError) as err:
        raise ValueError(
            f"--out {out} holds a run whose config.toml cannot be read ({err}); to replace it: "
            f"{_command(argv, '--overwrite')}"
        ) from err
    diff = differences(stored, cfg)
    if not diff:
        changes = {k: v for k, v in cfg.to_dict().items() if k in RESUMABLE_CHANGES}
        return RunPlan(out, "resume", f"resuming the run in {out} from step {step} (same settings; --overwrite "
                       "starts afresh)", step, stored.replace(**changes).validate())
    shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in list(diff.items())[:6])
    raise ValueError(
        f"--out {out} holds a run (step {step}) with other settings ({shown}). To continue that run with its "
        f"own settings: {_command(argv, '--resume')}  To replace it: {_command(argv, '--overwrite')}  "
        "Or choose another --out."
    )


def clear_run(out: str | os.PathLike) -> list[Path]:
    """Remove the run's own files (:data:`RUN_FILES`) from ``out``; nothing else. Returns what was removed."""
    out = Path(out)
    gone = []
    for name in RUN_FILES:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        gone.append(p)
    return gone
