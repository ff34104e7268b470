"""Mixed training sets: a few fully sampled (clean) samples beside many corrupted ones.

Kinds: *complete* samples (a fully sampled MRI slice, an image without masked pixels) train with
:class:`~.losses.CompleteLoss` — the plain EDM loss when clean, the Tweedie loss above the sample's
crossing point when it carries noise (Ambient Omni's gate, ``--gate``); *incomplete* ones
(undersampled, masked) with the run's loss. Image and FITS folders: :mod:`.mixed_images`.

A fastMRI slice is **fully sampled** when every k-space column inside its acquired band is
sampled (fastMRI's zero-padded edge columns do not count: :func:`~ambient_imaging.datasets.fastmri.
fastmri_info`'s ``fully_sampled``). In a set that mixes both kinds, fully sampled slices keep their
full masks and train with the complete-sample loss; undersampled ones train with the ambient loss
(:class:`~.losses.MixtureLoss`, keyed by the slice's ``meta["fully_sampled"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import fastmri_files, resolve_build_folder
from .losses.base import NoiseGate, loss_class

__all__ = ["DataMix", "data_mix", "mri_clean_files", "mixture_loss", "folder_mix", "resolve_gate", "apply_mix",
           "folder_report", "resolve_clean_share", "AUTO_CLEAN_SHARE"]

#: ``--clean-share auto``: the share of every batch given to the clean samples when they are fewer than this
AUTO_CLEAN_SHARE = 0.5

#: the per-sample meta key that marks a clean (fully sampled) sample
CLEAN_KEY = "fully_sampled"


@dataclass(frozen=True)
class DataMix:
    """Counts per kind of sample in a training set.

    ``clean_*``: complete samples (MRI: fully sampled slices; images: complete and noise-free);
    ``corrupted_*``: incomplete ones (MRI: undersampled; images: masked, or noisy in the noise family);
    ``noisy_complete_*``: complete images that carry noise σ_n > 0 (FITS ``NOISE`` card), counted apart.
    ``unit`` names one sample (``slice``, ``image``); ``clean_kind`` / ``corrupted_kind`` the kinds in words.
    """

    clean_files: int
    clean_slices: int
    corrupted_files: int
    corrupted_slices: int
    noisy_complete_files: int = 0
    noisy_complete_slices: int = 0
    unit: str = "slice"
    clean_kind: str = "fully sampled"
    corrupted_kind: str = "undersampled"

    @property
    def mixed(self) -> bool:
        """At least two kinds present (then the mixture loss trains them)."""
        return sum(n > 0 for n in (self.clean_slices, self.corrupted_slices, self.noisy_complete_slices)) >= 2

    @property
    def total(self) -> int:
        """All samples."""
        return self.clean_slices + self.corrupted_slices + self.noisy_complete_slices

    @property
    def clean_fraction(self) -> float:
        """Fraction of samples that are clean (MRI: fully sampled)."""
        return self.clean_slices / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record stored with the prior (``prior_info["data_mix"]``)."""
        return {"clean_files": self.clean_files, "clean_slices": self.clean_slices,
                "corrupted_files": self.corrupted_files, "corrupted_slices": self.corrupted_slices,
                "noisy_complete_files": self.noisy_complete_files, "noisy_complete_slices": self.noisy_complete_slices,
                "clean_fraction": round(self.clean_fraction, 4), "unit": self.unit,
                "kinds": {self.clean_kind: self.clean_slices, "complete noisy": self.noisy_complete_slices,
                          self.corrupted_kind: self.corrupted_slices}}

    def describe(self) -> str:
        """One line for the terminal."""
        parts = [f"{self.clean_slices} {self.clean_kind} {self.unit}(s) in {self.clean_files} file(s)"]
        if self.noisy_complete_slices:
            parts.append(f"{self.noisy_complete_slices} complete noisy {self.unit}(s) in "
                         f"{self.noisy_complete_files} file(s)")
        parts.append(f"{self.corrupted_slices} {self.corrupted_kind} {self.unit}(s) in {self.corrupted_files} file(s)")
        return ", ".join(parts) + f" ({100 * self.clean_fraction:.1f}% clean)"


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


def resolve_gate(cfg: Any, noisy_complete: bool) -> tuple[NoiseGate | None, dict[str, Any]]:
    """The noise gate of a mixed set (``cfg.gate``) and its record (``prior_info["gate"]``).

    ``auto``: :class:`~.losses.NoiseGate` with ``cfg.gate_factor`` — it acts where complete samples
    carry noise (``noisy_complete``; ``active`` in the record); ``off``: ``None`` (noisy complete
    samples train as if clean at every σ).
    """
    if cfg.gate == "off":
        return None, {"mode": "off", "factor": float(cfg.gate_factor), "active": False,
                      "rule": "noisy complete samples train as if clean at every σ (no gate)"}
    rule = (f"complete samples with noise σ_n train with the Tweedie loss only at σ >= {cfg.gate_factor:g}·σ_n; "
            "clean samples at every σ" if noisy_complete else
            "no complete sample carries noise: clean samples train at every σ (nothing to gate)")
    return NoiseGate(float(cfg.gate_factor)), {"mode": "auto", "factor": float(cfg.gate_factor),
                                               "active": bool(noisy_complete), "rule": rule}


