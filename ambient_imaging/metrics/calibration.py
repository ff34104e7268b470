"""Calibration of posterior samples: does the uncertainty cover the truth, and how to make it.

Raw checks (``coverage`` at 2σ, ``interval_coverage`` at 90 %, ``spread_skill``, ``crps``,
``interval_width``) and split-conformal calibration of the std map (:class:`Calibration`, fitted on
validation slices with :func:`conformal_scores`). Everything works on magnitudes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .image import to_magnitude

__all__ = ["coverage", "interval_coverage", "z_scores", "spread_skill", "crps", "interval_width",
           "conformal_scores", "interval_scale", "DEFAULT_FLOOR", "Calibration", "uncertainty_report"]


def _samples(samples, reference) -> tuple[np.ndarray, np.ndarray]:
    s, r = to_magnitude(samples), to_magnitude(reference)
    if s.shape[1:] != r.shape:
        raise ValueError(f"coverage: samples {s.shape} must be (K, *reference.shape) with reference {r.shape}")
    if s.shape[0] < 2:
        raise ValueError("coverage: need at least 2 samples")
    return s, r


def coverage(samples, reference, k: float = 2.0) -> float:
    """Fraction of pixels with ``|reference − mean| ≤ k · std`` (samples ``(K, ...)``).

    For a calibrated Gaussian posterior, ``k = 2`` gives ≈ 0.954. Works on
    magnitudes (complex inputs are converted with ``abs``).
    """
    s, r = _samples(samples, reference)
    mean, std = s.mean(0), s.std(0, ddof=1)
    return float(np.mean(np.abs(r - mean) <= k * std))


def interval_coverage(samples, reference, level: float = 0.9) -> float:
    """Fraction of pixels inside the central empirical ``level`` interval of the samples."""
    if not 0 < level < 1:
        raise ValueError(f"interval_coverage: level must be in (0, 1), got {level}")
    s, r = _samples(samples, reference)
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return float(np.mean((r >= lo) & (r <= hi)))


def z_scores(samples, reference) -> np.ndarray:
    """Pixelwise ``(reference − mean)/std`` (std floored at 1e-12); ~N(0,1) when calibrated."""
    s, r = _samples(samples, reference)
    return (r - s.mean(0)) / np.maximum(s.std(0, ddof=1), 1e-12)


def spread_skill(samples, reference) -> float:
    """Spread–skill ratio: the root mean posterior variance (with the finite-ensemble factor
    ``(K + 1)/K``) over the RMSE of the sample mean; 1 for a calibrated ensemble, < 1 over-confident."""
    s, r = _samples(samples, reference)
    k = s.shape[0]
    spread = np.sqrt(np.mean(s.var(0, ddof=1)) * (k + 1) / k)
    skill = np.sqrt(np.mean((r - s.mean(0)) ** 2))
    return float(spread / skill) if skill > 0 else float("inf")


def crps(samples, reference) -> float:
    """Mean continuous ranked probability score of the sample ensemble (the fair estimator:
    ``E|X − r| − E|X − X'| / 2`` with ``E|X − X'|`` over distinct pairs), in the data's units."""
    s, r = _samples(samples, reference)
    k = s.shape[0]
    first = np.mean(np.abs(s - r[None]), axis=0)
    srt = np.sort(s, axis=0)
    w = (2 * np.arange(1, k + 1) - k - 1).reshape(-1, *([1] * (s.ndim - 1)))
    pair = 2.0 * np.sum(w * srt, axis=0) / (k * (k - 1))  # E|X − X'| over distinct pairs
    return float(np.mean(first - 0.5 * pair))


def interval_width(samples, k: float = 2.0) -> float:
    """Mean width ``2 k · std`` of the ``±k σ`` intervals (so that a trivially wide interval shows)."""
    s = to_magnitude(samples)
    return float(np.mean(2 * k * s.std(0, ddof=1)))


#: the default additive floor of the calibrated interval, as a fraction of the image's mean std
DEFAULT_FLOOR = 1.0


def interval_scale(std: np.ndarray, floor: float) -> np.ndarray:
    """``std + floor · mean(std)``: the per-pixel scale a calibrated interval multiplies.

    A posterior sampler whose prior is seen only through the measured rows (ambient priors) has a
    std near 0 wherever the data pin the rows but the null space is unresolved; a purely
    multiplicative calibration must then blow every interval up to cover those pixels. The additive
    floor (a function of the test image's own samples, so split-conformal validity is kept) lets
    ``q`` stay small where the std is informative and still covers the pixels it misses.
    """
    return std + floor * float(np.mean(std))


