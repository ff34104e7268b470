"""Honest checks of a reconstruction's input and output: nothing empty, NaN or unconstrained is a success.

:func:`measurement_problems` looks at a :class:`~ambient_imaging.problems.Problem` *before* any
work: measurements that are all zero, a sampling mask with no entry, visibilities too few (or from
too few baselines) to constrain the image asked for; it raises for values float32 arithmetic
cannot hold (k-space scaled by 1e±30 squares to 0 or ∞). :func:`result_problems` looks at the
result: an image that is all zero or not finite, metrics or χ² that are NaN. Both return
sentences; :func:`ambient_imaging.reconstruction.reconstruct` warns with them (``strict``: error).
:func:`unused_options` finds the flags a command was given that its input or method does not use
(no flag is ignored silently).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["measurement_problems", "result_problems", "score_problems", "unused_options", "check_crop",
           "prior_size_refusal", "build_command_for",
           "check_sample_memory", "SAFE_MAGNITUDE", "MIN_BASELINES", "PIXELS_PER_DATUM", "KIND_OPTIONS", "MIN_CROP"]

#: largest and smallest non-zero measurement magnitude float32 arithmetic handles safely (squares of
#: 1e±19 leave float32's range; sums over millions of entries need three more decades)
SAFE_MAGNITUDE = (1e-15, 1e15)

#: fewer distinct baselines than this cannot constrain a two-dimensional image
MIN_BASELINES = 3

#: more pixels than this per measured real number: the image is not constrained by the data
PIXELS_PER_DATUM = 100


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def _where(problem: Any) -> str:
    meta = getattr(problem, "meta", {}) or {}
    name = meta.get("file")
    if name is None:
        return "the measurements"
    return f"{name} (slice {meta['slice']})" if "slice" in meta and getattr(problem, "kind", "") == "mri" else str(name)


def measurement_problems(problem: Any, is_fit: bool = True) -> list[str]:
    """What makes ``problem`` unable to constrain an image (empty list: fine); ``is_fit=False`` (the
    zero-filled / dirty image, which fits nothing) skips the coverage check of visibilities.

    Raises ``ValueError`` (naming the file) for measurement magnitudes outside
    :data:`SAFE_MAGNITUDE`, which float32 samplers and baselines would turn into NaN.
    """
    found: list[str] = []
    y = problem.y.detach()
    where = _where(problem)
    mag = _real(y).abs()
    finite = mag[torch.isfinite(mag)]
    peak = float(finite.max().to(torch.float64)) if finite.numel() else 0.0
    if peak == 0.0:
        found.append(f"{where}: every measurement is zero: there is no signal to reconstruct")
    elif not SAFE_MAGNITUDE[0] <= peak <= SAFE_MAGNITUDE[1]:
        raise ValueError(
            f"{where}: measurement magnitudes reach {peak:.3g}, outside the range float32 arithmetic handles "
            f"({SAFE_MAGNITUDE[0]:g} to {SAFE_MAGNITUDE[1]:g}: squares under- or overflow); rescale the data "
            "(e.g. to the scanner's usual units) and run again")
    mask = getattr(problem.op, "mask", None)
    if isinstance(mask, Tensor) and mask.numel() and not bool(mask.bool().any()):
        found.append(f"{where}: the sampling mask is empty (no measured entry): nothing constrains the image")
    if getattr(problem, "kind", "") == "visibilities" and is_fit:
        found += _visibility_coverage(problem, where)
    return found


def _visibility_coverage(problem: Any, where: str) -> list[str]:
    shape = tuple(problem.meta.get("shape", ()))
    pixels = math.prod(int(s) for s in shape) if shape else 0
    n_vis = int(problem.meta.get("n_vis", problem.y.shape[-1]))
    stations = getattr(problem.op, "stations", None)
    out = []
    if isinstance(stations, Tensor) and stations.ndim == 2 and stations.shape[-1] == 2 and stations.numel():
        pairs = torch.sort(stations.to(torch.int64), dim=-1).values
        n_base = int(torch.unique(pairs, dim=0).shape[0])
        if n_base < MIN_BASELINES:
            out.append(f"{where}: {n_base} baseline(s) cannot constrain a {shape[0]}x{shape[1]} image (at least "
                       f"{MIN_BASELINES} are needed, and closure quantities need three stations): the image would "
                       "be made by the regulariser or prior alone")
            return out
    if pixels and 2 * n_vis * PIXELS_PER_DATUM < pixels:
        out.append(f"{where}: {n_vis} visibilities ({2 * n_vis} real numbers) for {pixels} pixels: too few to "
                   "constrain the image; lower --npix")
    return out


def result_problems(name: str, mean: Tensor, metrics: Mapping[str, Any], check_zero: bool = True) -> list[str]:
    """What makes a result unusable although it was computed: an all-zero image (``check_zero``; a
    non-finite one is reported by :func:`~ambient_imaging.reconstruction.reconstruct` itself), NaN
    metrics, a χ² that is not finite."""
    found: list[str] = []
    values = _real(mean.detach())
    if check_zero and values.numel() and bool(torch.isfinite(values).all()) and float(values.abs().max()) == 0.0:
        found.append(f"{name}: the reconstruction is all zero (no signal in the data, an empty mask, or a "
                     "sampler that collapsed)")
    return found + score_problems(name, metrics)


def score_problems(where: str, scores: Mapping[str, Any]) -> list[str]:
    """A sentence when scores (``psnr``, ``ssim``, ``nmse``; ``chi2_red``) are NaN, PSNR is −∞ or NMSE ∞
    (or χ² not finite): an all-zero or constant reference, or data no image can fit."""
    def broken(key: str, v: Any) -> bool:  # PSNR = +inf (a perfect estimate) is a result, -inf is not
        return isinstance(v, float) and (math.isnan(v) or (key == "psnr" and v == -math.inf)
                                         or (key == "nmse" and v == math.inf))

    bad = [k for k in ("psnr", "ssim", "nmse") if broken(k, scores.get(k))]
    chi2 = scores.get("chi2_red")
    bad += ["chi2_red"] if isinstance(chi2, float) and not math.isfinite(chi2) else []
    if not bad:
        return []
    why = " (the reference image is all zero or constant)" if any(k != "chi2_red" for k in bad) else ""
    return [f"{where}: {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not finite{why}"]


#: the options that only apply to one input kind (``ReconstructOptions`` fields)
KIND_OPTIONS = {
    "mri": ("acceleration", "mask_kind", "center_lines", "center_fraction", "mask_seed", "slices", "crop", "target",
            "padding", "coils", "map_sets", "allow_size_mismatch"),
    "visibilities": ("fov", "npix", "data_terms", "selfcal", "flux", "sys_noise", "logcamp_noise"),
}
_KIND_WORDS = {"mri": "MRI k-space", "image": "masked images", "visibilities": "interferometric visibilities"}


def _flag(name: str) -> str:
    return "--sampler" if name == "method" else "--" + name.replace("_", "-")


def unused_options(options: Any, method: Any, kind: str) -> tuple[list[str], list[str]]:
    """``(errors, notes)`` for the options (a ``ReconstructOptions``) set away from their defaults that
    nothing will use: an option of another input kind (``--fov`` on MRI, ``--acceleration`` on
    visibilities) is an error; one the method does not take (``--steps``/``--lamda`` for zero-filled,
    ``--samples`` for a method that gives one estimate) is a note."""
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    given = {k: getattr(options, k) for k in defaults if getattr(options, k) != defaults[k]}
    errors = [f"{_flag(k)} applies to {_KIND_WORDS[other]}, not to {_KIND_WORDS.get(kind, kind)}; drop it"
              for other, keys in KIND_OPTIONS.items() if other != kind for k in keys if k in given]
    name = getattr(method, "name", type(method).__name__)
    takes = getattr(method, "takes", lambda option: True)
    notes = [f"{_flag(k)} {given[k]} does not apply to --sampler {name}; ignored"
             for k in ("steps", "lamda") if k in given and not takes(k)]
    if "samples" in given and not getattr(method, "needs_prior", True):
        notes.append(f"--samples {given['samples']}: --sampler {name} gives one estimate, not posterior samples; "
                     "ignored")
    return errors, notes


#: the smallest scoring crop (SSIM's 7x7 window must fit)
MIN_CROP = 7


def check_crop(crop: str | int | None) -> None:
    """``--crop`` (``auto``, ``none``, ``N`` or ``H,W``) checked before any work: numbers must be at least
    :data:`MIN_CROP` (SSIM's window), so that scoring does not fail after every slice was reconstructed."""
    if crop is None or (isinstance(crop, str) and crop.strip().lower() in ("auto", "none", "")):
        return
    parts = [crop] if isinstance(crop, int) else str(crop).replace("x", ",").split(",")
    try:
        sizes = [int(str(v).strip()) for v in parts]
    except ValueError:
        raise ValueError(f"--crop {crop}: use auto, none, N or H,W") from None
    if len(sizes) not in (1, 2) or min(sizes) < MIN_CROP:
        raise ValueError(f"--crop {crop}: the scoring crop must be N or H,W with every side at least {MIN_CROP} "
                         "(SSIM's window); or auto / none")


def check_sample_memory(problem: Any, samples: int, where: str = "") -> None:
    """Refuse ``--samples`` whose working set (samples × (measurements + image), complex, with copies)
    exceeds the memory available, before sampling starts."""
    from ambient_imaging.limits import check_memory

    shape = tuple(problem.meta.get("shape", ())) or tuple(problem.y.shape[-2:])
    per = (int(problem.y[0].numel()) + math.prod(int(v) for v in shape)) * 8 * 8
    check_memory(per * int(samples), f"{int(samples)} posterior samples of this {shape[0]}x{shape[1]} problem",
                 f"--samples {int(samples)}" + (f" ({where})" if where else ""),
                 "ask for fewer samples (or run several --seed values)")


def build_command_for(shape: tuple[int, int], coils: int | None = None, out: str | None = None) -> str:
    """The two commands that make a prior for MRI data of matrix ``shape`` (readout × phase encode):
    build the embedded brain set at that matrix, then train on it."""
    h, w = (int(v) for v in shape)
    data = f"{out}/mri-brain-{h}x{w}" if out else f"data/mri-brain-{h}x{w}"
    run = f"{out}/runs/brain{h}x{w}" if out else f"runs/brain{h}x{w}"
    coil = f" --coils {int(coils)}" if coils else ""
    return (f"ambient-imaging data build mri-brain --matrix {h},{w}{coil} --out {data} && "
            f"ambient-imaging train --data {data}/train --operator mri --out {run}")


def prior_size_refusal(prior: Any, files: list[Any]) -> str:
    """Why ``prior`` must not reconstruct these fastMRI ``files`` ("" when it may): a prior trained at
    another matrix than a file's k-space.

    A diffusion prior is a convolutional network: it runs on any size, but an image of another matrix
    (another pixel size, another field of view, another extent of anatomy) lies outside what it was
    trained on, and the posterior it gives is degraded without any error to show it (measured: a
    64×64 prior on a 230×180 scan scores below zero-filled). Resampling the scan to the prior's
    matrix would reconstruct a lower-resolution image than the scan holds. So the answer is a prior
    at the scan's matrix: the message names the commands that make one, and the flag that runs the
    mismatched prior anyway (``--allow-size-mismatch``, warned in every result).
    """
    if prior is None or getattr(prior, "family", "mri") != "mri":  # another family: the method says why
        return ""
    shape = tuple(int(s) for s in getattr(prior, "image_shape", ()) or ())[1:]
    if len(shape) != 2:
        return ""
    from ambient_imaging.datasets.fastmri import check_layout, open_fastmri
    from ambient_imaging.limits import shown

    for f in files:
        try:
            with open_fastmri(f) as h5:
                _s, nc, h, w, _single = check_layout(h5, f)
        except (OSError, ValueError, KeyError):
            continue  # a broken file is reported (or skipped) where it is read
        if (h, w) != shape:
            return (f"{shown(getattr(f, 'name', f))}: k-space is {h}x{w} (readout x phase encode) but the prior was "
                    f"trained on {shape[0]}x{shape[1]} images: run at another matrix it gives a degraded "
                    f"reconstruction. Make a prior at the scan's matrix: {build_command_for((h, w), nc)}; "
                    "or pass --allow-size-mismatch to run this prior anyway (warned)")
    return ""