def mixture_loss(corrupted: Any, gate: NoiseGate | None = None) -> Any:
    """``MixtureLoss(CompleteLoss(gate), corrupted)`` keyed by ``meta["fully_sampled"]`` (complete samples).

    A complete sample (fully sampled MRI slice, unmasked image) trains with :class:`~.losses.CompleteLoss`:
    the plain EDM loss on ``A^H y`` when it is clean, the Tweedie loss above its crossing point when it
    carries noise σ_n' (``gate``; ``None``: as if clean at every σ). It keeps the corrupted loss's σ
    distribution, σ_d and (``edm``/``uncertainty``) weighting, so both parts train one network alike.
    """
    from .losses import CompleteLoss, MixtureLoss

    weighting = getattr(corrupted, "weighting", "edm")
    clean = CompleteLoss(sigma_dist=getattr(corrupted, "sigma_dist", None), sigma_data=getattr(corrupted, "sigma_data",
                         0.5), gate=gate, weighting=weighting if weighting in ("edm", "uncertainty") else "edm")
    return MixtureLoss(clean, corrupted, key=CLEAN_KEY)


def resolve_clean_share(rule: float | str, clean_items: Any, batch: int) -> float | None:
    """The share of every batch given to the clean samples, or ``None`` for batches drawn uniformly.

    ``rule`` (``TrainConfig.clean_share``): ``"uniform"`` → ``None``; ``"auto"`` → :data:`AUTO_CLEAN_SHARE` when
    the set is mixed, its clean samples are fewer than that share of it and a batch of ``batch`` items (per
    process) can hold both kinds, else ``None``; a number → that share, and a one-line ``ValueError`` for a set
    of one kind. ``clean_items``: the set's ``(N,)`` clean flags (``TrainingData.clean_items``; ``None``: not a
    mixed set).

    Why ``auto`` oversamples: on the embedded MRI set with 16 fully sampled slices of 105, batches half
    clean gave +0.3 dB over uniform batches at R = 4 and R = 8 through ``A``'s mask and +0.9 dB through
    all-ones masks (``benchmarks/results/mixture.md``): uniformly drawn, the few clean slices are seen
    too rarely for the network to learn ``E[x | x_t]`` from them.
    """
    import numpy as np

    flags = None if clean_items is None else np.asarray(clean_items, dtype=bool)
    mixed = flags is not None and bool(flags.any()) and not bool(flags.all())
    if rule == "uniform":
        return None
    if rule == "auto":
        few = mixed and float(flags.mean()) < AUTO_CLEAN_SHARE  # type: ignore[union-attr]
        return AUTO_CLEAN_SHARE if few and batch >= 2 else None
    if not mixed:
        raise ValueError("--clean-share applies to a mixed set (clean samples beside corrupted ones); this set "
                         "holds one kind; drop --clean-share")
    return float(rule)


def apply_mix(cfg: Any, data: Any, loss: Any, info: dict[str, Any], notes: list[str]) -> Any:
    """The loss of a run whose data carry a :class:`DataMix` (``data.mix``): the mixture loss for a mixed
    set, ``loss`` otherwise; records ``info["data_mix"]`` and ``info["gate"]`` and adds terminal notes."""
    mix: DataMix = data.mix
    info["data_mix"] = mix.to_dict()
    if not mix.mixed:
        return loss
    noisy = mix.noisy_complete_slices > 0 or (data.family == "mri" and mix.clean_slices > 0 and data.noise_sigma > 0)
    if data.family == "noise":  # every sample is complete; the noisy ones carry σ_n
        noisy = mix.corrupted_slices > 0 and data.noise_sigma > 0
    gate, record = resolve_gate(cfg, noisy)
    info["gate"] = record
    notes.append(f"mixed set: {mix.describe()}; complete {mix.unit}s train with the clean loss (EDM; Tweedie above "
                 f"σ_n when noisy), {mix.corrupted_kind} ones with the {cfg.loss} loss (MixtureLoss)")
    notes.append(f"noise gate: --gate {record['mode']}: {record['rule']}")
    share = resolve_clean_share(cfg.clean_share, data.clean_items, cfg.batch_size // cfg.accumulate)
    if share is not None:
        notes.append(f"batches: a share {share:g} of every batch is clean (--clean-share {cfg.clean_share}; the set "
                     f"holds {mix.clean_fraction:.3g}), each kind in its own epochs")
    else:
        notes.append(f"batches: drawn uniformly over the set (--clean-share {cfg.clean_share})")
    return mixture_loss(loss, gate)


def folder_report(path: Path) -> dict[str, Any]:
    """What ``train --data DIR`` will do with a folder of fastMRI or FITS files (``data info DIR``).

    Returns ``{"folder", "files", "format", "mix": DataMix.to_dict(), "describe", "training"}``;
    one-line ``ValueError`` for a folder of neither.
    """
    from .mixed_images import fits_kinds

    folder = resolve_build_folder(Path(path))[0]
    files = fastmri_files(folder) if folder.is_dir() else []
    if files:
        mix, fmt = folder_mix(files), "fastMRI"
        how = ("fully sampled slices train with the complete-sample loss (EDM; with noise σ_n, the Tweedie loss "
               "at σ >= σ_n: --gate auto), undersampled ones with the ambient loss" if mix.mixed
               else "one kind: every slice trains with the --loss given")
    else:
        kinds = fits_kinds(folder) if folder.is_dir() else None
        if kinds is None:
            raise ValueError(f"{path}: no .h5 or FITS files here (expected fastMRI-layout HDF5 or FITS images)")
        files, mix, fmt = kinds.files, kinds.mix(), "FITS"
        how = ("with --operator mask (their own masks and NOISE cards): clean images at every σ (EDM), complete "
               "noisy ones with the Tweedie loss at σ >= σ_n (--gate auto), masked ones with the ambient loss"
               if mix.mixed else "one kind: trains as a set of clean images corrupted by --operator (synthetic)")
    return {"folder": str(folder), "files": len(files), "format": fmt, "mix": mix.to_dict(),
            "describe": mix.describe(), "training": how}


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
