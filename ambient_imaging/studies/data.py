"""The images of a memorisation study: the embedded faces or a user's folder, split once and kept.

A study writes its exact training and held-out images to ``OUT/data/{train,heldout}.npy`` on
its first run; the training runs read ``train.npy`` and memorisation is measured against it,
and a resumed study reuses both files (the images it started with).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_study_faces", "load_study_folder", "prepare_study_data", "atomic_bytes", "atomic_json", "save_npy"]


def atomic_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def save_npy(path: Path, x: torch.Tensor | np.ndarray) -> None:
    """Write a float32 ``.npy`` atomically (never pickled)."""
    buf = io.BytesIO()
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    np.save(buf, a.astype(np.float32), allow_pickle=False)
    atomic_bytes(path, buf.getvalue())


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp(0.0, 1.0)


def _check_n_train(n_train: int | None) -> None:
    if n_train is not None and n_train < 2:
        raise ValueError(f"n_train must be >= 2 (memorisation needs a nearest and a second-nearest), got {n_train}")


def load_study_faces(size: int | None = 32, n_train: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded faces: ``(train, heldout)``, each ``(N, 1, H, W)`` float32 in ``[0, 1]``.

    The 100 faces of scikit-image's LFW subset in the split of
    :func:`ambient_imaging.datasets.embedded.faces.load_faces` (80 training, 20 held out),
    resized to ``size`` pixels (antialiased bilinear). ``n_train`` keeps the first ``n_train``
    training faces; the training faces left out join the held-out set (no prior ever sees
    them), which gives the distribution-level quality metric more reference images.
    """
    from ambient_imaging.datasets.embedded.faces import load_faces

    _check_n_train(n_train)
    train_np, held_np = load_faces()
    train, heldout = torch.from_numpy(train_np).float(), torch.from_numpy(held_np).float()
    if size is not None:
        train, heldout = _resize(train, int(size)), _resize(heldout, int(size))
    if n_train is not None and n_train < train.shape[0]:
        train, heldout = train[:n_train], torch.cat([heldout, train[n_train:]])
    return train.contiguous(), heldout.contiguous()


def load_study_folder(
    folder: str | os.PathLike,
    size: int = 32,
    n_train: int | None = None,
    heldout_fraction: float = 0.2,
    split_seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A user's image folder as ``(train, heldout)`` ``(N, C, size, size)`` in ``[0, 1]``.

    Every readable image (:func:`ambient_imaging.datasets.images.load_image_collection`:
    PNG/JPEG/TIFF/FITS/NumPy, centre-cropped and resized) is shuffled with ``split_seed``; the
    last ``round(heldout_fraction × N)`` (at least 1) are held out. ``n_train`` keeps the first
    ``n_train`` training images; the rest join the held-out set.
    """
    from ambient_imaging.datasets.images import load_image_collection

    _check_n_train(n_train)
    if not 0.0 < float(heldout_fraction) < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    images = load_image_collection(folder, int(size))
    n = images.shape[0]
    n_held = max(1, int(round(float(heldout_fraction) * n)))
    if n - n_held < 2:
        raise ValueError(f"{folder}: {n} images are too few for a study (need >= 2 training + 1 held-out)")
    perm = torch.from_numpy(np.random.default_rng(int(split_seed)).permutation(n))
    train, heldout = images[perm[: n - n_held]], images[perm[n - n_held :]]
    if n_train is not None and n_train < train.shape[0]:
        train, heldout = train[:n_train], torch.cat([heldout, train[n_train:]])
    return train.contiguous(), heldout.contiguous()


def prepare_study_data(
    out: Path, size: int, n_train: int | None, data: str | os.PathLike | None = None
) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """Write (once) the exact training / held-out images of the study to ``OUT/data``; return them."""
    d = out / "data"
    train_p, held_p = d / "train.npy", d / "heldout.npy"
    if train_p.is_file() and held_p.is_file():  # resuming: the study keeps the images it started with
        train = torch.from_numpy(np.load(train_p, allow_pickle=False))
        heldout = torch.from_numpy(np.load(held_p, allow_pickle=False))
        return train_p, train, heldout
    if data is None:
        train, heldout = load_study_faces(size, n_train)
    else:
        train, heldout = load_study_folder(data, size, n_train)
    d.mkdir(parents=True, exist_ok=True)
    save_npy(held_p, heldout)
    save_npy(train_p, train)
    return train_p, train, heldout
