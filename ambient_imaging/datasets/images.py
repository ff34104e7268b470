"""Image datasets with synthetic corruption drawn once, before training sees the data.

:class:`CorruptedImages` turns clean images into measurements ``y = M ⊙ x + ε``
(dust masks and/or Gaussian noise). The corruption of image ``i`` is a deterministic
function of ``(seed, i)``, so every epoch, worker and run sees the same measurements,
and items never carry the clean image: it is reachable only through
:meth:`CorruptedImages.clean` / :meth:`CorruptedImages.evaluation_view`, for evaluation code.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ambient_imaging.operators import GaussianNoise, LinearOperator, PixelMask, dust_mask

__all__ = ["CorruptedImages", "load_image_folder", "load_image_collection", "read_image_file", "IMAGE_SUFFIXES",
           "COLLECTION_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
#: what :func:`load_image_collection` reads (FITS through :func:`ambient_imaging.datasets.fits.read_fits_image`)
COLLECTION_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".fits", ".fit", ".fts")


def load_image_folder(folder: str | os.PathLike, grayscale: bool = False) -> Tensor:
    """Load every PNG/JPG/NPY image in ``folder`` (sorted by name) as ``(N, C, H, W)`` float in ``[0, 1]``.

    8-bit images are divided by 255; ``.npy`` files must hold ``(H, W)``, ``(H, W, C)`` or
    ``(N, H, W)`` floats already in ``[0, 1]``. All images must share one size.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    imgs: list[np.ndarray] = []
    for f in files:
        if f.suffix.lower() == ".npy":
            a = np.load(f)
            if a.ndim == 3 and a.shape[-1] not in (1, 3, 4):
                imgs.extend(a[:, :, :, None])
                continue
        else:
            from skimage import io as skio

            try:
                with warnings.catch_warnings():  # imageio's plugin probing warns on undecodable files
                    warnings.simplefilter("ignore", DeprecationWarning)
                    a = skio.imread(f)
            except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
                raise ValueError(f"{f}: cannot read image ({err})") from err
            a = a.astype(np.float64) / (65535.0 if a.dtype == np.uint16 else 255.0 if a.dtype == np.uint8 else 1.0)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"{f}: expected an (H, W[, C]) image, got shape {a.shape}")
        if a.shape[-1] == 4:
            a = a[..., :3]
        imgs.append(a)
    if grayscale:
        imgs = [a.mean(axis=-1, keepdims=True) if a.shape[-1] == 3 else a for a in imgs]
    shapes = {a.shape for a in imgs}
    if len(shapes) != 1:
        raise ValueError(f"{folder}: images have different shapes {sorted(shapes)}")
    return torch.from_numpy(np.stack(imgs).astype(np.float32)).permute(0, 3, 1, 2).contiguous()


