"""Split-conformal calibration of the posterior std map on fully sampled validation files.

``reconstruct --calibrate DIR`` reconstructs every slice of the fully sampled files in ``DIR`` with the same method,
prior and options as the main run (the same mask protocol, undersampled retrospectively), pools the
per-pixel scores ``|x − mean| / (2 std)`` on the fastMRI scoring crop and fits one scale ``q`` so
that ``|x − mean| ≤ q · 2 std`` holds for the nominal 95 % of validation pixels
(:class:`~ambient_imaging.metrics.calibration.Calibration`). The record is written next to the
outputs (``calibration.json``, or ``<out>.calibration.json`` for a file output); copied into the
prior's run dir it is used by default for the same method (``--calibration FILE`` names one).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ambient_imaging.metrics.calibration import Calibration

__all__ = ["calibrate", "calibration_for", "calibration_path"]

#: the record's file name (next to the outputs, or in a prior's run dir)
CALIBRATION_FILE = "calibration.json"


def calibration_path(targets: list[Path]) -> Path:
    """Where a fitted record is written: ``<out>.calibration.json`` for one output file, else
    ``<out folder>/calibration.json``."""
    if len(targets) == 1 and targets[0].parent.name and targets[0].suffix:
        return targets[0].with_suffix(".calibration.json")
    return targets[0].parent / CALIBRATION_FILE


def calibrate(validation: str | Path, prior: Any, options: Any, *, device: torch.device | None = None,
              say: Callable[[str], None] | None = None) -> Calibration:
    """Fit a :class:`Calibration` on the fully sampled files under ``validation`` (options as the main run)."""
    from .app import reconstruct_path

    validation = Path(validation)
    if not validation.exists():
        raise FileNotFoundError(f"--calibrate {validation}: no such file or folder")
    scores: list[Any] = []
    opts = dataclasses.replace(options, calibrate=None, calibration=None, overwrite=True, progress=False,
                               slices=None)  # every validation slice
    with tempfile.TemporaryDirectory(prefix="ambient-calibrate-") as tmp:
        reconstruct_path(validation, Path(tmp) / "out", prior, opts, device=device, say=say or (lambda _m: None),
                         collect=lambda r: scores.append(r.info.get("conformal_scores")))
    scores = [s for s in scores if s is not None]
    if not scores:
        raise ValueError(f"--calibrate {validation}: no fully sampled slice with a reference and >= 2 posterior "
                         "samples (calibration needs --samples >= 2 and fully sampled validation files)")
    name = opts.make(prior).name
    return Calibration.fit(scores, method=name, prior=str(getattr(prior, "run_dir", "") or ""),
                           source=str(validation))


def calibration_for(options: Any, prior: Any, method: Any, data: Path, targets: list[Path], *,
                    device: torch.device | None, say: Callable[[str], None]) -> Calibration | None:
    """The calibration of a run: fitted (``options.calibrate``, then saved), read (``options.calibration``),
    or the prior's own ``calibration.json`` when it was fitted for ``method``; ``None`` otherwise."""
    if options.calibrate is not None:
        if not method.needs_prior:
            raise ValueError(f"--calibrate: {method.name} gives one image, no uncertainty to calibrate")
        if Path(options.calibrate).resolve() == data.resolve():
            say(f"--calibrate {options.calibrate} is the data itself: the coverage reported is not held out")
        calib = calibrate(options.calibrate, prior, options, device=device, say=say)
        path = calib.save(calibration_path(targets))
        say(f"calibration: q = {calib.q:.3g} from {calib.pixels} pixels of {calib.slices} validation slices -> {path}")
        return calib
    if options.calibration is not None:
        return Calibration.load(options.calibration)
    run_dir = str(getattr(prior, "run_dir", "") or "") if prior is not None else ""
    own = Path(run_dir) / CALIBRATION_FILE if run_dir else None
    if own is not None and own.is_file():
        calib = Calibration.load(own)
        if calib.method == method.name:
            say(f"calibration: {own} (q = {calib.q:.3g}, fitted for {calib.method})")
            return calib
    return None
