"""The reconstruction app: files or folders in, reconstructions, metrics and figures out.

:func:`reconstruct_path` is what ``ambient-imaging reconstruct`` runs (sigpy keeps its
equivalent in ``mri/app.py``): it classifies the input (fastMRI HDF5 file or folder, UVFITS
visibilities, a FITS image with masked pixels), checks the output *before any work* (writable,
of the right kind, never an input, not in use by another process), builds each
:class:`~ambient_imaging.problems.Problem` with the builders training uses, reconstructs it
(:func:`~ambient_imaging.reconstruction.reconstruct`) and writes one output per input file plus
its ``.metrics.json`` and a figure. Finished outputs are skipped (re-running after Ctrl-C resumes)
unless ``overwrite``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ambient_imaging.limits import shown
from ambient_imaging.problems import MaskSpec, image_problem, visibility_problem
from ambient_imaging.sampling.method import KIND_WORDS

from .methods import check_number, default_method_name, make_method
from .outputs import OUTPUT_SUFFIXES, OutputRecord, plan_records, write_figure, write_metrics, write_volume
from .run import Result, reconstruct

__all__ = ["ReconstructOptions", "reconstruct_path", "input_kind", "plan_outputs", "mask_spec_for", "parse_slices",
           "parse_angle"]

MRI_SUFFIXES = (".h5", ".hdf5")
UV_SUFFIXES = (".uvfits", ".uvf")
FITS_SUFFIXES = (".fits", ".fit", ".fts")


@dataclass
class ReconstructOptions:
    """Everything ``reconstruct`` can be asked (the CLI flags of the same names).

    ``method=None``: the prior's default (:func:`default_method_name`), zero-filled without a prior.
    MRI masks of fully sampled files: ``acceleration``, ``mask_kind``, ``center_lines`` /
    ``center_fraction``, ``mask_seed`` (unset: the prior's training protocol, else the
    :class:`MaskSpec` defaults); ``padding``: zero-padded phase-encode columns (``auto``: the header's
    ``encodingLimits``, else detected zero bands; ``none``; ``"LEFT,RIGHT"``); ``coils``: SVD coil
    compression to N virtual coils. Scoring (fastMRI's convention): ``target`` ``rss``
    (``reconstruction_rss`` or the RSS of the fully sampled coil images) or ``sense1``, on the
    ``crop`` (``auto``: the header's ``reconSpace``; ``none``; ``N``; ``"H,W"``), SSIM per slice with
    the volume's maximum as data range. ``strict``: failed checks are errors. ``overwrite``: redo
    finished outputs. Uncertainty: ``calibrate`` a folder of fully sampled validation files to fit a
    split-conformal scale of the std map on (written next to the outputs as ``calibration.json``),
    or ``calibration`` a saved record (default: ``calibration.json`` in the prior's run dir, when it
    was fitted for the same method); metrics then report the calibrated ``coverage``. ``map_sets``:
    ESPIRiT sets of maps (1, as training reads files; ``auto``: two where the data say the field of view
    is reduced, else one — for the classical methods: a prior takes the one-set images it was trained on).
    ``allow_size_mismatch``: run a prior on MRI data of another matrix size (refused otherwise:
    :func:`~ambient_imaging.reconstruction.checks.prior_size_refusal`).
    """

    method: str | None = None
    samples: int = 8
    steps: int | None = None
    acceleration: float | None = None
    mask_kind: str | None = None
    center_lines: int | None = None
    center_fraction: float | None = None
    mask_seed: int = 0
    slices: str | None = None
    crop: str | int | None = "auto"
    target: str = "rss"
    padding: str = "auto"
    coils: int | None = None
    data_terms: str | None = None
    selfcal: bool = False
    flux: float | None = None
    logcamp_noise: str | None = None
    avg_time: str | float | None = "auto"
    sys_noise: float = 0.0
    lamda: float | None = None
    zeta: float | None = None
    fov: str | None = None
    npix: int = 64
    seed: int = 0
    strict: bool = False
    overwrite: bool = False
    calibrate: str | None = None
    calibration: str | None = None
    progress: bool = True
    map_sets: int | str = "auto"
    allow_size_mismatch: bool = False

    def validate(self) -> ReconstructOptions:
        """Clear errors for impossible numbers, before any data is read (the method's options —
        ``--steps``, ``--lamda``, ``--zeta``, ``--samples`` — are checked once, by :meth:`make`)."""
        check_number("--acceleration", self.acceleration, minimum=1.0)
        check_number("--flux", self.flux, strict=True)
        check_number("--sys-noise", self.sys_noise, maximum=0.999)
        from ambient_imaging.sampling.rml import LOGCAMP_NOISE_RULES

        if self.logcamp_noise is not None and self.logcamp_noise not in LOGCAMP_NOISE_RULES:
            raise ValueError(f"--logcamp-noise must be {', '.join(LOGCAMP_NOISE_RULES[:-1])} or "
                             f"{LOGCAMP_NOISE_RULES[-1]}, got {self.logcamp_noise!r}")
        from ambient_imaging.datasets.averaging import parse_avg_time

        parse_avg_time(self.avg_time)
        if isinstance(self.crop, int) and self.crop < 1:
            raise ValueError(f"--crop must be >= 1, got {self.crop}")
        if self.target not in ("rss", "sense1"):
            raise ValueError(f"--target must be rss or sense1, got {self.target!r}")
        if self.coils is not None and int(self.coils) < 1:
            raise ValueError(f"--coils must be >= 1, got {self.coils}")
        from ambient_imaging.datasets.fastmri import parse_padding

        parse_padding(self.padding)
        if self.center_lines is not None and int(self.center_lines) < 1:
            raise ValueError(f"--center-lines must be >= 1 (coil maps are calibrated from the measured centre "
                             f"lines), got {self.center_lines}")
        if not 8 <= int(self.npix) <= 4096:
            raise ValueError(f"--npix must be in 8..4096, got {self.npix}")
        from ambient_imaging.limits import check_seed

        from .checks import check_crop

        check_seed(self.seed, "--seed")
        check_seed(self.mask_seed, "--mask-seed")
        check_crop(self.crop)  # at least SSIM's 7x7 window, before any slice is reconstructed
        if self.map_sets != "auto" and not (isinstance(self.map_sets, int) and 1 <= self.map_sets <= 8):
            raise ValueError(f"--map-sets must be auto or an integer in 1..8, got {self.map_sets!r}")
        return self

    def make(self, prior: Any | None) -> Any:
        """The method these options ask for (``method``, else the prior's default), set up for
        ``prior`` with ``steps``/``lamda``/``zeta``/``data_terms``/``selfcal`` validated there."""
        name = self.method or default_method_name(prior)
        method = make_method(name, prior, steps=self.steps, lamda=self.lamda, zeta=self.zeta, samples=self.samples,
                             data_terms=self.data_terms, selfcal=self.selfcal, flux=self.flux,
                             logcamp_noise=self.logcamp_noise)
        if hasattr(method, "progress"):
            method.progress = self.progress
        return method


def parse_slices(spec: str | None, n: int, strict: bool = True) -> list[int]:
    """``"0,1,5-7"`` → ``[0, 1, 5, 6, 7]`` (any order; repeats removed; sorted, so reading follows
    h5py's increasing-order rule), checked against ``n`` slices; ``None`` → all. Errors give the
    valid range (:func:`ambient_imaging.limits.parse_index_list`).

    ``strict=False`` (a folder of files with different slice counts) drops the slices a file
    does not have instead of raising.
    """
    from ambient_imaging.limits import parse_index_list

    return parse_index_list(spec, n, "--slices", strict=strict)


def parse_angle(text: str | None) -> float:
    """``"200uas"``, ``"3 arcsec"``, ``"0.5deg"`` → radians (astropy units)."""
    import re

    from astropy import units as u

    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*([A-Za-z]+)\s*", text or "")
    if not m:
        raise ValueError(f"--fov: cannot read {text!r}; give a number with units, e.g. 200uas or 3arcsec")
    try:
        rad = float((float(m.group(1)) * u.Unit(m.group(2))).to(u.rad).value)
    except (ValueError, u.UnitsError) as err:
        raise ValueError(f"--fov: {text!r} is not an angle ({err})") from err
    if not (np.isfinite(rad) and 0 < rad < np.pi):
        raise ValueError(f"--fov must be a positive angle below 180 degrees, got {text!r}")
    return rad


def input_kind(data: Path) -> str:
    """``"mri"`` (fastMRI file or folder), ``"visibilities"`` (UVFITS) or ``"image"`` (FITS image)."""
    suffix = data.suffix.lower()
    if data.is_dir() or suffix in MRI_SUFFIXES:
        return "mri"
    if suffix in UV_SUFFIXES:
        return "visibilities"
    if suffix in FITS_SUFFIXES:
        from astropy.io import fits

        try:
            with fits.open(data) as hdul:
                return "visibilities" if bool(hdul[0].header.get("GROUPS", False)) else "image"
        except OSError as err:
            raise ValueError(f"{data}: cannot read as FITS ({err})") from err
    raise ValueError(f"--data {data}: unsupported input (fastMRI .h5 file or folder, .uvfits/.uvf, .fits)")


def _inputs(data: Path) -> list[Path]:
    if not data.is_dir():
        return [data]
    from ambient_imaging.datasets.io import expand_paths

    files = expand_paths(data, MRI_SUFFIXES)  # our own sidecars (*.maps.h5) and hidden files are left out
    if not files:
        raise FileNotFoundError(f"{data}: no .h5 files in this folder")
    return files


def plan_outputs(data: Path, out: Path, files: list[Path], kind: str) -> list[Path]:
    """The output path of each input file, checked before any work.

    A folder of inputs (or ``out`` without a known suffix) → ``out/<stem>.nc`` each; one input
    with ``out`` naming a file → that file. Refused: an output that is an input or lies inside an
    input folder, an existing folder where a file is needed, an unwritable place.
    """
    out_is_file = out.suffix.lower() in OUTPUT_SUFFIXES and not out.is_dir()
    if data.is_dir() and out_is_file:
        raise ValueError(f"--data {data} is a folder: --out must be a folder too, got the file name {out}")
    if out_is_file:
        if kind == "mri" and out.suffix.lower() in (".fits", ".fit"):
            raise ValueError(f"--out {out}: MRI reconstructions are written as .nc or .h5, not FITS")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder (give a .nc/.h5/.fits file name or a folder)")
        targets = [out / f"{f.stem}{'.nc' if kind == 'mri' else '.fits'}" for f in files]
    resolved_inputs = {f.resolve() for f in files}
    data_dir = data.resolve() if data.is_dir() else None
    for t in targets:
        rt = t.resolve()
        if rt in resolved_inputs:
            raise ValueError(f"--out {t} is the input file itself: it would be overwritten; choose another name")
        if data_dir is not None and (rt == data_dir or data_dir in rt.parents):
            raise ValueError(f"--out {t} lies inside the input folder {data}: outputs would be read as inputs "
                             "next time; write them elsewhere")
        if t.is_dir():
            raise ValueError(f"--out {t} is an existing folder, not a file")
        parent = t.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"--out {t}: cannot write into {parent} (permission denied)")
    return targets


def mask_spec_for(options: ReconstructOptions, prior: Any | None) -> MaskSpec:
    """The mask protocol for fully sampled files: the flags, falling back on the prior's training
    protocol (so a prior conditions on in-distribution masks by default), then :class:`MaskSpec`'s."""
    base = getattr(prior, "mask_spec", None) or MaskSpec()
    changes: dict[str, Any] = {"seed": int(options.mask_seed)}
    if options.acceleration is not None:
        changes["acceleration"] = float(options.acceleration)
    if options.mask_kind is not None:
        changes["kind"] = options.mask_kind
    if options.center_lines is not None:
        changes["center_lines"] = int(options.center_lines)
    if options.center_fraction is not None:
        changes["center_fraction"] = float(options.center_fraction)
    return base.replace(**changes)


def mri_file_options(options: ReconstructOptions, prior: Any | None) -> Any:
    """The :class:`~ambient_imaging.datasets.fastmri.FastMRIOptions` ``reconstruct`` reads a fastMRI file
    with: the file reader training uses (:class:`~ambient_imaging.datasets.fastmri.FastMRIFile`), with
    the mask protocol of :func:`mask_spec_for`, the file's ``attrs["noise_sigma"]`` when it has one (else
    the estimate), ``padding``, ``coils``, ``map_sets`` and ``crop`` of ``options``, and maps estimated by
    ESPIRiT on each slice's measured centre lines (no sidecar is written next to the user's data)."""
    from ambient_imaging.datasets.fastmri import FastMRIOptions

    return FastMRIOptions(mask_spec=mask_spec_for(options, prior), padding=options.padding, coils=options.coils,
                          noise_sigma="auto", maps="measured", map_sets=map_sets_for(options, prior),
                          crop=_crop_arg(options.crop))


def map_sets_for(options: ReconstructOptions, prior: Any | None) -> int | str:
    """ESPIRiT map sets of a run: ``--map-sets`` as given; ``auto`` (the default) lets the data choose
    (two sets where the field of view is reduced, soft SENSE) for classical methods, and keeps one set
    for a prior, whose images have one component (priors are trained on one-set coil combinations)."""
    if options.map_sets != "auto" or prior is None:
        return options.map_sets
    return 1


def _done(target: Path) -> bool:
    """Finished: sealed with its settings, every artefact present (:class:`~.outputs.OutputRecord`)."""
    return OutputRecord(target, {}).finished()


def reconstruct_path(
    data: str | os.PathLike,
    out: str | os.PathLike,
    prior: Any | None = None,
    options: ReconstructOptions | None = None,
    *,
    device: torch.device | None = None,
    say: Callable[[str], None] | None = None,
    collect: Callable[[Result], None] | None = None,
) -> list[dict[str, Any]]:
    """Reconstruct every input under ``data`` into ``out``; returns one metrics row per slice/image.
    ``collect`` is called with every MRI slice's :class:`Result` (calibration uses it)."""
    from ambient_imaging.locks import RunLock

    opts = (options or ReconstructOptions()).validate()
    say = say or (lambda msg: print(msg, file=sys.stderr))
    data, out = Path(data), Path(out)
    if not data.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder")
    kind = input_kind(data)
    files = _inputs(data)
    targets = plan_outputs(data, out, files, kind)
    method = opts.make(prior)
    name = method.name
    if not method.serves(kind):
        served = " and ".join(KIND_WORDS[k] for k in sorted(method.kinds))
        raise ValueError(f"--sampler {name} is for {served}, not {KIND_WORDS[kind]}; use a prior, or zero-filled")
    if kind == "visibilities" and opts.fov is None:
        raise ValueError("--fov is required for visibilities (e.g. --fov 200uas)")
    from .checks import unused_options

    errors, notes = unused_options(opts, method, kind)  # no flag is ignored silently
    if errors:
        raise ValueError(errors[0])
    for note in notes:
        say(note)
    records = plan_records(data, out, prior, opts, name, files, targets)  # other settings: refused, before work
    if kind == "mri" and not opts.allow_size_mismatch:
        from .checks import prior_size_refusal

        refusal = prior_size_refusal(prior, files)  # a prior of another matrix: refused, before work
        if refusal:
            raise ValueError(refusal)
    dev = device or torch.device("cpu")
    from .calibrate import calibration_for

    rows: list[dict[str, Any]] = []
    lock_dir = targets[0].parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(lock_dir, purpose="reconstruct"):
        calib = calibration_for(opts, prior, method, data, targets, device=dev, say=say)
        skipped: list[str] = []
        for f, target, record in zip(files, targets, records, strict=True):
            record.clean()  # hidden temporaries a killed writer left for this output
            if record.skip(opts.overwrite, ""):
                say(f"{target}: done already (skipped; --overwrite redoes it)")
                continue
            gen = torch.Generator(device=dev).manual_seed(int(opts.seed))
            try:
                if kind == "mri":
                    new = _mri_file(f, target, prior, method, name, opts, gen, len(files) == 1, say, calib, collect)
                elif kind == "visibilities":
                    new = _visibility_file(f, target, prior, method, name, opts, gen, say)
                else:
                    new = _image_file(f, target, prior, method, name, opts, gen)
            except (ValueError, OSError, KeyError, IndexError) as err:
                if opts.strict or not data.is_dir():  # one input, or --strict: a bad file stops the run
                    raise
                warnings.warn(f"skipping {err}", RuntimeWarning, stacklevel=2)
                skipped.append(f"{shown(f.name)} ({str(err)[:200]})")
                continue
            if new:
                record.seal()  # every artefact written: the output is finished, its settings recorded
            rows.extend(new)
    if skipped:
        say(f"skipped {len(skipped)} of {len(files)} files: " + "; ".join(skipped))
        if len(skipped) == len(files):
            raise ValueError(f"--data {shown(data)}: no file could be reconstructed ({skipped[0]})")
    if not rows and opts.slices is not None and all(not _done(t) for t in targets):
        raise ValueError(f"--slices {opts.slices}: no file in {data} has these slices")
    return rows


def _attrs(f: Path, prior: Any, name: str, opts: ReconstructOptions) -> dict[str, Any]:
    return {"source": str(f), "method": name, "prior": str(getattr(prior, "run_dir", "") or ""),
            "samples_per_slice": int(opts.samples if prior is not None else 1)}


def _crop_arg(crop: str | int | None) -> str | None:
    return None if crop is None else str(crop)


def _mri_file(f: Path, target: Path, prior: Any, method: Any, name: str, opts: ReconstructOptions,
              gen: torch.Generator, strict_slices: bool, say: Callable[[str], None], calib: Any = None,
              collect: Callable[[Result], None] | None = None) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from ambient_imaging.datasets.fastmri import FastMRIFile, fastmri_reference
    from ambient_imaging.metrics import center_crop
    from ambient_imaging.metrics.fastmri import fastmri_scores

    fopts = mri_file_options(opts, prior)
    spec = fopts.mask_spec
    results: list[Result] = []
    with FastMRIFile(f, fopts) as fh:  # the reader training uses: σ_n, band, crop, coils, maps, masks
        slices = parse_slices(opts.slices, fh.slices, strict=strict_slices)
        if not slices:
            say(f"{f.name}: none of --slices {opts.slices} (it has {fh.slices}); skipped")
            return []
        for note in fh.notes():
            say(note)
        if opts.coils is not None and not fh.compressing:
            say(f"{shown(f.name)}: --coils {opts.coils}: the file has {fh.coils} coils, nothing to compress; ignored")
        band, told = fh.band, None
        for s in tqdm(slices, desc=shown(f.name), leave=False, disable=not opts.progress):
            prob = fh.problem(s)
            prob.meta.update(file=f.name)
            told = _say_map_sets(f, prob, told, say)
            results.append(reconstruct(prob, method, prior, name=name, samples=opts.samples, generator=gen,
                                       crop=fh.crop, target=opts.target, strict=opts.strict, calibration=calib))
            if collect is not None:
                collect(results[-1])
    rows = [{"file": f.name, "slice": r.problem.meta["slice"], **r.metrics} for r in results]
    summary: dict[str, Any] = {"file": f.name, "method": name, "slices": rows,
                               "mask": spec.to_dict() if any(r.problem.meta.get("retrospective") for r in results)
                               else None, "band": [band.lo, band.hi], "padding_source": band.source,
                               "calibration": None if calib is None else calib.to_dict(),
                               "map_sets": [int(r.problem.meta.get("map_sets", 1)) for r in results],
                               "noise_sigma": [float(r.problem.meta["noise_sigma"]) for r in results],
                               "noise_sigma_source": "file" if fh.noise_sigma is not None else "estimate"}
    if all(r.problem.meta.get("fully_sampled") for r in results):
        # fastMRI's scoring: the file's reference (reconstruction_rss / RSS, or SENSE-1) on its reconSpace crop,
        # SSIM per slice with the volume's maximum as data range, NMSE and PSNR over the volume
        if opts.target == "rss":
            ref = fastmri_reference(f, "rss", _crop_arg(opts.crop), slices=slices)
            gt, crop = ref["reference"], ref["crop"]
        else:
            crop = fh.crop
            gt = np.stack([center_crop(r.problem.reference[0, 0].abs().numpy(), crop) for r in results])
        est = np.stack([center_crop(r.magnitude.cpu().numpy(), crop) for r in results])
        zf = np.stack([center_crop(r.zero_filled_magnitude.cpu().numpy(), crop) for r in results])
        scores, zf_scores = fastmri_scores(gt, est), fastmri_scores(gt, zf)
        _check_scores(f, scores["volume"], opts.strict)
        for row, sc, zsc in zip(rows, scores["slices"], zf_scores["slices"], strict=True):
            row.update(psnr=sc["psnr"], ssim=sc["ssim"], nmse=sc["nmse"], psnr_zero_filled=zsc["psnr"])
        summary.update(volume=scores["volume"], volume_zero_filled=zf_scores["volume"],
                       data_range=scores["data_range"], crop=None if crop is None else list(crop),
                       target=opts.target, convention=scores["convention"])
    write_volume(target, results, _attrs(f, prior, name, opts))
    write_metrics(target.with_suffix(".metrics.json"), summary)
    write_figure(target.with_suffix(".png"), results[0])
    return rows


def _say_map_sets(f: Path, prob: Any, told: int | None, say: Callable[[str], None]) -> int | None:
    """Tell the ESPIRiT choice of a file once (again when it changes from slice to slice); returns it."""
    m = prob.meta.get("map_sets")
    if prob.meta.get("coils", 1) <= 1 or m is None or m == told:
        return told
    why = ""
    if prob.meta.get("map_sets_rule") == "auto":
        why = " (reduced FOV detected)" if m > 1 else " (full FOV)"
    say(f"{shown(f.name)}: slice {prob.meta['slice']}: ESPIRiT: {m} map set{'s' if m > 1 else ''}{why}")
    return int(m)


def _check_scores(f: Path, volume: dict[str, Any], strict: bool) -> None:
    """NaN / infinite volume scores (an all-zero reference) are a warning, an error under ``--strict``."""
    from .checks import score_problems
    from .run import ReconstructionFailed

    found = score_problems(shown(f.name), volume)
    if found and strict:
        raise ReconstructionFailed("; ".join(found))
    for msg in found:
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _sky_outputs(target: Path, result: Result, header: Any, name: str, prior: Any, opts: ReconstructOptions,
                 fits_writer: Callable[..., Any]) -> None:
    if target.suffix.lower() in (".fits", ".fit"):
        fits_writer()
    else:
        write_volume(target, [result], {"method": name, "prior": str(getattr(prior, "run_dir", "") or ""),
                                        "wcs": header.tostring() if header is not None else ""})


def _visibility_file(f: Path, target: Path, prior: Any, method: Any, name: str, opts: ReconstructOptions,
                     gen: torch.Generator, say: Callable[[str], None]) -> list[dict[str, Any]]:
    from ambient_imaging.datasets.averaging import average_for_imaging
    from ambient_imaging.datasets.fits import sky_fits_header, write_sky_fits
    from ambient_imaging.datasets.uvfits import read_uvfits

    obs, averaging = average_for_imaging(read_uvfits(f), opts.avg_time, fov_rad=parse_angle(opts.fov))
    say(f"{f.name}: {averaging}")
    if opts.sys_noise:
        obs = obs.with_fractional_noise(opts.sys_noise)
        say(f"{f.name}: {opts.sys_noise:g} x |V| added in quadrature to every sigma (--sys-noise)")
    pixel = parse_angle(opts.fov) / int(opts.npix)
    n = int(opts.npix)
    need = len(obs) * 16 + n * n * 8 * max(1, int(opts.samples)) * 16
    if need > 32 * 2**30:
        raise ValueError(f"--npix {n}: about {need / 2**30:.0f} GiB would be needed; use a smaller --npix")
    uv_max = float(np.abs(np.asarray(obs.uv)).max()) if len(obs) else 0.0
    uas = 180 / np.pi * 3600e6  # radians → µas
    if uv_max > 0 and n * pixel < 2.0 / uv_max:
        raise ValueError(f"--fov {opts.fov} is smaller than two synthesized beams ({2.0 / uv_max * uas:.3g} µas for "
                         "these baselines): nothing can be imaged; widen --fov")
    if uv_max > 0 and pixel > 1.0 / (2.0 * uv_max):
        say(f"{f.name}: pixels of {pixel * uas:.3g} µas do not sample the longest baselines "
            f"(Nyquist {1.0 / (2.0 * uv_max) * uas:.3g} µas); raise --npix or narrow --fov")
    prob = visibility_problem(obs, n, pixel, meta={"file": f.name, "slice": 0, "object": obs.source})
    if prior is not None:
        prob.y, prob.op = prob.y.to(torch.complex64), prob.op.to(dtype=torch.float32)
    if prior is not None and hasattr(method, "for_data"):  # e.g. likelihood-dps: --flux (Jy) in the prior's units
        method = method.for_data(prob.y, prob.op)
    r = reconstruct(prob, method, prior, name=name, samples=opts.samples, generator=gen, strict=opts.strict)
    chi2_cards = {card: float(r.metrics[key]) for card, key in (("CHI2RED", "chi2_red"), ("CHI2CP", "chi2_cphase"),
                                                                 ("CHI2LCA", "chi2_logcamp"),
                                                                 ("CHI2LCAR", "chi2_logcamp_rice")) if key in r.metrics}
    header = sky_fits_header(obs.ra_deg, obs.dec_deg, pixel, (n, n), frequency_hz=obs.ref_frequency,
                             extra={"OBJECT": obs.source, "METHOD": name, **chi2_cards})
    _sky_outputs(target, r, header, name, prior, opts, lambda: write_sky_fits(
        target, r.mean[0].real.cpu().numpy(), std=r.std[0].cpu().numpy(), samples=r.samples[:, 0].real.cpu().numpy(),
        header=header, provenance={"prior": str(getattr(prior, "run_dir", "") or ""), "sampler": name},
        extra={"DIRTY": r.zero_filled[0].real.cpu().numpy()}))
    row = {"file": f.name, "slice": 0, **r.metrics}
    summary = {"file": f.name, "method": name, "slices": [row], "warnings": r.warnings,
               "data_terms": opts.data_terms if method.takes("data_terms") else None,
               "selfcal": bool(opts.selfcal), "averaging": averaging, "sys_noise": float(opts.sys_noise),
               "logcamp_noise": _resolved(r.info.get("logcamp_noise", getattr(method, "logcamp_noise", None)))}
    summary.update({k: v for k, v in r.metrics.items() if k.startswith(("chi2_", "ring_"))})
    write_metrics(target.with_suffix(".metrics.json"), summary)
    return [row]


def _resolved(value: Any) -> Any:
    """The fit's own choice (a one-item list per measurement from RML's info) as one value."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _image_file(f: Path, target: Path, prior: Any, method: Any, name: str, opts: ReconstructOptions,
                gen: torch.Generator) -> list[dict[str, Any]]:
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from ambient_imaging.datasets.fits import read_fits_image, write_fits_image

    im = read_fits_image(f)
    prob = image_problem(im.data, im.mask, float(im.noise_sigma), meta={"file": f.name, "slice": 0})
    r = reconstruct(prob, method, prior, name=name, samples=opts.samples, generator=gen, strict=opts.strict)
    header = im.header.copy()
    header["METHOD"] = name

    def write() -> None:
        wcs = None
        if any(str(k).startswith("CTYPE") for k in header):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FITSFixedWarning)
                wcs = WCS(header, naxis=2)
        write_fits_image(target, r.mean[0].cpu().numpy().astype(np.float32), wcs=wcs, header=header,
                         std=r.std[0].cpu().numpy().astype(np.float32),
                         extra={"SAMPLES": r.samples[:, 0].cpu().numpy().astype(np.float32)},
                         provenance={"prior": str(getattr(prior, "run_dir", "") or ""), "sampler": name})

    _sky_outputs(target, r, header, name, prior, opts, write)
    row = {"file": f.name, "slice": 0, **r.metrics}
    write_metrics(target.with_suffix(".metrics.json"), {"file": f.name, "method": name, "slices": [row]})
    return [row]