def _unit_range(a: np.ndarray) -> np.ndarray:
    """Integers by their type's maximum; floats kept when in ``[0, 1]``, else min–max scaled."""
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0.0 and hi <= 1.0:
        return a
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """One image file (PNG/JPEG/TIFF/BMP, FITS, or a 2-D/3-D ``.npy``) as float64 ``(H, W, C)`` in ``[0, 1]``.

    8/16-bit images are divided by their type's maximum; float data (FITS, ``.npy``) outside
    ``[0, 1]`` is min–max scaled per image; an alpha channel is dropped.

    Raises:
        ValueError: ``"<file>: cannot read image (...)"`` for an unreadable file or a shape that
            is not an image.
    """
    f = Path(path)
    suffix = f.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(f, allow_pickle=False)
        elif suffix in (".fits", ".fit", ".fts"):
            from ambient_imaging.datasets.fits import read_fits_image

            a = read_fits_image(f, mask=None, noise_sigma=0.0).data
        else:
            from PIL import Image

            with Image.open(f) as im:
                a = np.asarray(im.convert("RGB") if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV") else im)
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
        raise ValueError(f"{f}: cannot read image ({type(err).__name__}: {err})") from err
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or min(a.shape[:2]) < 2:
        raise ValueError(f"{f}: cannot read image (expected (H, W) or (H, W, C) with C in 1-4, got {a.shape})")
    if a.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        a = a[..., :-1]
    return _unit_range(a)


def load_image_collection(folder: str | os.PathLike, size: int) -> Tensor:
    """Every image in ``folder`` (sorted by name), centre-cropped to a square and resized to ``size``.

    Reads PNG/JPEG/TIFF/BMP, FITS and ``.npy`` files (:data:`COLLECTION_SUFFIXES`, see
    :func:`read_image_file`) of any sizes. Returns ``(N, C, size, size)`` float32 in ``[0, 1]``:
    ``C = 1`` when every image is grey, else 3 (grey images repeated).

    Raises:
        FileNotFoundError: no such folder. ValueError: no images, or an unreadable file (one line
            naming it).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if int(size) < 4:
        raise ValueError(f"image size must be >= 4 pixels, got {size}")
    files = sorted(f for f in root.iterdir()
                   if f.is_file() and f.suffix.lower() in COLLECTION_SUFFIXES and not f.name.startswith("."))
    if not files:
        raise ValueError(f"{root}: no images (looked for {', '.join(COLLECTION_SUFFIXES)})")
    imgs = [read_image_file(f) for f in files]
    channels = 3 if any(a.shape[-1] == 3 for a in imgs) else 1
    out = torch.empty(len(imgs), channels, int(size), int(size))
    for i, a in enumerate(imgs):
        h, w = a.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        t = torch.from_numpy(np.ascontiguousarray(a[top : top + s, left : left + s])).permute(2, 0, 1)[None].float()
        if tuple(t.shape[-2:]) != (size, size):
            t = torch.nn.functional.interpolate(t, size=(int(size), int(size)), mode="bilinear", antialias=True,
                                                align_corners=False)  # fmt: skip
        out[i] = t[0].expand(channels, -1, -1).clamp(0.0, 1.0)
    return out.contiguous()


def _load_path(path: Path) -> Tensor:
    """A folder of images, or one ``.npy`` stack ``(N, H, W)`` / ``(N, C, H, W)``."""
    if path.is_dir():
        return load_image_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{path}: expected a folder of images or a .npy stack")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read as .npy ({err})") from err
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"{path}: expected an (N, H, W) or (N, C, H, W) stack, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class CorruptedImages(Dataset):
    """Clean images made into fixed, synthetic measurements.

    Args:
        images: ``(N, C, H, W)`` tensor/array in ``[0, 1]``, a folder of PNG/JPG/NPY images, or one
            ``.npy`` file holding ``(N, H, W)`` or ``(N, C, H, W)``.
        corruption: fraction of pixels erased ("dust", independent per pixel; one mask shared by channels).
        noise_sigma: Gaussian noise std *in the output value range*.
        seed: the corruption of image ``i`` uses a generator seeded with ``(seed, i)``.
        value_range: images are mapped from ``[0, 1]`` linearly to this range (default ``(-1, 1)``).

    Items: ``"y"`` ``(C, H, W)``, ``"operator"`` (``PixelMask(mask, σ)`` when ``corruption > 0`` —
    the same map as ``GaussianNoise(σ) @ PixelMask(mask)``, with noise on measured pixels only —
    else ``GaussianNoise(σ)``; batch 1), ``"scale"`` ``1.0``, ``"meta"`` ``{"index": i}``.
    No item carries the clean image.
    """

    def __init__(
        self,
        images: Tensor | str | os.PathLike,
        corruption: float = 0.0,
        noise_sigma: float = 0.0,
        seed: int = 0,
        value_range: Sequence[float] = (-1.0, 1.0),
    ):
        if isinstance(images, (str, os.PathLike)):
            images = _load_path(Path(images))
        elif isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if not isinstance(images, Tensor):
            kind = type(images).__name__
            raise TypeError(f"CorruptedImages: images must be a tensor, an array, a folder or a .npy file, got {kind}")
        if images.ndim != 4:
            raise ValueError(f"CorruptedImages: images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if images.is_complex() or not images.is_floating_point():
            raise TypeError(f"CorruptedImages: images must be real floats in [0, 1], got {images.dtype}")
        lo_in, hi_in = float(images.min()), float(images.max())
        if lo_in < -1e-6 or hi_in > 1 + 1e-6:
            raise ValueError(f"CorruptedImages: images must be in [0, 1], got values in [{lo_in:.3g}, {hi_in:.3g}]")
        if not 0.0 <= corruption < 1.0:
            raise ValueError(f"CorruptedImages: corruption must be in [0, 1), got {corruption}")
        if not noise_sigma >= 0.0:
            raise ValueError(f"CorruptedImages: noise_sigma must be >= 0, got {noise_sigma}")
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"CorruptedImages: value_range must be (lo, hi) with hi > lo, got {value_range}")
        self.corruption, self.noise_sigma, self.seed = float(corruption), float(noise_sigma), int(seed)
        self.value_range = (lo, hi)
        self._clean = (images.detach().float().cpu() * (hi - lo) + lo).contiguous()
        n, c, h, w = self._clean.shape
        self._masks = torch.ones(n, 1, h, w, dtype=torch.bool)
        self._y = torch.empty_like(self._clean)
        for i in range(n):  # drawn once, deterministically per (seed, index)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
            if self.corruption > 0:
                self._masks[i] = dust_mask((1, h, w), self.corruption, generator=g)[0]
            y = self._clean[i] * self._masks[i]
            if self.noise_sigma > 0:
                y = y + self.noise_sigma * torch.randn(y.shape, generator=g) * self._masks[i]
            self._y[i] = y

    def __len__(self) -> int:
        return self._clean.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._clean.shape[1:])  # type: ignore[return-value]

    def operator(self, i: int) -> LinearOperator:
        """The measurement operator of image ``i`` (batch 1)."""
        if self.corruption > 0:
            return PixelMask(self._masks[i][None].clone(), noise_sigma=self.noise_sigma)
        return GaussianNoise(self.noise_sigma)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"CorruptedImages: index {i} out of range for {len(self)} images")
        i = i % len(self)
        return {"y": self._y[i].clone(), "operator": self.operator(i), "scale": 1.0, "meta": {"index": i}}

    def clean(self, i: int) -> Tensor:
        """The clean image ``i`` in ``value_range`` — for evaluation only, never for training."""
        return self._clean[i].clone()

    def evaluation_images(self) -> Tensor:
        """All clean images ``(N, C, H, W)`` in ``value_range`` — for evaluation only, never for training."""
        return self._clean.clone()

    def evaluation_view(self) -> _EvaluationView:
        """A dataset whose items also carry ``"reference"`` (the clean image), for evaluation code."""
        return _EvaluationView(self)


class _EvaluationView(Dataset):
    """Items of a :class:`CorruptedImages` plus ``"reference"`` (evaluation only)."""

    def __init__(self, base: CorruptedImages):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        item["reference"] = self.base.clean(item["meta"]["index"])
        return item
