"""Mixed image collections (issue 19): FITS folders that mix complete and masked / clean and noisy images,
and ``--clean-data`` beside corrupted images (``--operator mask|noise``).

Two ways a set of images is mixed:

* **A FITS folder whose files differ in kind** (read as measured, nothing simulated). Each file's
  validity mask (NaN pixels, or a ``MASK``/``BPM``/``DQ``/``WHT`` HDU, as
  :func:`~ambient_imaging.datasets.fits.read_fits_image` reads them) and its noise card
  (``NOISE``/``RMS``/``SIGMA``; no card: noise-free) decide its kind: *clean* (complete, no noise),
  *complete noisy* (complete, σ_n > 0) or *masked*. A folder with two kinds or more trains each file
  by its kind; its own masks and noise replace ``--corruption``/``--noise-sigma``. A folder of one
  kind (e.g. a ``data build sky-hdf`` folder) trains as before (synthetic corruption).
* **``--clean-data CLEAN``** (a folder / ``.npy`` stack of clean images of the same size): the
  ``--data`` images are corrupted as the flags say (dust masks, noise σ_n), the clean ones are not.

Complete samples (clean or noisy) carry ``meta["fully_sampled"] = True`` and train with
:class:`~.losses.CompleteLoss` (EDM; Tweedie above the crossing point when noisy: ``--gate``); masked
ones with the ambient loss (:func:`~.mix.mixture_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ambient_imaging.problems import Normalisation

from .mix import CLEAN_KEY, DataMix

__all__ = ["FitsKinds", "fits_kinds", "image_folder_mix", "mixed_image_data", "MeasuredImages"]

FITS_SUFFIXES = (".fits", ".fit", ".fts")


@dataclass
class FitsKinds:
    """The files of a FITS folder as measured: data (file units, masked pixels 0), masks, noise, kinds."""

    files: list[Path]
    data: np.ndarray  # (N, H, W) float64
    masks: np.ndarray  # (N, H, W) bool, True = valid
    sigma: np.ndarray  # (N,) noise std in file units (0: no noise card)

    @property
    def complete(self) -> np.ndarray:
        """Files without a masked pixel."""
        return self.masks.reshape(len(self.files), -1).all(axis=1)

    def mix(self) -> DataMix:
        """Counts per kind (one image per file)."""
        comp, noisy = self.complete, self.sigma > 0
        clean = int((comp & ~noisy).sum())
        noisy_complete = int((comp & noisy).sum())
        masked = int((~comp).sum())
        return DataMix(clean, clean, masked, masked, noisy_complete, noisy_complete, unit="image",
                       clean_kind="clean", corrupted_kind="masked")


def _fits_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FITS_SUFFIXES) if folder.is_dir() else []


def fits_kinds(folder: Path) -> FitsKinds | None:
    """Read a FITS folder as measured (``None``: not a folder of FITS files). One-line errors name the file."""
    from ambient_imaging.datasets.fits import read_fits_image

    files = _fits_files(folder)
    if not files:
        return None
    data, masks, sigma = [], [], []
    for p in files:
        img = read_fits_image(p, mask="auto")
        data.append(np.asarray(img.data, dtype=np.float64))
        masks.append(np.asarray(img.mask, dtype=bool))
        sigma.append(float(img.noise_sigma) if str(img.noise_source).startswith("header:") else 0.0)
    if len({a.shape for a in data}) != 1:
        raise ValueError(f"{folder}: FITS images have different sizes; cut patches of one size first")
    return FitsKinds(files, np.stack(data), np.stack(masks), np.asarray(sigma, dtype=np.float64))


def image_folder_mix(path: Path) -> DataMix | None:
    """The mix of a FITS folder (``data info DIR``); ``None`` when ``path`` holds no FITS files."""
    kinds = fits_kinds(path)
    return None if kinds is None else kinds.mix()


class MeasuredImages(Dataset):
    """Measured images as training items: ``y = mask · x`` (noise as measured), ``PixelMask(mask, σ_n)``.

    ``x`` ``(N, 1, H, W)`` and ``sigma`` ``(N,)`` are in prior units; ``meta["fully_sampled"]`` marks the
    complete images. No ``"reference"``: the clean images are unknown.
    """

    def __init__(self, x: torch.Tensor, masks: torch.Tensor, sigma: torch.Tensor):
        self.x, self.masks, self.sigma = x, masks, sigma
        self.complete = masks.reshape(masks.shape[0], -1).all(dim=1)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        from ambient_imaging.operators import PixelMask

        m = self.masks[i : i + 1].to(self.x.dtype)
        op = PixelMask(m.clone(), noise_sigma=float(self.sigma[i]))
        return {"y": (self.x[i] * m[0]).clone(), "operator": op, "scale": 1.0,
                "meta": {"index": i, CLEAN_KEY: bool(self.complete[i])}}


class _Flagged(Dataset):
    """A dataset whose items ``i >= first_clean`` are complete (``meta["fully_sampled"]``); ``all_complete``:
    every item is (the noise family: the noisy images carry σ_n, the clean ones none)."""

    def __init__(self, dataset: Dataset, first_clean: int, all_complete: bool = False):
        self.dataset, self.first_clean, self.all_complete = dataset, int(first_clean), bool(all_complete)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[i])
        item["meta"] = {**item.get("meta", {}), CLEAN_KEY: self.all_complete or i >= self.first_clean}
        return item


class _Operators:
    """Operator factory of a ``--clean-data`` set: image ``i < n`` corrupted as configured, the rest clean."""

    def __init__(self, n: int, corrupted: Any, family: str, shape: tuple[int, int]):
        self.n, self.corrupted, self.family, self.shape = n, corrupted, family, shape

    def __call__(self, i: int, g: torch.Generator):
        from ambient_imaging.operators import GaussianNoise, PixelMask

        if i < self.n:
            return self.corrupted(i, g)
        if self.family == "mask":
            return PixelMask(torch.ones(1, 1, *self.shape), noise_sigma=0.0)
        return GaussianNoise(0.0)


def _check_loss(cfg: Any) -> None:
    want = "ambient" if cfg.operator == "mask" else "tweedie"
    if cfg.loss != want:
        raise ValueError(f"--loss {cfg.loss}: a mixed set of --operator {cfg.operator} trains with --loss {want}")


def _measured(cfg: Any, kinds: FitsKinds) -> Any:
    from .data import TrainingData

    if cfg.operator != "mask":
        raise ValueError(f"--data {cfg.data}: a FITS folder mixing kinds ({kinds.mix().describe()}) trains with "
                         "--operator mask (each file's own mask and NOISE card); drop --operator "
                         f"{cfg.operator}")
    if cfg.clean_data:
        raise ValueError(f"--clean-data: --data {cfg.data} mixes kinds already (its complete files are the clean "
                         "part); drop --clean-data")
    valid = kinds.data[kinds.masks]
    lo, hi = float(valid.min()), float(valid.max())
    norm = Normalisation.unit_range() if lo >= 0.0 and hi <= 1.0 else Normalisation.from_range(lo, hi)
    x = torch.from_numpy(kinds.data[:, None]).float()
    norm = norm.resolve(x, None)
    x = norm.image_to_prior(x) * torch.from_numpy(kinds.masks[:, None]).float()
    unit = float(norm.image_to_prior(torch.ones(1, 1)) - norm.image_to_prior(torch.zeros(1, 1)))
    sigma = torch.from_numpy(kinds.sigma * unit).float()
    mix = kinds.mix()
    noisy = sigma[sigma > 0]
    h, w = kinds.data.shape[-2:]
    return TrainingData(
        dataset=MeasuredImages(x, torch.from_numpy(kinds.masks[:, None]), sigma),
        family="mask", image_shape=(1, h, w), is_complex=False, mask_channels=1,
        noise_sigma=float(noisy.median()) if noisy.numel() else 0.0, scale_rule=norm.describe(),
        notes=[f"{len(kinds.files)} measured FITS images from {cfg.data}, {h}x{w} (their own masks and NOISE "
               f"cards; --corruption / --noise-sigma not applied): {mix.describe()}"],
        normalisation=norm, mix=mix, clean_items=kinds.complete & (kinds.sigma == 0),
    )


def _with_clean(cfg: Any) -> Any:
    from .data import SimulatedMeasurements, TrainingData, corruption_operator, load_image_stack

    if cfg.operator not in ("mask", "noise"):
        raise ValueError(f"--clean-data applies to --operator mri, mask or noise, not to --operator {cfg.operator}")
    path = Path(cfg.clean_data)
    if not path.exists():
        raise FileNotFoundError(f"--clean-data {path}: not found")
    x, what = load_image_stack(cfg)
    xc, what_c = load_image_stack(cfg.replace(data=str(path)))
    if tuple(xc.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"--clean-data {path}: images of shape {tuple(xc.shape[1:])}, --data has "
                         f"{tuple(x.shape[1:])}; give clean images of the same size")
    both = torch.cat([x, xc])
    lo, hi = float(both.min()), float(both.max())
    norm = Normalisation.unit_range() if lo >= 0.0 and hi <= 1.0 else Normalisation.from_range(lo, hi)
    both = norm.resolve(both, None).image_to_prior(both)
    c, h, w = (int(s) for s in x.shape[1:])
    n, nc = x.shape[0], xc.shape[0]
    ops = _Operators(n, corruption_operator(cfg, (h, w)), cfg.operator, (h, w))
    ds = _Flagged(SimulatedMeasurements(both, ops, seed=cfg.seed), n, all_complete=cfg.operator == "noise")
    if cfg.operator == "mask":
        mix = DataMix(nc, nc, n, n, unit="image", clean_kind="clean", corrupted_kind="masked")
    else:
        mix = DataMix(nc, nc, n, n, unit="image", clean_kind="clean", corrupted_kind="noisy")
    return TrainingData(
        dataset=ds, family=cfg.operator, image_shape=(c, h, w), is_complex=False,
        mask_channels=1 if cfg.operator == "mask" else 0, noise_sigma=float(cfg.noise_sigma),
        scale_rule=norm.describe(), normalisation=norm, mix=mix, clean_items=np.arange(n + nc) >= n,
        notes=[f"{n} images from {what} corrupted ({cfg.operator}: corruption {cfg.corruption:g}, σ_n="
               f"{cfg.noise_sigma:g}), {nc} clean images from {what_c} kept clean, {h}x{w}"],
    )


def mixed_image_data(cfg: Any) -> Any:
    """The :class:`~.data.TrainingData` of a mixed image set, or ``None`` when ``cfg`` names one kind."""
    from .data import resolve_build_folder

    kinds = None
    if cfg.data and cfg.data != "faces":
        path, _ = resolve_build_folder(Path(cfg.data))
        if path.is_dir() and _fits_files(path):
            kinds = fits_kinds(path)
    if kinds is not None and kinds.mix().mixed:
        _check_loss(cfg)
        return _measured(cfg, kinds)
    if cfg.clean_data:
        _check_loss(cfg)
        return _with_clean(cfg)
    return None
