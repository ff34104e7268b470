"""Mixed training sets: a few fully sampled (clean) samples beside many corrupted ones.

A fastMRI slice is **fully sampled** when every k-space column inside its acquired band is
sampled (fastMRI's zero-padded edge columns do not count: :func:`~ambient_imaging.datasets.fastmri.
fastmri_info`'s ``fully_sampled``). In a set that mixes both kinds, fully sampled slices keep their
full masks and train with the clean loss; undersampled ones train with the ambient loss
(:class:`~.losses.MixtureLoss`, keyed by the slice's ``meta["fully_sampled"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import fastmri_files, resolve_build_folder
from .losses.base import loss_class

__all__ = ["DataMix", "data_mix", "mri_clean_files", "mixture_loss", "folder_mix"]

#: the per-sample meta key that marks a clean (fully sampled) sample
CLEAN_KEY = "fully_sampled"


@dataclass(frozen=True)
class DataMix:
    """Counts per kind: ``clean_files/slices`` fully sampled, ``corrupted_files/slices`` undersampled."""

    clean_files: int
    clean_slices: int
    corrupted_files: int
    corrupted_slices: int

    @property
    def mixed(self) -> bool:
        """Both kinds present (then the mixture loss trains them)."""
        return self.clean_slices > 0 and self.corrupted_slices > 0

    @property
    def clean_fraction(self) -> float:
        """Fraction of slices that are fully sampled."""
        n = self.clean_slices + self.corrupted_slices
        return self.clean_slices / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record stored with the prior (``prior_info["data_mix"]``)."""
        return {"clean_files": self.clean_files, "clean_slices": self.clean_slices,
                "corrupted_files": self.corrupted_files, "corrupted_slices": self.corrupted_slices,
                "clean_fraction": round(self.clean_fraction, 4)}

    def describe(self) -> str:
        """One line for the terminal."""
        return (f"{self.clean_slices} fully sampled slice(s) in {self.clean_files} file(s), "
                f"{self.corrupted_slices} undersampled slice(s) in {self.corrupted_files} file(s) "
                f"({100 * self.clean_fraction:.1f}% clean)")


def folder_mix(files: list[Path]) -> DataMix:
    """Count fully sampled and undersampled slices of fastMRI ``files`` (each file judged by its middle slice)."""
    from ambient_imaging.datasets.fastmri import fastmri_info

    counts = [0, 0, 0, 0]
    for f in files:
        info = fastmri_info(f)
        k = 0 if info["fully_sampled"] else 2
        counts[k] += 1
        counts[k + 1] += int(info["slices"])
    return DataMix(*counts)


def mri_clean_files(cfg: Any) -> list[Path]:
    """The fully sampled files of ``cfg.clean_data`` (``[]`` when unset); one-line errors otherwise."""
    if not cfg.clean_data:
        return []
    path = Path(cfg.clean_data)
    if not path.exists():
        raise FileNotFoundError(f"--clean-data {path}: not found")
    files = fastmri_files(path)
    if not files:
        raise ValueError(f"--clean-data {path}: no .h5 files here")
    under = [f.name for f in files if not folder_mix([f]).clean_files]
    if under:
        raise ValueError(f"--clean-data {path}: {len(under)} file(s) are undersampled (e.g. {under[0]}); "
                         "--clean-data takes fully sampled files only")
    return files


def data_mix(files: list[Path], cfg: Any) -> DataMix:
    """The mix of a training set, checked against the loss (``--clean-data`` needs undersampled ``--data``)."""
    mix = folder_mix(files)
    if cfg.clean_data and mix.corrupted_slices == 0:
        raise ValueError("--clean-data: --data holds no undersampled files; train on the fully sampled files "
                         "alone with --data, or give undersampled --data")
    if mix.mixed and not loss_class(cfg.loss).subsamples:
        raise ValueError(f"--loss {cfg.loss}: a mixed set (fully sampled + undersampled) trains with --loss ambient")
    return mix


def mixture_loss(corrupted: Any) -> Any:
    """``MixtureLoss(NaiveLoss(mask="operator"), corrupted)`` keyed by ``meta["fully_sampled"]``.

    For a fully sampled slice ``A^H y`` is the complete (noisy at σ_n) image and the operator's mask
    is all ones inside the band, so the plain EDM loss applies, with σ ≥ the loss's σ floor.
    """
    from .losses import MixtureLoss
    from .losses.baselines import NaiveLoss

    clean = NaiveLoss(sigma_dist=getattr(corrupted, "sigma_dist", None), mask="operator",
                      sigma_data=getattr(corrupted, "sigma_data", 0.5))
    return MixtureLoss(clean, corrupted, key=CLEAN_KEY)


def undersampled_acceleration(path: Path) -> float | None:
    """The acceleration of the first fastMRI file of ``path`` when it is undersampled, else ``None``
    (also for files that cannot be read: the data check reports those, naming the file)."""
    from ambient_imaging.datasets.fastmri import fastmri_info

    try:
        files = fastmri_files(resolve_build_folder(path)[0] if path.is_dir() else path)
        info = fastmri_info(files[0]) if files else None
    except (ValueError, OSError, IndexError, KeyError):
        return None
    return None if info is None or info["fully_sampled"] else float(info["acceleration"])
