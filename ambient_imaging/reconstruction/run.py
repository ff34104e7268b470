"""Reconstruct one :class:`~ambient_imaging.problems.Problem`: method, data fidelity, scores, gates.

:func:`reconstruct` — the package's one ``reconstruct`` — runs a posterior sampler (with a prior)
or a classical baseline through :func:`ambient_imaging.sampling.run_method` (which applies and
undoes the prior's normalisation), adds the zero-filled / dirty image for comparison, scores against the
problem's reference when there is one, and checks the result honestly: non-finite output,
a result more than 3 dB worse than zero-filled, a mask outside the prior's training range
or a prior trained at another size each give a warning (``strict=True``: an error).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ambient_imaging.problems import Problem

__all__ = ["Result", "ReconstructionFailed", "reconstruct", "score", "prior_warnings", "display_magnitude",
           "target_images", "target_reference"]

#: a scored result this many dB below zero-filled is flagged
WORSE_THAN_ZERO_FILLED_DB = 3.0


class ReconstructionFailed(ValueError):
    """A reconstruction failed a check (``strict=True``): non-finite, far worse than zero-filled, ..."""


@dataclass
class Result:
    """A reconstructed problem.

    Attributes:
        problem: what was reconstructed. method: the method's name.
        samples: ``(K, C, H, W)`` posterior samples (K = 1 for point estimates), file units.
        mean, std: ``(C, H, W)``. zero_filled: ``(C, H, W)`` (``A^H y`` / dirty image).
        metrics: one row of numbers (``psnr``, ``ssim``, ``nmse``, ``psnr_zero_filled`` when
            scored; ``chi2_red``, ``residual_rel``, ``nfe``, ``seconds``, ``acceleration``, ...).
        warnings: what the checks found (also emitted as ``RuntimeWarning``).
        info: the method's own numbers.
        target_samples: ``(K, H, W)``: each sample as an estimate of the scoring target (``rss`` on
            multi-coil MRI: :meth:`~ambient_imaging.operators.MultiCoilMRI.rss_estimate`); ``None``:
            the samples' :func:`display_magnitude`. target_zero_filled: the same map of the zero-filled image.
    """

    problem: Problem
    method: str
    samples: Tensor
    mean: Tensor
    std: Tensor
    zero_filled: Tensor
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    target_samples: Tensor | None = None
    target_zero_filled: Tensor | None = None

    @property
    def magnitude(self) -> Tensor:
        """The displayed and scored image ``(H, W)``: the mean of :attr:`target_samples` (the posterior mean
        of the scoring target) when set, else :func:`display_magnitude` of :attr:`mean`."""
        if self.target_samples is not None:
            return self.target_samples.mean(0)
        return display_magnitude(self.mean)

    @property
    def zero_filled_magnitude(self) -> Tensor:
        """The zero-filled image as displayed and scored (:attr:`target_zero_filled` when set)."""
        if self.target_zero_filled is not None:
            return self.target_zero_filled
        return display_magnitude(self.zero_filled)

    @property
    def std_magnitude(self) -> Tensor:
        """The std ``(H, W)`` of the displayed image: over :attr:`target_samples` when set (and more than one),
        else :attr:`std` combined over the image's components (``sqrt(Σ_m std_m²)``)."""
        if self.target_samples is not None and self.target_samples.shape[0] > 1:
            return self.target_samples.std(0)
        return display_magnitude(self.std)


def display_magnitude(image: Tensor) -> Tensor:
    """``(..., C, H, W)`` → ``(..., H, W)``: the root-sum-of-squares over the components — ``|x|`` for one
    channel; for M ESPIRiT map sets (soft SENSE, reduced FOV) the RSS over the sets, as BART displays it
    and as :meth:`~ambient_imaging.operators.MultiCoilMRI.combine_sets` defines it. Scoring set 0 alone
    would drop the part of the object the second set explains."""
    return image.abs().pow(2).sum(-3).sqrt()


