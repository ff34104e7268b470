"""The corruption levels of a memorisation study: what each level trains on and with which loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["StudyLevel", "study_levels", "DEFAULT_CORRUPTION", "DEFAULT_NOISE_SIGMAS", "KINDS"]

#: default mask corruption levels (fraction of pixels erased); 0 = the clean baseline
DEFAULT_CORRUPTION: tuple[float, ...] = (0.0, 0.9)
#: default noise levels σ_n for the Tweedie variant (images in [-1, 1]); 0 = clean
DEFAULT_NOISE_SIGMAS: tuple[float, ...] = (0.0, 0.2)
#: study kinds
KINDS = ("mask", "noise", "both")


@dataclass(frozen=True)
class StudyLevel:
    """One training-data corruption: ``kind`` ``"mask"`` (``value`` = fraction erased) or
    ``"noise"`` (``value`` = σ_n); ``value == 0`` is the clean baseline of that kind."""

    kind: str
    value: float

    @property
    def name(self) -> str:
        """Directory/file name, e.g. ``mask-0.6`` or ``noise-0.2``."""
        return f"{self.kind}-{self.value:g}"

    @property
    def clean(self) -> bool:
        """Whether this is the clean baseline (no corruption)."""
        return self.value == 0.0

    @property
    def loss(self) -> str:
        """``oracle`` (plain denoising on clean images) at level 0, else ``ambient`` / ``tweedie``."""
        if self.clean:
            return "oracle"
        return "ambient" if self.kind == "mask" else "tweedie"

    @property
    def label(self) -> str:
        """Human-readable label for plots, e.g. ``clean``, ``90 % erased`` or ``σ_n = 0.2``."""
        if self.clean:
            return "clean"
        return f"{100 * self.value:g} % erased" if self.kind == "mask" else f"σ_n = {self.value:g}"

    def config_changes(self) -> dict[str, Any]:
        """The :class:`~ambient_imaging.training.TrainConfig` settings that define this level."""
        if self.kind == "mask":
            return {"operator": "mask", "corruption": self.value, "noise_sigma": 0.0, "loss": self.loss}
        return {"operator": "noise", "corruption": 0.0, "noise_sigma": self.value, "loss": self.loss}


def study_levels(
    kind: str = "mask",
    corruption: tuple[float, ...] | list[float] = DEFAULT_CORRUPTION,
    noise_sigmas: tuple[float, ...] | list[float] = DEFAULT_NOISE_SIGMAS,
) -> list[StudyLevel]:
    """The validated levels of a study (``kind``: ``mask``, ``noise`` or ``both``)."""
    if kind not in KINDS:
        raise ValueError(f"study kind must be one of {', '.join(KINDS)}, got {kind!r}")
    levels: list[StudyLevel] = []
    if kind in ("mask", "both"):
        levels += [StudyLevel("mask", _check_value(v, "corruption level", upper=1.0)) for v in corruption]
    if kind in ("noise", "both"):
        levels += [StudyLevel("noise", _check_value(v, "noise level σ_n", upper=None)) for v in noise_sigmas]
    if not levels:
        raise ValueError("the study has no levels; give at least one corruption (or noise) level")
    names = [lv.name for lv in levels]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate study level(s): {', '.join(dup)}")
    return levels


def _check_value(v: Any, what: str, upper: float | None) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {v!r}")
    if upper is not None and x >= upper:
        raise ValueError(f"{what} must be in [0, 1) (the fraction of pixels erased), got {v!r}")
    return x
