"""Embedded ``faces``: the 25x25 LFW faces bundled with scikit-image (``skimage.data.lfw_subset``).

``lfw_subset()`` holds 200 grey images; the first 100 are faces and the last 100 are
non-face crops (scikit-image docs). We keep the 100 faces, shuffle them with ``seed``,
and split them into a training set (80; "small": 40) and held-out clean faces (20; "small": 10)
used by the quality metric. Stored as ``train.npy`` / ``heldout.npy`` (float32 ``(N, 25, 25)``
in ``[0, 1]``) plus ``build.json``; :func:`load_faces` returns ``(N, 1, H, W)`` stacks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ambient_imaging.io import atomic_path

__all__ = ["build_faces", "load_faces", "faces_array"]

SIZES = {"default": (80, 20), "small": (40, 10)}


def faces_array() -> np.ndarray:
    """The 100 LFW faces from scikit-image, float32 ``(100, 25, 25)`` in ``[0, 1]``."""
    from skimage import data

    imgs = np.asarray(data.lfw_subset(), dtype=np.float32)
    if imgs.shape != (200, 25, 25):
        raise ValueError(f"skimage.data.lfw_subset(): expected (200, 25, 25), got {imgs.shape}")
    return np.clip(imgs[:100], 0.0, 1.0)


def _split(size: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in SIZES:
        raise ValueError(f"faces: size must be one of {sorted(SIZES)}, got {size!r}")
    n_train, n_held = SIZES[size]
    faces = faces_array()
    perm = np.random.default_rng(seed).permutation(len(faces))
    return faces[perm[:n_train]], faces[perm[n_train : n_train + n_held]]


def build_faces(
    out_dir: str | os.PathLike, size: str = "default", seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Write the ``faces`` set to ``out_dir``; returns the summary also stored as ``build.json``."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, held = _split(size, seed)
    for name, arr in (("train.npy", train), ("heldout.npy", held)):
        with atomic_path(out / name, suffix=".npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
    summary = {
        "dataset": "faces",
        "source": "skimage.data.lfw_subset() (first 100 of 200 images are faces)",
        "size": size,
        "seed": seed,
        "image_shape": [1, 25, 25],
        "n_train": int(len(train)),
        "n_heldout": int(len(held)),
        "value_range": [0.0, 1.0],
        "files": ["train.npy", "heldout.npy"],
    }
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    with atomic_path(out / "build.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    if progress:
        print(f"faces: {len(train)} train + {len(held)} held-out 25x25 faces -> {out}")
    return summary


def load_faces(
    directory: str | os.PathLike | None = None,
    size: int | tuple[int, int] | None = None,
    *,
    subset: str = "default",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The faces set as ``(train, heldout)``, each float32 ``(N, 1, H, W)`` in ``[0, 1]``.

    Args:
        directory: a folder written by :func:`build_faces`; ``None`` builds the same split in
            memory from scikit-image (no files needed).
        size: optional output size (int or ``(H, W)``): antialiased bilinear resize, clipped
            to ``[0, 1]``. Not needed for the networks: the UNet pads 25x25 inputs to 28/32.
        subset: ``"default"`` (80/20) or ``"small"`` (40/10); only when ``directory`` is ``None``.
        seed: split seed; only when ``directory`` is ``None``.
    """
    if directory is None:
        train, held = _split(subset, seed)
    else:
        p = Path(directory)
        for name in ("train.npy", "heldout.npy"):
            if not (p / name).is_file():
                raise FileNotFoundError(f"{p / name}: missing (build with build_faces / `data build faces`)")
        train, held = np.load(p / "train.npy"), np.load(p / "heldout.npy")
    return _as_stack(train, size), _as_stack(held, size)


def _as_stack(x: np.ndarray, size: int | tuple[int, int] | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if size is None:
        return np.ascontiguousarray(x)
    hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(hw) < 1:
        raise ValueError(f"load_faces: size must be positive, got {size}")
    if hw == tuple(x.shape[-2:]):
        return np.ascontiguousarray(x)
    import torch

    t = torch.nn.functional.interpolate(torch.from_numpy(x), size=hw, mode="bilinear", antialias=True,
                                        align_corners=False)  # fmt: skip
    return t.clamp_(0.0, 1.0).numpy()