def target_images(problem: Problem, images: Tensor, target: str) -> Tensor | None:
    """``images`` ``(K, C, H, W)`` (file units) as estimates ``(K, H, W)`` of the scoring target: for
    ``target="rss"`` on a problem whose operator knows the map
    (:meth:`~ambient_imaging.operators.MultiCoilMRI.rss_estimate`: measured k-space kept, the expected
    noise floor of the unmeasured part added), the estimate of the fully sampled RSS; ``None`` otherwise
    (the images are then shown and scored as :func:`display_magnitude`)."""
    estimate = getattr(problem.op, "rss_estimate", None)
    if target != "rss" or estimate is None:
        return None
    with torch.no_grad():
        band = problem.meta.get("band")  # acquired columns: outside, the fully sampled k-space is zero padding
        return torch.cat([estimate(x[None], problem.y, band=band) for x in images.detach()])


def target_reference(problem: Problem, target: str) -> np.ndarray | None:
    """The magnitude a problem's images are scored against (``(H, W)``, file units): the fully sampled RSS
    for ``target="rss"`` when the problem carries it, else the coil-combined reference's
    :func:`display_magnitude`; ``None`` without a reference."""
    if target == "rss" and "rss" in problem.extras:
        return problem.extras["rss"][0, 0].abs().cpu().numpy()
    if problem.reference is None:
        return None
    return display_magnitude(problem.reference[0]).cpu().numpy()


def score(problem: Problem, image: Tensor, crop: tuple[int, int] | int | None = None,
          target: str = "sense1") -> dict[str, float]:
    """PSNR / SSIM / NMSE of ``|image|`` ``(C, H, W)`` against the problem's reference magnitude
    (``target``: ``"sense1"`` — the coil-combined reference — or ``"rss"``), on the centre ``crop``.
    Empty when the problem has no reference."""
    from ambient_imaging.metrics import center_crop, nmse, psnr, ssim

    ref = target_reference(problem, target)
    if ref is None:
        return {}
    est = (display_magnitude(image) if image.ndim == 3 else image.abs()).detach().cpu().numpy()
    ref, est = center_crop(ref, crop), center_crop(est, crop)
    return {"psnr": psnr(ref, est), "ssim": ssim(ref, est), "nmse": nmse(ref, est)}


def prior_warnings(prior: Any, problem: Problem) -> list[str]:
    """Guard rails before sampling: a prior trained at another image size, or asked to condition on
    a mask outside the range it was trained on."""
    out: list[str] = []
    if prior is None:
        return out
    shape = tuple(int(s) for s in getattr(prior, "image_shape", (0, 0, 0)))[1:]
    img = tuple(problem.meta.get("shape", ()))
    if shape and img and shape != img:
        out.append(f"the prior was trained on {shape[0]}x{shape[1]} images; this problem is {img[0]}x{img[1]} "
                   "(a convolutional prior runs, but outside its training distribution)")
    try:
        from ambient_imaging.training import mask_in_training_range
    except ImportError:
        mask_in_training_range = None
    if mask_in_training_range is not None and problem.kind == "mri":
        ok, msg = mask_in_training_range(prior, problem.op)
        if not ok:
            out.append(msg)
    elif problem.kind == "mri" and getattr(prior, "mask_spec", None) is not None:
        spec = prior.mask_spec
        w = img[-1] if img else 0
        r = float(problem.meta.get("acceleration", 0.0))
        c = int(problem.meta.get("acs_lines", 0))
        if w and (c != spec.center_width(w) or not 0.5 * spec.acceleration <= r <= 2.5 * spec.acceleration):
            out.append(f"the prior was trained on masks '{spec.describe(w)}'; this mask has R={r:.2f} and {c} centre "
                       "lines (outside its training range)")
    return out


