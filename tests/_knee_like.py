"""A fastMRI-knee-like multi-coil file written by our writer (reusable by any test).

Like a fastMRI multi-coil knee file: k-space ``(slices, 15, 640, 368)`` complex64, phase encodes along
``W = 368`` with zero-padding columns at both edges declared by ``encodingLimits`` (fastMRI's rule:
``padding_left = W//2 − center``, ``padding_right = padding_left + maximum + 1``), 2× readout
oversampling (the object fills the central half of the 640 readout rows), an ISMRMRD header with
``encodedSpace`` 640×368 and ``reconSpace`` 320×320, and ``reconstruction_rss`` ``(slices, 320, 320)``
= the centre crop of the RSS of the (zero-padded) fully sampled coil images, as fastMRI computes it.

``make_knee_like(path)`` writes it and returns a :class:`KneeLike` with the path and the ground truth
(the coil maps used, normalised to ``Σ|S|² = 1``). Variants: ``header=False`` (no ``ismrmrd_header``:
the padding must be detected) and ``undersample=R`` (a truly undersampled file: only the sampled
columns hold data and the mask is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ambient_imaging.datasets.fastmri import center_crop, write_fastmri
from ambient_imaging.operators import fft2c, ifft2c, rss

KNEE_SHAPE = (640, 368)
KNEE_PADDING = (17, 17)  # zero columns left/right of the acquired band (fastMRI knee files have ~17 each side)
KNEE_RECON = (320, 320)


@dataclass
class KneeLike:
    path: Path
    maps: np.ndarray  # (Nc, H, W) complex64, Σ|S|² = 1 on the object
    band: tuple[int, int]  # acquired columns [lo, hi)
    shape: tuple[int, int]
    recon: tuple[int, int]
    coils: int
    slices: int


def coil_maps(coils: int, shape: tuple[int, int]) -> np.ndarray:
    """Smooth coil sensitivities ``(Nc, H, W)`` complex64 on a ring around the object, ``Σ|S|² = 1``."""
    h, w = shape
    yy, xx = np.meshgrid(np.linspace(-2, 2, h, dtype=np.float32), np.linspace(-1, 1, w, dtype=np.float32),
                         indexing="ij")
    ang = 2 * np.pi * np.arange(coils, dtype=np.float32) / coils
    cy, cx = 1.3 * np.sin(ang)[:, None, None], 1.3 * np.cos(ang)[:, None, None]
    mag = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 1.2)
    maps = mag * np.exp(1j * (0.7 * np.arange(coils)[:, None, None] + 0.3 * xx + 0.2 * yy))
    return (maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))).astype(np.complex64)


def knee_image(shape: tuple[int, int], slice_index: int, seed: int = 0) -> np.ndarray:
    """A smooth complex "knee" phantom filling the central half of the readout rows (2× oversampling)."""
    h, w = shape
    g = np.random.default_rng(seed + 101 * slice_index)
    yy, xx = np.meshgrid(np.linspace(-2, 2, h), np.linspace(-1, 1, w), indexing="ij")  # rows span 2× the object
    img = np.zeros(shape)
    ellipses = [(0.0, 0.0, 0.85, 0.8, 1.0), (0.25, -0.1, 0.35, 0.3, -0.4), (-0.3, 0.15, 0.3, 0.25, 0.5)]
    ellipses += [(g.uniform(-0.6, 0.6), g.uniform(-0.5, 0.5), g.uniform(0.05, 0.2), g.uniform(0.05, 0.2),
                  g.uniform(-0.3, 0.3)) for _ in range(6)]
    for cy, cx, ry, rx, v in ellipses:
        img += v * (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0)
    img = np.clip(img, 0, None) + 0.05 * (np.abs(yy) < 0.9) * (np.abs(xx) < 0.85)
    phase = np.exp(1j * (0.4 * xx + 0.3 * yy + 0.2 * slice_index))
    return (img * phase).astype(np.complex64)


def make_knee_like(
    path: str | Path,
    slices: int = 2,
    coils: int = 15,
    shape: tuple[int, int] = KNEE_SHAPE,
    padding: tuple[int, int] = KNEE_PADDING,
    recon: tuple[int, int] = KNEE_RECON,
    header: bool = True,
    undersample: float | None = None,
    noise: float = 1e-4,
    seed: int = 0,
) -> KneeLike:
    """Write a fastMRI-knee-like file to ``path`` (see the module docstring); fully sampled unless ``undersample``."""
    h, w = shape
    lo, hi = padding[0], w - padding[1]
    maps = torch.from_numpy(coil_maps(coils, shape))
    g = np.random.default_rng(seed)
    ks = []
    for s in range(slices):
        x = torch.from_numpy(knee_image(shape, s, seed))
        k = fft2c(maps * x[None]).numpy()
        k = k + noise * (g.standard_normal(k.shape) + 1j * g.standard_normal(k.shape)).astype(np.complex64)
        k[..., :lo] = 0  # zero padding: the scanner never acquired these phase encodes
        k[..., hi:] = 0
        ks.append(k.astype(np.complex64))
    k = np.stack(ks)
    ref = center_crop(rss(ifft2c(torch.from_numpy(k)), dim=1).numpy(), recon).astype(np.float32)
    mask = None
    if undersample is not None:
        from ambient_imaging.operators import apply_band, mri_mask

        m, _ = mri_mask((1, w), undersample, center_fraction=0.08, kind="random", seed=seed)
        mask = apply_band(m[0, 0].numpy(), (lo, hi))
        k = k * mask
    fov = (280.0, 280.0 * w / h * 2)  # readout FOV is twice the phase FOV's share: 2× oversampling
    write_fastmri(path, k, mask=mask, reconstruction_rss=ref, header_xml=None if header else False,
                  fov_mm=fov, padding=padding if header else None, recon_matrix=recon if header else None,
                  attrs={"acquisition": "CORPD_FBK", "patient_id": f"kneelike-{seed}"})
    return KneeLike(Path(path), maps.numpy(), (lo, hi), (h, w), tuple(recon), coils, slices)