def conformal_scores(samples, reference, k: float = 2.0, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Per-pixel nonconformity ``|reference − mean| / (k · (std + floor · mean std))`` (flattened; the
    denominator floored at 1e-12). ``floor = 0``: the plain ``|reference − mean| / (k · std)``."""
    s, r = _samples(samples, reference)
    scale = interval_scale(s.std(0, ddof=1), floor)
    return (np.abs(r - s.mean(0)) / (k * np.maximum(scale, 1e-12))).reshape(-1)


@dataclass
class Calibration:
    """A split-conformal calibration of the posterior std: ``|x − mean| ≤ q · k · (std + floor · mean std)``
    holds for the nominal ``level`` of held-out pixels (Angelopoulos & Bates 2021, split conformal on
    validation data; :func:`interval_scale` for the floor).

    Attributes: ``q`` the scale factor; ``k`` the raw interval (2σ); ``level`` the nominal coverage;
    ``floor`` the additive floor (records written before it existed load with 0, the plain ``q · k · std``);
    ``pixels`` / ``slices`` the calibration set; ``method`` / ``prior`` what it was fitted for.
    """

    q: float
    k: float = 2.0
    level: float = 0.95
    floor: float = 0.0
    pixels: int = 0
    slices: int = 0
    method: str = ""
    prior: str = ""
    source: str = ""

    @classmethod
    def fit(cls, scores: list[np.ndarray] | np.ndarray, k: float = 2.0, level: float = 0.95,
            floor: float = DEFAULT_FLOOR, **about: Any) -> Calibration:
        """``q`` = the ``⌈(n + 1) level⌉ / n`` empirical quantile of the pooled :func:`conformal_scores`
        (computed with the same ``k`` and ``floor``)."""
        if not 0 < level < 1:
            raise ValueError(f"calibration: level must be in (0, 1), got {level}")
        groups = scores if isinstance(scores, list) else [scores]
        parts = [np.asarray(s, dtype=np.float64).reshape(-1) for s in groups]
        pooled = np.concatenate(parts) if parts else np.zeros(0)
        if pooled.size == 0:
            raise ValueError("calibration: no validation pixels (do the validation files have a reference?)")
        n = pooled.size
        rank = min(1.0, math.ceil((n + 1) * level) / n)
        q = float(np.quantile(pooled, rank, method="higher"))
        if not math.isfinite(q) or q > 1e6:
            raise ValueError(f"calibration: the std map is (near) zero where the error is not on more than "
                             f"{100 * (1 - level):g} % of the validation pixels (q = {q:.3g}); a deterministic "
                             "method, or too few samples, cannot be calibrated")
        return cls(q=q, k=k, level=level, floor=floor, pixels=n, slices=len(parts), **about)

    def coverage(self, samples, reference) -> float:
        """Held-out coverage of the calibrated intervals ``|x − mean| ≤ q · k · (std + floor · mean std)``."""
        s, r = _samples(samples, reference)
        half = self.q * self.k * interval_scale(s.std(0, ddof=1), self.floor)
        return float(np.mean(np.abs(r - s.mean(0)) <= half))

    def width(self, samples) -> float:
        """Mean width ``2 q k (std + floor · mean std)`` of the calibrated intervals."""
        s = to_magnitude(samples)
        return float(np.mean(2 * self.q * self.k * interval_scale(s.std(0, ddof=1), self.floor)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record."""
        return {"kind": "split-conformal", **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (to reuse with ``reconstruct --calibration FILE``, e.g. in the prior's run dir)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a record written by :meth:`save` (a clear error naming the file otherwise)."""
        try:
            d = json.loads(Path(path).read_text())
            d.pop("kind", None)
            out = cls(**d)
        except (OSError, json.JSONDecodeError, TypeError) as err:
            raise ValueError(f"{path}: not a calibration record ({err})") from err
        if not (math.isfinite(out.q) and out.q > 0):
            raise ValueError(f"{path}: calibration scale q must be a positive number, got {out.q}")
        return out


def uncertainty_report(samples, reference, calibration: Calibration | None = None) -> dict[str, float]:
    """``coverage_raw`` (2σ), ``coverage_90`` (central 90 % sample interval), ``spread_skill``, ``crps``,
    ``interval_width`` and, with a calibration, ``coverage`` (calibrated 2σ) and ``interval_width_calibrated``."""
    out = {"coverage_raw": coverage(samples, reference), "coverage_90": interval_coverage(samples, reference, 0.9),
           "spread_skill": spread_skill(samples, reference), "crps": crps(samples, reference),
           "interval_width": interval_width(samples)}
    if calibration is not None:
        out["coverage"] = calibration.coverage(samples, reference)
        out["interval_width_calibrated"] = calibration.width(samples)
    return out
