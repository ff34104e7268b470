"""Training data: a seeded, resumable, rank-sharded sampler, and the dataset for ``--data``/``--operator``.

The sampler defines the data order as a pure function of ``(seed, rank,
world_size, batch index)``: the ``k``-th batch of a run is the same whether
the run was interrupted or not, so ``--resume`` continues at exactly the
same position without relying on DataLoader internals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ambient_imaging.problems import MaskSpec, Normalisation

from .config import TrainConfig
from .losses.base import loss_class

__all__ = ["ResumableBatchSampler", "TrainingData", "build_training_data", "seed_worker", "MeasurementsOnly",
           "load_image_stack", "corruption_operator"]


def _mix(*ints: int) -> int:
    """A 63-bit seed from integers (numpy SeedSequence: well-mixed, stable across versions)."""
    state = np.random.SeedSequence([int(i) & 0xFFFFFFFF for i in ints]).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0]) >> 1


class ResumableBatchSampler(Sampler[list[int]]):
    """Infinite stream of index batches: seeded epoch permutations, sharded by rank.

    Epoch ``e`` uses the permutation ``randperm(n)`` seeded by ``(seed, e)``,
    padded (by wrapping) to a multiple of ``world_size`` and split as
    ``perm[rank::world_size]`` (like ``DistributedSampler``). Each rank's
    shards are concatenated into a stream; batch ``k`` is stream positions
    ``[k·B, (k+1)·B)``. Start anywhere with ``start_batch``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        shuffle: bool = True,
    ):
        if n <= 0:
            raise ValueError("the training dataset is empty")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.start_batch, self.shuffle = rank, world_size, start_batch, shuffle
        self.shard_len = -(-n // world_size)
        self._cache: tuple[int, torch.Tensor] | None = None

    def _shard(self, epoch: int) -> torch.Tensor:
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        if self.shuffle:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(_mix(self.seed, epoch, 0x5A)))
        else:
            perm = torch.arange(self.n)
        total = self.shard_len * self.world_size
        if total > self.n:
            perm = torch.cat([perm, perm.repeat(-(-(total - self.n) // self.n))[: total - self.n]])
        shard = perm[self.rank :: self.world_size]
        self._cache = (epoch, shard)
        return shard

    def batch(self, k: int) -> list[int]:
        """Indices of batch ``k`` on this rank."""
        out = []
        for p in range(k * self.batch_size, (k + 1) * self.batch_size):
            out.append(int(self._shard(p // self.shard_len)[p % self.shard_len]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy/python seeds derived from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class MeasurementsOnly(Dataset):
    """Wrap a dataset so that clean images (``"reference"``) never reach the training loop."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = dict(self.dataset[i])
        item.pop("reference", None)
        return item


@dataclass
class TrainingData:
    """A training dataset and what the prior needs to know about it.

    Attributes:
        dataset: items ``{"y", "operator", "scale", "meta"[, "reference"]}`` (see
            :func:`ambient_imaging.datasets.collate_measurements`).
        family: operator family. image_shape: ``(C, H, W)``. is_complex: complex images.
        mask_channels: number of mask channels the network gets (0: none).
        noise_sigma: measurement noise std at the training scale (operator convention; MRI: the
            median over the set of each slice's σ_n divided by its scale).
        scale_rule: how measurements were normalised, in words (``normalisation.describe()``).
        normalisation: the structured rule, stored with the prior (default: read from ``scale_rule``).
        mask_spec: the sampling protocol of retrospectively undersampled MRI data (stored with the prior).
        notes: human-readable remarks (printed by the CLI).
        statistics: :func:`~ambient_imaging.training.statistics.measurement_summary` of the set when
            the builder computed it (σ_n range, accelerations, centre widths); else computed by ``train``.
    """

    dataset: Dataset
    family: str
    image_shape: tuple[int, int, int]
    is_complex: bool
    mask_channels: int
    noise_sigma: float
    scale_rule: str
    notes: list[str] = field(default_factory=list)
    normalisation: Normalisation | None = None
    mask_spec: MaskSpec | None = None
    statistics: dict[str, Any] | None = None
    #: the kinds of samples in the set (:class:`~.mix.DataMix`; ``None``: one kind, corrupted)
    mix: Any = None
    #: a mixed set: which items are clean, ``(N,)`` bool (what ``mix`` counts as clean; ``--clean-share``)
    clean_items: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.normalisation is None:
            self.normalisation = Normalisation.from_rule(self.scale_rule)


def build_training_data(cfg: TrainConfig) -> TrainingData:
    """The dataset for ``cfg.data`` / ``cfg.operator`` (see the module docs of each family)."""
    if not cfg.data:
        raise ValueError("no training data given (--data PATH, or --data faces)")
    builders = {
        "mask": _build_images,
        "noise": _build_images,
        "mri": _build_mri,
        "interferometry": _build_interferometry,
    }
    data = builders[cfg.operator](cfg)
    if not loss_class(cfg.loss).needs_reference:
        data.dataset = MeasurementsOnly(data.dataset)
    return data


# ---------------------------------------------------------------------- families
#: where the training data of an ``ambient-imaging data build NAME --out DIR`` folder lives (``build.json``'s
#: ``dataset`` → path inside DIR)
BUILD_TRAINING_SOURCES = {"faces": "train.npy", "sky-hdf": "train", "mri-brain": "train", "eht-crescents": "train.npy"}


def resolve_build_folder(path: Path) -> tuple[Path, str | None]:
    """``(training source, dataset name)`` of a ``data build`` output folder (recognised by its ``build.json``);
    ``(path, None)`` for anything else. faces → ``DIR/train.npy``, sky-hdf → ``DIR/train`` (FITS),
    mri-brain → ``DIR/train`` (fastMRI files); the held-out/validation parts never enter training."""
    import json

    meta = path / "build.json"
    if not (path.is_dir() and meta.is_file()):
        return path, None
    try:
        name = json.loads(meta.read_text()).get("dataset")
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{meta}: unreadable build record ({err})") from err
    sub = BUILD_TRAINING_SOURCES.get(str(name))
    if sub is None:
        return path, None
    src = path / sub
    if not src.exists():
        raise FileNotFoundError(f"{path}: a '{name}' build folder without {sub} (rebuild with `ambient-imaging data "
                                f"build {name} --out {path}`)")
    return src, str(name)


def fastmri_files(path: Path) -> list[Path]:
    """The fastMRI files ``path`` names: a folder's ``*.h5`` (sorted, not recursive; our ``*.maps.h5``
    coil-map caches left out), or ``[path]`` for a file."""
    return sorted(p for p in path.glob("*.h5") if not p.name.endswith(".maps.h5")) if path.is_dir() else [path]


def load_image_stack(cfg: TrainConfig) -> tuple[torch.Tensor, str]:
    """Clean images ``(N, C, H, W)`` float32 in [0, 1]-ish from faces / .npy / a folder / a ``data build`` folder."""
    src = cfg.data
    if src == "faces":
        return _faces(cfg.image_size), "the embedded faces set"
    path = Path(src)
    if not path.exists():
        raise FileNotFoundError(f"training data not found: {path} (give a folder, a .npy stack, or 'faces')")
    path, built = resolve_build_folder(path)
    if built == "faces" and cfg.image_size is not None:
        x = torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32))[:, None]
        x = torch.nn.functional.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                                            antialias=True, align_corners=False).clamp_(0.0, 1.0)
        return x.contiguous(), f"the faces build in {path.parent}"
    if path.is_file() and path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4:
            raise ValueError(f"{path}: expected an image stack (N, H, W) or (N, C, H, W), got shape {arr.shape}")
        if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{path}: expected real images, got dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).float()
        if not torch.isfinite(x).all():
            raise ValueError(f"{path}: the image stack contains NaN or Inf values")
        return x, str(path)
    if path.is_dir() and any(p.suffix.lower() in (".fits", ".fit", ".fts") for p in path.iterdir()):
        return _fits_stack(path), f"FITS images in {path}"
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"))
        if not files:
            raise ValueError(f"{path}: no .png/.jpg/.tif images in this folder")
        from skimage import io

        imgs = []
        for p in files:
            a = np.asarray(io.imread(p), dtype=np.float32)
            if a.ndim == 3:
                a = a[..., :3].mean(-1)
            imgs.append(a / (255.0 if a.max() > 1.5 else 1.0))
        if len({a.shape for a in imgs}) != 1:
            raise ValueError(f"{path}: images have different sizes; resize them to one size first")
        return torch.from_numpy(np.stack(imgs))[:, None], f"{len(files)} images from {path}"
    raise ValueError(f"{path}: unsupported training data (need a folder of images, a .npy stack, or 'faces')")


class SimulatedMeasurements(Dataset):
    """Measurements simulated once per image: ``y_i = A_i x_i + ε_i``, deterministic in ``(seed, i)``.

    ``make_operator(i, generator)`` draws image ``i``'s operator (a batch of 1).
    Items carry ``"reference"`` (the clean image) for evaluation; training
    wraps the dataset in :class:`MeasurementsOnly`.
    """

    def __init__(self, images: torch.Tensor, make_operator, seed: int = 0):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        self.images = images
        self.make_operator = make_operator
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(_mix(self.seed, i, 0xC0DE))
        x = self.images[i : i + 1]
        op = self.make_operator(i, g)
        y = op.measure(x, g)
        return {"y": y[0], "operator": op, "scale": 1.0, "meta": {"index": i}, "reference": x[0]}


class _DustMask:
    """Operator factory: a dust mask erasing a fraction ``corruption`` of the pixels (picklable)."""

    def __init__(self, shape: tuple[int, int], corruption: float, noise_sigma: float):
        self.shape, self.corruption, self.noise_sigma = shape, corruption, noise_sigma

    def __call__(self, i: int, g: torch.Generator):
        from ambient_imaging.operators import PixelMask, dust_mask

        return PixelMask(dust_mask((1, 1, *self.shape), self.corruption, generator=g), noise_sigma=self.noise_sigma)


class _Noise:
    """Operator factory: Gaussian noise σ_n (picklable)."""

    def __init__(self, noise_sigma: float):
        self.noise_sigma = noise_sigma

    def __call__(self, i: int, g: torch.Generator):
        from ambient_imaging.operators import GaussianNoise

        return GaussianNoise(self.noise_sigma)


class _Observation:
    """Operator factory: one Earth-rotation observation at a random hour angle, gridded (picklable)."""

    def __init__(self, layout, declination, hours, n_times, shape, pixel_scale, noise_sigma):
        self.layout, self.declination, self.hours, self.n_times = layout, declination, hours, n_times
        self.shape, self.pixel_scale, self.noise_sigma = shape, pixel_scale, noise_sigma

    def __call__(self, i: int, g: torch.Generator):
        from ambient_imaging.operators import Interferometer, earth_rotation_uv

        start = -6.0 + float(torch.rand((), generator=g)) * (12.0 - self.hours)
        cov = earth_rotation_uv(self.layout, self.declination, (start, start + self.hours), n_times=self.n_times)
        op = Interferometer(cov.uv.float(), self.shape, self.pixel_scale, noise_sigma=self.noise_sigma)
        return op.to_gridded(include_conjugate=True)


def corruption_operator(cfg: TrainConfig, shape: tuple[int, int]) -> Any:
    """The operator factory of synthetic corruption (``--operator mask``: dust masks [+ noise]; ``noise``: σ_n)."""
    if cfg.operator == "mask":
        return _DustMask(shape, cfg.corruption, float(cfg.noise_sigma))
    return _Noise(float(cfg.noise_sigma))


def _to_unit_range(x: torch.Tensor) -> tuple[torch.Tensor, Normalisation]:
    """Images to ``[-1, 1]`` (EDM convention), and the rule used (stored as ``Prior.scale_rule``).

    ``[0, 1]`` data: ``2x - 1`` (the rule samplers invert). Other data: the training
    set's range is mapped affinely to -1..1 and the rule records the numbers.
    """
    lo, hi = float(x.min()), float(x.max())
    norm = Normalisation.unit_range() if lo >= 0.0 and hi <= 1.0 else Normalisation.from_range(lo, hi)
    return norm.resolve(x, None).image_to_prior(x), norm


def _fits_stack(folder: Path) -> torch.Tensor:
    """First image HDU of every FITS file in ``folder`` as ``(N, 1, H, W)`` (NaN/Inf blanks -> 0).

    Read with :func:`ambient_imaging.datasets.read_fits_image` (``mask=None``: mask HDUs are not applied).
    """
    from ambient_imaging.datasets.fits import read_fits_image

    imgs = []
    for p in sorted(q for q in folder.iterdir() if q.suffix.lower() in (".fits", ".fit", ".fts")):
        imgs.append(read_fits_image(p, mask=None, noise_sigma=0.0).data.astype(np.float32))
    if len({a.shape for a in imgs}) != 1:
        raise ValueError(f"{folder}: FITS images have different sizes; cut patches of one size first")
    return torch.from_numpy(np.stack(imgs))[:, None]


def _faces(size: int | None) -> torch.Tensor:
    """The embedded faces set ``(N, 1, H, W)`` in [0, 1] (``ambient_imaging.datasets.load_faces``)."""
    try:
        from ambient_imaging.datasets.embedded.faces import load_faces
    except ImportError:  # the datasets package without the embedded builders: scikit-image's LFW subset
        from skimage.data import lfw_subset

        x = torch.from_numpy(np.asarray(lfw_subset(), dtype=np.float32))[:, None]
    else:
        train, _heldout = load_faces()  # the held-out faces stay out of training (memorisation tests)
        x = torch.as_tensor(np.asarray(train)).float()
        if x.ndim == 3:
            x = x[:, None]
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


def _build_images(cfg: TrainConfig) -> TrainingData:
    """``mask``: PixelMask (dust, erasing a fraction ``corruption``) [+ noise σ_n]; ``noise``: GaussianNoise(σ_n).

    Images are mapped to ``[-1, 1]`` before corruption (``scale_rule``); each image's
    mask/noise is drawn once, deterministically from ``(seed, index)``. A mixed set (``--clean-data``,
    or a FITS folder mixing complete and masked / clean and noisy files) is built by
    :func:`~.mixed_images.mixed_image_data`.
    """
    from .mixed_images import mixed_image_data

    mixed = mixed_image_data(cfg)
    if mixed is not None:
        return mixed
    x, what = load_image_stack(cfg)
    c, h, w = (int(s) for s in x.shape[1:])
    sigma_n = float(cfg.noise_sigma)
    corruption = cfg.corruption if cfg.operator == "mask" else 0.0
    if cfg.operator == "mask":
        desc = f"{cfg.corruption:.0%} of pixels erased" + (f", noise σ_n={sigma_n:g}" if sigma_n else "")
    else:
        desc = f"Gaussian noise σ_n={sigma_n:g}"
    ds: Dataset
    if float(x.min()) >= 0.0 and float(x.max()) <= 1.0:
        from ambient_imaging.datasets import CorruptedImages

        ds = CorruptedImages(x, corruption=corruption, noise_sigma=sigma_n, seed=cfg.seed, value_range=(-1.0, 1.0))
        if loss_class(cfg.loss).needs_reference:  # the oracle baseline needs the clean image as "reference"
            ds = ds.evaluation_view()
        norm = Normalisation.unit_range()
    else:  # e.g. FITS or .npy data in physical units: affine map of the set's range to -1..1
        x, norm = _to_unit_range(x)
        ds = SimulatedMeasurements(x, corruption_operator(cfg, (h, w)), seed=cfg.seed)
    return TrainingData(
        dataset=ds,
        family=cfg.operator,
        image_shape=(c, h, w),
        is_complex=False,
        mask_channels=1 if cfg.operator == "mask" else 0,
        noise_sigma=sigma_n,
        scale_rule=norm.describe(),
        notes=[f"{len(ds)} images from {what}, {h}x{w}, {desc}"],
        normalisation=norm,
    )


def _build_mri(cfg: TrainConfig) -> TrainingData:
    """Undersampled multi-coil k-space from a fastMRI folder (or one ``.h5`` file).

    Slices come from :class:`ambient_imaging.datasets.FastMRISlices`: k-space
    ``y`` (Nc, H, W) divided by its measurement scale, the ``MultiCoilMRI``
    operator (ESPIRiT maps, the file's or a retrospective line mask), one
    complex image channel and one mask channel (the k-space mask).
    Fully sampled files are undersampled by ``MaskSpec(mask_kind, acceleration, center_fraction, seed)``.
    """
    from ambient_imaging.datasets import FastMRISlices
    from ambient_imaging.datasets.io import check_same_layout

    path = Path(cfg.data)
    if not path.exists():
        raise FileNotFoundError(f"fastMRI data not found: {path}")
    path = resolve_build_folder(path)[0]  # a `data build mri-brain --out DIR` folder: its train/ files
    files = fastmri_files(path)
    if not files:
        raise ValueError(f"{path}: no .h5 files here (expected fastMRI-layout HDF5 files)")
    from .mix import data_mix, mri_clean_files

    files = files + mri_clean_files(cfg)  # --clean-data: fully sampled files trained beside --data
    mix = data_mix(files, cfg)
    # fully sampled files are undersampled by the one mask rule reconstruction uses (files that are
    # undersampled already keep their own masks); in a mixed set they stay fully sampled (clean loss)
    spec = MaskSpec(cfg.mask_kind, float(cfg.acceleration), center_fraction=cfg.center_fraction, seed=cfg.seed)
    # the oracle baseline (evaluation only) learns from the fully sampled coil-combined images
    reference = True if loss_class(cfg.loss).needs_reference else None
    ds = FastMRISlices(files, mask_spec=None if mix.mixed else spec, reference=reference)
    check_same_layout(getattr(ds, "files", files), "--data")  # one layout, or the odd files named (before collation)
    if len(ds) == 0:
        raise ValueError(f"{path}: the fastMRI files hold no slices")
    item = ds[0]
    op = item["operator"]
    h, w = (int(s) for s in item["y"].shape[-2:])
    mc = op.mask_channels()
    from .statistics import measurement_summary

    # σ_n of every slice (the file's attrs["noise_sigma"] or a robust estimate) / its scale: the median
    stats = measurement_summary(ds, max_items=64)
    sigma_n = float(stats["noise_sigma"])
    return TrainingData(
        dataset=ds,
        family="mri",
        image_shape=(1, h, w),
        is_complex=True,
        mask_channels=0 if mc is None else int(mc.shape[1]),
        noise_sigma=sigma_n,
        scale_rule=ds.normalisation.describe(),
        notes=[f"{len(ds)} slices from {len(files)} fastMRI file(s) in {path}, {item['y'].shape[0]} coils, {h}x{w}"],
        normalisation=ds.normalisation,
        mask_spec=spec if item["meta"].get("retrospective") else _recorded_mask_spec(path),
        statistics=stats,
        mix=mix,
        clean_items=ds.fully_sampled_items() if mix.mixed else None,
    )


def _recorded_mask_spec(path: Path) -> MaskSpec | None:
    """The sampling protocol a data build recorded (``build.json`` ``"mask"`` in the folder or its parent)."""
    import json

    folder = path if path.is_dir() else path.parent
    for cand in (folder / "build.json", folder.parent / "build.json"):
        if cand.is_file():
            try:
                d = json.loads(cand.read_text()).get("mask")
                return MaskSpec.from_dict(d) if isinstance(d, dict) else None
            except (ValueError, TypeError):
                return None
    return None


def _recorded_sky_scales(path: Path) -> tuple[float | None, float]:
    """``(pixel scale in radians or None, k)`` that a ``data build`` folder records for its sky images
    (``build.json`` ``pixel_scale_rad`` and ``flux_per_image``; eht-crescents: 2.5 µas and 300);
    ``(None, 1.0)`` for other data."""
    import json

    meta = path / "build.json"
    if not (path.is_dir() and meta.is_file()):
        return None, 1.0
    try:
        rec = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None, 1.0
    if not isinstance(rec, dict):
        return None, 1.0
    pix, k = rec.get("pixel_scale_rad"), rec.get("flux_per_image", 1.0)
    pix = float(pix) if isinstance(pix, (int, float)) and pix > 0 else None
    k = float(k) if isinstance(k, (int, float)) and k > 0 else 1.0
    return pix, k


def _build_interferometry(cfg: TrainConfig) -> TrainingData:
    """Sky images observed by a simulated array (Earth-rotation synthesis, gridded uv).

    Each image gets its own observation: a random ``observation_hours`` window of
    hour angle within ±6 h for ``array`` at ``declination``; the visibilities
    are gridded to the image's uv grid (:meth:`Interferometer.to_gridded`), so
    rows are uv cells and the ambient loss subsamples them exactly. σ_n is the
    per-visibility noise.

    Units (Jy/pixel, :mod:`ambient_imaging.interferometry.flux`): each sky image
    (minimum subtracted, in Jy/pixel) is divided by its **total flux**, so every
    image sums to 1. ``scale_rule`` stores
    :func:`~ambient_imaging.interferometry.flux_rule` (``k = 1`` and the pixel
    scale); at reconstruction the scale is the total flux
    estimated from the shortest baselines (``estimate_total_flux``) — the same
    quantity for training skies and observed data, unlike a dirty-image peak
    (Jy/beam), whose ratio to the pixel peak depends on the source and array.
    """
    from ambient_imaging.operators import earth_rotation_uv, load_array

    x, what = load_image_stack(cfg)
    if x.shape[1] != 1:
        x = x.mean(dim=1, keepdim=True)
    from ambient_imaging.interferometry.flux import flux_rule

    x = x - x.amin(dim=(1, 2, 3), keepdim=True)
    total = x.sum(dim=(1, 2, 3), keepdim=True)
    if (total <= 0).any():
        raise ValueError(f"{what}: {int((total <= 0).sum())} sky images are constant (no flux above their minimum)")
    h, w = (int(s) for s in x.shape[-2:])
    layout = load_array(cfg.array)
    full = earth_rotation_uv(layout, cfg.declination, (-6.0, 6.0), n_times=145)  # every 5 min
    pixel_scale = full.nyquist_pixel_scale() / 1.1  # the whole ±6 h track fits the grid, with a margin
    recorded, k = _recorded_sky_scales(Path(cfg.data))  # a sky set that fixes its own scales (eht-crescents)
    if recorded is not None:
        if recorded > full.nyquist_pixel_scale():
            raise ValueError(f"{cfg.data}: its pixel scale {recorded:.4g} rad is coarser than the Nyquist scale "
                             f"{full.nyquist_pixel_scale():.4g} rad of {cfg.array}'s coverage (choose another array)")
        pixel_scale = recorded
    x = x / total * k  # the "flux" normalisation: prior images are k · sky / total_flux (k = 1 unless recorded)
    span = min(float(cfg.observation_hours), 12.0)
    sigma_n = float(cfg.noise_sigma)

    seen = (f"observed by {cfg.array} at δ={cfg.declination:g}° for {span:g} h each (gridded uv, pixel "
            f"{pixel_scale * 206264.806:.4g} arcsec)")
    if cfg.sky_observation == "noise":  # the sky images through Gaussian noise only (a plain, Tweedie prior)
        if sigma_n <= 0:
            raise ValueError("sky_observation = 'noise' needs noise_sigma > 0 (in prior units: images sum to k)")
        make_operator: Any = _Noise(sigma_n)
        seen = f"seen through Gaussian noise σ_n={sigma_n:g} (prior units), pixel {pixel_scale * 206264.806:.4g} arcsec"
    else:
        make_operator = _Observation(layout, cfg.declination, span, cfg.uv_times, (h, w), pixel_scale, sigma_n)
    ds = SimulatedMeasurements(x, make_operator, seed=cfg.seed)
    return TrainingData(
        dataset=ds,
        family="interferometry",
        image_shape=(1, h, w),
        is_complex=False,
        mask_channels=0 if cfg.sky_observation == "noise" else 1,
        noise_sigma=sigma_n,
        scale_rule=f"{Normalisation('flux').describe()}; {flux_rule(k, pixel_scale)}",
        normalisation=Normalisation("flux"),
        notes=[
            f"{len(ds)} sky images from {what}, {h}x{w}, {seen}",
            f"sky images normalised by their total flux (Jy/pixel / total flux × k: each sums to k = {k:g})",
        ],
    )
