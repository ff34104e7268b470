"""Writing reconstructions: one NetCDF layout, fastMRI HDF5, FITS sky images, metrics JSON, figures.

NetCDF: :func:`ambient_imaging.datasets.reconstruction_dataset` (dims ``(sample, slice, y, x)``;
complex arrays as ``<name>_real`` / ``<name>_imag`` so any NetCDF tool reads them) with
``mean``, ``std``, ``samples``, ``zero_filled`` and, when scored, ``reference``.
Every file is written atomically (:mod:`ambient_imaging.io`).

Settings travel with outputs (:class:`OutputRecord`): once every artefact of an output is written
(the volume, its figure, its ``.metrics.json``), :meth:`OutputRecord.seal` adds to the
``.metrics.json`` the options that made it (``"settings"``) and the artefacts (``"artefacts"``).
An output is *finished* only when it is sealed and every artefact exists; a re-run with the same
settings skips it, one with other settings is refused with the exact ``--overwrite`` command
(as ``train`` does with a run folder), and an unfinished one (killed between two files) is redone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import TMP_MARK, atomic_write, atomic_write_text

from .run import Result, display_magnitude

__all__ = ["write_volume", "write_metrics", "write_figure", "png_grid", "OUTPUT_SUFFIXES", "json_safe",
           "OutputRecord", "output_settings", "command_line", "plan_records", "NOT_RECORDED"]

#: output kinds by suffix
OUTPUT_SUFFIXES = (".nc", ".h5", ".hdf5", ".fits", ".fit")


def json_safe(v: Any) -> Any:
    """``v`` with NaN/Inf as ``None``, numpy scalars as Python numbers and text that is not valid UTF-8
    (file names of other encodings) escaped (``\\xff``): valid JSON, NetCDF and CSV everywhere."""
    if isinstance(v, str):
        return _text(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return json_safe(v.item())
    return v


def _text(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        from ambient_imaging.limits import shown

        return shown(s)
    return s


def write_metrics(path: str | Path, summary: dict[str, Any]) -> Path:
    """``summary`` as indented JSON (NaN → null), atomically."""
    return atomic_write_text(path, json.dumps(json_safe(summary), indent=2))


def write_volume(path: str | Path, results: list[Result], attrs: dict[str, Any] | None = None) -> Path:
    """The reconstructions of the slices of one file: NetCDF (``.nc``) or fastMRI layout (``.h5``)."""
    from ambient_imaging.datasets.outputs import reconstruction_dataset, save_fastmri_reconstruction, save_netcdf

    path = Path(path)
    if not results:
        raise ValueError(f"{path}: nothing to write")
    meta = {k: json_safe(v) for k, v in (attrs or {}).items() if v is not None}
    if path.suffix.lower() in (".h5", ".hdf5"):  # fastMRI's layout holds the image as scored (e.g. the RSS estimate)
        shown = np.stack([r.magnitude.cpu().numpy() for r in results])
        shown_std = np.stack([r.std_magnitude.cpu().numpy() for r in results])
        return save_fastmri_reconstruction(path, shown.astype(np.float32), std=shown_std, attrs=meta)
    # one component: the complex image as it is; several ESPIRiT map sets: their root-sum-of-squares
    # (the image itself, not its RSS estimate, which goes into ``rss_estimate``)
    mean = np.stack([(r.mean[0] if r.mean.shape[0] == 1 else display_magnitude(r.mean)).cpu().numpy()
                     for r in results])
    std = np.stack([(r.std[0] if r.std.shape[0] == 1 else display_magnitude(r.std)).cpu().numpy()
                    for r in results])
    k = min(r.samples.shape[0] for r in results)
    samples = np.stack([r.samples[:k, 0].cpu().numpy() for r in results], axis=1)  # (K, S, H, W)
    refs = [r.problem.reference for r in results]
    reference = np.stack([t[0, 0].cpu().numpy() for t in refs]) if all(t is not None for t in refs) else None
    extra = {"zero_filled": np.stack([r.zero_filled[0].cpu().numpy() for r in results])}
    if all(r.target_samples is not None for r in results):  # the scored image: the estimate of the RSS target
        extra["rss_estimate"] = np.stack([r.magnitude.cpu().numpy() for r in results])
    ds = reconstruction_dataset(samples, mean, std, reference=reference, extra=extra,
                                slices=json.dumps([r.problem.meta.get("slice", i) for i, r in enumerate(results)]),
                                **{key: (json.dumps(json_safe(v)) if isinstance(v, (dict, list)) else v)
                                   for key, v in meta.items()})
    return save_netcdf(ds, path)


def png_grid(images: np.ndarray, path: str | Path, titles: list[str] | None = None) -> Path:
    """Save ``(N, H, W)`` or ``(N, 3, H, W)`` images as one PNG grid (Agg backend), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + (0.3 if titles else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        im = images[i]
        if im.ndim == 3 and im.shape[0] == 3:
            ax.imshow(np.clip(np.moveaxis(im, 0, -1), 0, 1))
        else:
            ax.imshow(im if im.ndim == 2 else im[0], cmap="gray")
        if titles:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"), suffix=".png")
    finally:
        plt.close(fig)


def write_figure(path: str | Path, result: Result) -> Path:
    """Reference (when known) | zero-filled | mean | std of one result."""
    panels, titles = [], []
    if result.problem.reference is not None:
        panels.append(result.problem.reference[0, 0].abs().cpu().numpy())
        titles.append("reference")
    panels += [result.zero_filled_magnitude.cpu().numpy(), result.magnitude.cpu().numpy(),
               result.std_magnitude.cpu().numpy()]
    titles += ["zero-filled", f"{result.method} mean", f"{result.method} std"]
    return png_grid(np.stack(panels), path, titles)


# ---------------------------------------------------------------------- settings travel with outputs
#: options that do not change what an output holds (not recorded, not compared)
NOT_RECORDED = ("strict", "overwrite", "progress")

#: option name -> CLI flag, where they differ
_FLAG_NAMES = {"method": "--sampler"}


def _plain(v: Any) -> Any:
    """``v`` as it reads back from JSON (tuples → lists, NaN → null), for comparisons."""
    return json.loads(json.dumps(json_safe(v), default=str))


def output_settings(options: Any, prior: Any | None = None, source: str | os.PathLike | None = None
                    ) -> dict[str, Any]:
    """What made an output: every field of ``options`` (a ``ReconstructOptions``) but :data:`NOT_RECORDED`,
    the input file (real path) and the prior (its real path and training step)."""
    d = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in NOT_RECORDED}
    run = getattr(prior, "run_dir", None)
    d["prior"] = os.path.realpath(run) if run else None
    d["prior_step"] = int(getattr(prior, "step", 0)) if prior is not None else None
    d["source"] = os.path.realpath(source) if source is not None else None
    return _plain(d)