def reconstruct(
    problem: Problem,
    method: Any,
    prior: Any | None = None,
    *,
    name: str | None = None,
    samples: int = 1,
    generator: torch.Generator | None = None,
    crop: tuple[int, int] | int | None = None,
    target: str = "sense1",
    strict: bool = False,
    calibration: Any | None = None,
) -> Result:
    """Reconstruct ``problem`` with ``method`` (a sampler object with ``prior``, or a baseline;
    ``make_method(name, prior, ...)`` builds one). ``name``: the method's label in the results
    (default: its registry name). ``calibration``: a
    :class:`~ambient_imaging.metrics.calibration.Calibration` whose calibrated coverage is reported.

    Returns a :class:`Result` in the file's units. Raises :class:`ReconstructionFailed` when a
    check fails and ``strict`` (otherwise the finding is in ``Result.warnings`` and warned).
    """
    from ambient_imaging.sampling import ZeroFilled, run_method

    name = name or getattr(method, "name", "") or type(method).__name__
    from .checks import check_sample_memory, measurement_problems, result_problems

    found = prior_warnings(prior, problem)
    before = measurement_problems(problem, bool(getattr(method, "is_fit", True)))  # empty data, empty mask, ...
    if before and strict:
        raise ReconstructionFailed("; ".join(before))
    found += before
    if prior is not None:
        check_sample_memory(problem, int(samples), str(problem.meta.get("file", "")))
    rec = run_method(problem.y, problem.op, prior, method, samples=int(samples) if prior is not None else 1,
                     generator=generator, support=problem.extras.get("support"))
    zf = run_method(problem.y, problem.op, None, ZeroFilled()).mean[0]
    s = rec.samples[0].detach()
    mean, std = rec.mean[0].detach(), rec.std[0].detach()
    m: dict[str, Any] = {
        "method": name,
        "seconds": float(rec.info.get("seconds", float("nan"))),
        "nfe": int(rec.nfe),
        "residual_rel": float(rec.info["residual_rel"][0]),
        "chi2_red": float(rec.info["chi2_red"][0]),
    }
    for key in ("acceleration", "acs_lines", "noise_sigma", "missing_fraction", "n_vis"):
        if key in problem.meta:
            m[key] = problem.meta[key]
    if problem.kind == "visibilities":
        found += _visibility_fit(problem, method, mean, rec.info, m)
        from ambient_imaging.metrics.ring import ring_report  # REx-style ring metrics (and their spread)

        if getattr(problem.op, "pixel_scale", None):
            m.update(ring_report(s, float(problem.op.pixel_scale)))
    finite = bool(torch.isfinite(torch.view_as_real(mean) if mean.is_complex() else mean).all())
    if not finite:
        found.append(f"{name}: the reconstruction holds NaN or Inf values (broken prior weights or a diverging "
                     "sampler: lower --zeta / raise --steps, or check the prior)")
    t_samples = target_images(problem, s, target) if finite else None
    t_zf = None if t_samples is None else target_images(problem, zf[None], target)[0]
    shown = mean if t_samples is None else t_samples.mean(0)
    scores = score(problem, shown, crop, target) if finite else {}
    info_scores = None
    if scores:
        m.update(scores)
        zf_scores = score(problem, zf if t_zf is None else t_zf, crop, target)
        m["psnr_zero_filled"] = zf_scores["psnr"]
        info_scores = _uncertainty(problem, s if t_samples is None else t_samples, crop, target, calibration, m)
        found += _worse_than_zero_filled(problem, name, mean, zf, crop, target, scores, zf_scores, t_samples)
    found += result_problems(name, mean, m, check_zero=problem.kind != "visibilities" and not before)
    for note in problem.meta.get("notes", []):
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    for msg in found:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    if found and strict:
        raise ReconstructionFailed("; ".join(found))
    m["warnings"] = len(found)
    if not math.isfinite(m["chi2_red"]):
        m["chi2_red"] = float("nan")
    info = dict(rec.info)
    if scores and info_scores is not None:
        info["conformal_scores"] = info_scores
    return Result(problem, name, s, mean, std, zf.detach(), m, found, info, t_samples, t_zf)


def _worse_than_zero_filled(problem: Problem, name: str, mean: Tensor, zf: Tensor, crop: Any, target: str,
                            scores: dict[str, float], zf_scores: dict[str, float], mapped: Tensor | None) -> list[str]:
    """The honest check on the method's own image: ``|x|`` against the zero-filled ``|A^H y|``. An RSS
    estimate keeps the measured k-space, so it would hide a broken ``x`` (e.g. all zeros); the check
    therefore compares the bare images whenever the scored ones are mapped."""
    if mapped is not None:
        scores, zf_scores = score(problem, mean, crop, target), score(problem, zf, crop, target)
    if math.isfinite(zf_scores["psnr"]) and scores["psnr"] < zf_scores["psnr"] - WORSE_THAN_ZERO_FILLED_DB:
        return [f"{name}: PSNR {scores['psnr']:.2f} dB is more than {WORSE_THAN_ZERO_FILLED_DB:g} dB below "
                f"the zero-filled image's {zf_scores['psnr']:.2f} dB: the reconstruction failed"]
    return []


def _uncertainty(problem: Problem, samples: Tensor, crop: tuple[int, int] | int | None, target: str,
                 calibration: Any | None, m: dict[str, Any]) -> np.ndarray | None:
    """The uncertainty metrics of ``samples`` ``(K, C, H, W)`` (or target images ``(K, H, W)``) on the
    scoring crop into ``m``
    (``coverage_raw``, ``coverage_90``, ``spread_skill``, ``crps``, ``interval_width``; ``coverage``
    with a calibration), over the problem's image support when it has one (``uncertainty_pixels``:
    the fraction of the crop inside it); returns the per-pixel conformal scores (``None`` for fewer
    than 2 samples)."""
    from ambient_imaging.metrics import center_crop
    from ambient_imaging.metrics.calibration import DEFAULT_FLOOR, conformal_scores, uncertainty_report

    ref = target_reference(problem, target)
    if ref is None or samples.shape[0] < 2:
        return None
    mag = samples if samples.ndim == 3 else display_magnitude(samples)
    mag = center_crop(mag.detach().cpu().numpy(), crop)
    ref = center_crop(ref, crop)
    support = problem.extras.get("support")
    if support is not None:  # where the image is defined (MRI: the coil maps' support); outside, std is 0
        inside = center_crop(support[0, 0].cpu().numpy(), crop)
        mag, ref = mag[:, inside], ref[inside]
        m["uncertainty_pixels"] = float(inside.mean())
    m.update(uncertainty_report(mag, ref, calibration))
    if calibration is not None:
        m["calibration_q"] = float(calibration.q)
    if calibration is None:
        return conformal_scores(mag, ref, k=2.0, floor=DEFAULT_FLOOR)
    return conformal_scores(mag, ref, k=float(calibration.k), floor=float(calibration.floor))


def _visibility_fit(problem: Problem, method: Any, mean: Tensor, info: dict[str, Any],
                    m: dict[str, Any]) -> list[str]:
    """χ² per data product (ehtim's definitions) into ``m``, and the honest-failure warnings of the fit."""
    from ambient_imaging.sampling.likelihoods import chi2_report
    from ambient_imaging.sampling.rml import fit_warnings

    fitted = {k: float(v[0]) for k, v in info.items()
              if k.startswith("chi2_") and k != "chi2_red" and isinstance(v, list) and v
              and isinstance(v[0], (int, float))}
    if fitted:  # the RML imager reports the products it fitted (and those it did not, unwarned)
        m.update(fitted)
        # chi2_red is always the complex visibilities' χ²: say which χ²'s judge this fit
        judged = info.get("chi2_fitted")
        m["chi2_fitted"] = ",".join(judged[0] if judged else sorted(fitted))
        return fit_warnings(info, image=mean) if getattr(method, "is_fit", True) else []
    x = (mean.real if mean.is_complex() else mean)[None].to(torch.float64)
    try:
        m.update(chi2_report(x, problem.y, problem.op.to(dtype=torch.float64)))
    except (ValueError, RuntimeError) as err:  # e.g. too few stations per integration for closures
        m["chi2_note"] = str(err)
    if not getattr(method, "is_fit", True):  # the dirty image is not a fit: report, do not warn
        return []
    return fit_warnings({"chi2_red": [m.get("chi2_red", float("nan"))]}, image=mean)