def command_line(data: str | os.PathLike, out: str | os.PathLike, prior: Any | None, options: Any,
                 add: str = "--overwrite") -> str:
    """The ``ambient-imaging reconstruct`` command that makes these settings, plus ``add``."""
    args = ["reconstruct"]
    run = getattr(prior, "run_dir", None)
    if run:
        args += ["--prior", os.fspath(run)]
    args += ["--data", os.fspath(data), "--out", os.fspath(out)]
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        if f.name in NOT_RECORDED[1:] or v == f.default or v is None:
            continue
        flag = _FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        if isinstance(v, bool):
            args += [flag] if v else []
        else:
            args += [flag, f"{v:g}" if isinstance(v, float) else str(v)]
    return "ambient-imaging " + " ".join(shlex.quote(a) for a in [*args, add])


@dataclasses.dataclass
class OutputRecord:
    """One output (``target``) and the settings that make it; see the module docstring.

    Args:
        target: the volume / image file. settings: :func:`output_settings` of this command.
    """

    target: Path
    settings: dict[str, Any]

    @property
    def metrics_path(self) -> Path:
        """``<stem>.metrics.json`` next to the target."""
        return self.target.with_suffix(".metrics.json")

    @property
    def figure_path(self) -> Path:
        """``<stem>.png`` next to the target."""
        return self.target.with_suffix(".png")

    def _stored(self) -> dict[str, Any] | None:
        try:
            d = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return d if isinstance(d, dict) and isinstance(d.get("settings"), dict) else None

    def finished(self) -> bool:
        """Sealed, and every artefact the seal lists still exists."""
        d = self._stored()
        if d is None or not self.target.is_file():
            return False
        names = d.get("artefacts")
        if not isinstance(names, list):
            return False
        return all(isinstance(n, str) and (self.target.parent / Path(n).name).is_file() for n in names)

    def differences(self) -> dict[str, tuple[Any, Any]]:
        """Recorded settings that differ from this command's (empty when unsealed or the same)."""
        d = self._stored()
        if d is None:
            return {}
        old = d["settings"]
        return {k: (old.get(k), v) for k, v in self.settings.items() if old.get(k) != v}

    def skip(self, overwrite: bool, command: str) -> bool:
        """Whether this output is finished with the same settings (skip it). Raises ``ValueError`` with
        ``command`` (the ``--overwrite`` one) when it is finished with other settings."""
        if overwrite or not self.finished():
            return False
        diff = self.differences()
        if not diff:
            return True
        shown = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in list(diff.items())[:6])
        raise ValueError(f"--out {self.target} holds a reconstruction made with other settings ({shown}). "
                         f"To replace it: {command}  Or choose another --out.")

    def clean(self) -> list[Path]:
        """Remove the hidden temporaries a killed writer left for this output's files; returns them."""
        folder = self.target.parent
        if not folder.is_dir():
            return []
        prefixes = tuple(f".{p.name}{TMP_MARK}" for p in (self.target, self.metrics_path, self.figure_path))
        gone = []
        for p in folder.iterdir():
            if p.name.startswith(prefixes) and p.is_file() and not p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()
                    gone.append(p)
        return gone

    def seal(self) -> Path:
        """Record the settings and the artefacts present (volume, figure, metrics) in the metrics file:
        called once all of them are written, it is what makes the output finished."""
        try:
            d = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{self.metrics_path}: cannot seal the output ({err})") from err
        present = [p.name for p in (self.target, self.figure_path, self.metrics_path) if p.is_file()]
        d.update(settings=self.settings, artefacts=present)
        return write_metrics(self.metrics_path, d)


def plan_records(data: str | os.PathLike, out: str | os.PathLike, prior: Any | None, options: Any, method: str,
                 files: list[Path], targets: list[Path]) -> list[OutputRecord]:
    """One :class:`OutputRecord` per output, checked before any work: an output finished with other
    settings is refused (unless ``options.overwrite``) with the exact ``--overwrite`` command.

    ``method``: the method's resolved name (recorded in place of an unset ``options.method``).
    """
    made = dataclasses.replace(options, method=method)
    records = [OutputRecord(Path(t), output_settings(made, prior, f)) for f, t in zip(files, targets, strict=True)]
    if not options.overwrite:
        command = command_line(data, out, prior, options)
        for record in records:
            record.skip(False, command)
    return records
