"""``mri-brain``: simulated multi-coil brain k-space from the MNI152 T1 template bundled with nilearn.

Built offline from ``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``
(the file ``nilearn.datasets.load_mni152_template`` reads; loaded here with nibabel directly so
no fetcher can touch the network). See ``datasets/mri-brain.md`` for the card.

Pipeline per axial slice: rescale to [0, 1] (template max) → pad to square → area-resample to
``matrix²`` → smooth synthetic phase (real MR images are complex: B0/receive phase varies slowly
in space) → birdcage coil maps → centred orthonormal FFT → complex thermal noise with
``σ = p99(|x|) / snr`` (``E|n|² = σ²``; orthonormal FFT, so σ is also the per-pixel image noise).

Split: slices are grouped in contiguous blocks of ``block`` slices; every 5th block is held out
(val), and ``gap`` slices on each side of a held-out block are dropped, so no training slice is
an immediate neighbour (near-duplicate) of a held-out one. Train k-space is retrospectively
undersampled (1-D random columns with a fully sampled ACS, one mask per slice, stored in
``mask``) — no fully sampled training data is written; val k-space is fully sampled and has
``reconstruction_rss``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["build_mri_brain", "template_path", "acs_lines_for", "SIZES"]

# size -> matrix, coils, slice step, slices per train file, split block length
SIZES: dict[str, dict[str, int]] = {
    "default": {"matrix": 64, "step": 1, "per_file": 16, "block": 8},
    "small": {"matrix": 32, "step": 3, "per_file": 8, "block": 4},
}


def acs_lines_for(matrix: int, acceleration: float) -> int:
    """ACS width of the build's masks: :class:`~ambient_imaging.problems.MaskSpec`'s default rule."""
    from ambient_imaging.problems import MaskSpec

    return MaskSpec(acceleration=float(acceleration)).center_width(int(matrix))


def template_path() -> Path:
    """Path of the MNI152 2009 T1 template inside the installed nilearn package."""
    import nilearn

    p = Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    if not p.is_file():
        raise FileNotFoundError(f"MNI152 template not found at {p} (is nilearn installed completely?)")
    return p


def _load_volume() -> np.ndarray:
    import nibabel

    vol = np.asarray(nibabel.load(str(template_path())).get_fdata(dtype=np.float32))
    return vol / vol.max()  # as nilearn.datasets.load_mni152_template: rescaled to [0, 1]


def _slices(vol: np.ndarray, matrix: int, step: int, min_fill: float) -> tuple[np.ndarray, list[int]]:
    """Axial slices (anterior up), padded square and area-resampled to ``matrix``; near-empty ones skipped."""
    import torch.nn.functional as F

    keep = [z for z in range(0, vol.shape[2], step) if (vol[:, :, z] > 0.05).mean() >= min_fill]
    imgs = np.stack([vol[:, :, z].T[::-1] for z in keep])  # (S, y, x)
    s, h, w = imgs.shape
    n = max(h, w)
    pad = np.zeros((s, n, n), dtype=np.float32)
    pad[:, (n - h) // 2 : (n - h) // 2 + h, (n - w) // 2 : (n - w) // 2 + w] = imgs
    t = torch.from_numpy(pad)[:, None]
    out = F.interpolate(t, size=(matrix, matrix), mode="bilinear", antialias=True, align_corners=False)[:, 0]
    return out.clamp_min(0).numpy(), keep


def _smooth_phase(s: int, shape: int | tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """Random low-order phase maps ``φ = a + b·u + c·v + d·(u² + v²)`` (u, v ∈ [-1, 1]), |coeffs| ≲ π/2,
    on a ``matrix × matrix`` or ``H × W`` grid."""
    h, w = (shape, shape) if isinstance(shape, int) else shape
    vv, uu = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                            torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
    c = (torch.rand(s, 4, generator=g, dtype=torch.float64) * 2 - 1) * torch.tensor([math.pi, 1.0, 1.0, 0.8])
    c = c[:, :, None, None]
    phi = c[:, 0] + c[:, 1] * uu + c[:, 2] * vv + c[:, 3] * (uu**2 + vv**2)
    return torch.polar(torch.ones_like(phi), phi)


def build_mri_brain(
    out_dir: str | Path,
    size: str = "default",
    acceleration: float = 4.0,
    n_coils: int = 8,
    matrix: int | None = None,
    seed: int = 0,
    progress: bool = True,
    snr: float = 40.0,
    block: int | None = None,
    gap: int = 1,
    min_fill: float = 0.05,
    clean_fraction: float = 0.0,
    slices_per_file: int | None = None,
) -> dict[str, Any]:
    """Build ``train/`` (undersampled at ``acceleration``) and ``val/`` (fully sampled) fastMRI files.

    Args:
        out_dir: output folder (``train/``, ``val/``, ``build.json`` are written inside).
        size: ``"default"`` (64², every slice) or ``"small"`` (32², every 3rd slice; for tests).
        acceleration: R of the training masks: ``MaskSpec("random", acceleration, seed=seed)``, one
            mask per slice keyed by file name and slice (the rule ``reconstruct`` uses; ``build.json``
            records it under ``"mask"``).
        n_coils, matrix: override the size preset.
        seed: everything random (phase, noise, masks) derives from it; same seed, same bytes of data.
        snr: ``p99(|x|) / σ`` of the complex thermal noise.
        block, gap: split layout (see the module docstring). min_fill: skip slices where less than
            this fraction of pixels is brain.
        clean_fraction: fraction of the ``train/`` files written fully sampled (no mask; a mixed set:
            ``train`` gives them the clean loss), spread evenly over the files; the rest at ``acceleration``.
        slices_per_file: training slices per file (default: the preset's; fewer: finer clean fractions).

    Returns:
        summary dict (also written to ``build.json``): files, bytes, slices, seconds, parameters.
    """
    from tqdm.auto import tqdm

    from ambient_imaging.io import atomic_path
    from ambient_imaging.operators import birdcage_maps, ifft2c, rss
    from ambient_imaging.problems import MaskSpec

    if size not in SIZES:
        raise ValueError(f"build_mri_brain: size must be one of {sorted(SIZES)}, got {size!r}")
    if not float(acceleration) >= 1.0:
        raise ValueError(f"build_mri_brain: acceleration must be >= 1, got {acceleration}")
    preset = dict(SIZES[size])
    matrix = int(matrix or preset["matrix"])
    n_coils = int(n_coils)
    if n_coils < 1:
        raise ValueError(f"build_mri_brain: n_coils must be >= 1, got {n_coils}")
    block = int(block or preset["block"])
    per_file = _per_file(slices_per_file, preset)  # checked before anything is written
    t0 = time.perf_counter()
    out = Path(out_dir)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "val").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(int(seed))

    imgs, zs = _slices(_load_volume(), matrix, preset["step"], min_fill)
    s = imgs.shape[0]
    x = torch.from_numpy(imgs).to(torch.complex128) * _smooth_phase(s, matrix, g)  # (S, H, W)
    maps = birdcage_maps(n_coils, (matrix, matrix), dtype=torch.complex128)  # (Nc, H, W)
    blocks, held, val_idx, train_idx = _split(s, block, gap)
    fov = 233.0  # mm: the padded template width at 1 mm voxels
    spacing = fov / matrix
    spec = MaskSpec("random", float(acceleration), seed=int(seed))
    files: list[dict[str, Any]] = []

    common = {"source": "MNI152 ICBM 2009a symmetric T1 (nilearn)", "snr": float(snr), "pixel_spacing_mm": spacing,
              "seed": int(seed), "dataset": "mri-brain", "size": size}
    train_chunks = _chunks(train_idx, per_file)
    val_chunks = [c for b in sorted(held) if (c := [i for i in val_idx if blocks[i] == b])]
    clean = _clean_files(clean_fraction, len(train_chunks))
    bar = tqdm(total=len(train_chunks) + len(val_chunks), desc="mri-brain", unit="file", disable=not progress)
    for n, idx in enumerate(train_chunks):
        k, sigma = _noisy_kspace(maps, x, imgs, idx, snr, g)
        name = f"mni152_train_{n:03d}.h5"
        # one mask per slice, drawn by the rule reconstruction uses (key: file name and slice)
        lines = torch.stack([spec.sample((matrix, matrix), key=f"{name}:{j}")[0] for j in range(len(idx))])
        if n not in clean:
            k = k * lines[:, None, None, :]
        files.append(_write_file(out, out / "train" / name, k, fov, mask=None if n in clean else lines,
                                 attrs={**common, "split": "train", "acceleration": float(acceleration),
                                        "noise_sigma": sigma, "template_slices": np.asarray([zs[i] for i in idx])}))
        bar.update()
    for n, idx in enumerate(val_chunks):
        k, sigma = _noisy_kspace(maps, x, imgs, idx, snr, g)
        ref = rss(ifft2c(k), dim=1).to(torch.float32)
        files.append(_write_file(out, out / "val" / f"mni152_val_{n:03d}.h5", k, fov, reconstruction_rss=ref,
                                 attrs={**common, "split": "val", "noise_sigma": sigma,
                                        "template_slices": np.asarray([zs[i] for i in idx])}))
        bar.update()
    bar.close()
    summary = _summary(size=size, seed=seed, acceleration=acceleration, clean_fraction=clean_fraction,
                       clean=clean, matrix=matrix, n_coils=n_coils, snr=snr, spacing=spacing,
                       center_lines=spec.center_width(matrix), spec=spec, block=block, gap=gap, held=held,
                       train_idx=train_idx, val_idx=val_idx, files=files, t0=t0, slices_per_file=per_file)
    with atomic_path(out / "build.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def _split(s: int, block: int, gap: int) -> tuple[np.ndarray, set[int], list[int], list[int]]:
    """Block split of ``s`` slices: ``(blocks, held, val_idx, train_idx)`` (see the module docstring)."""
    blocks = np.arange(s) // block
    n_blocks = int(blocks.max()) + 1
    held = {b for b in range(n_blocks) if b % 5 == 2}  # every 5th block, starting inside the brain
    val_idx = [i for i in range(s) if blocks[i] in held]
    near = {j for i in val_idx for j in range(i - gap, i + gap + 1)}
    train_idx = [i for i in range(s) if i not in near]
    return blocks, held, val_idx, train_idx


def _per_file(slices_per_file: int | None, preset: dict[str, Any]) -> int:
    """Training slices per file: the preset's unless given; ≥ 1 (0 must not fall back to the preset)."""
    per_file = int(preset["per_file"] if slices_per_file is None else slices_per_file)
    if per_file < 1:
        raise ValueError(f"build_mri_brain: slices_per_file must be >= 1, got {per_file}")
    return per_file


def _chunks(idx: list[int], per_file: int) -> list[list[int]]:
    """``idx`` in consecutive files of ``per_file`` (≥ 1) slices (the last may hold fewer)."""
    return [idx[i : i + per_file] for i in range(0, len(idx), per_file)]


def _clean_files(clean_fraction: float, n_files: int) -> set[int]:
    """Indices of the train files written fully sampled: ``clean_fraction`` of them, spread evenly."""
    if not 0.0 <= float(clean_fraction) <= 1.0:
        raise ValueError(f"build_mri_brain: clean_fraction must be in [0, 1], got {clean_fraction}")
    n_clean = int(round(float(clean_fraction) * n_files))
    return {int(i) for i in np.linspace(0, n_files - 1, n_clean).round()} if n_clean else set()


def _noisy_kspace(
    maps: torch.Tensor, x: torch.Tensor, imgs: np.ndarray, idx: list[int], snr: float, g: torch.Generator
) -> tuple[torch.Tensor, float]:
    """Multi-coil k-space of slices ``idx`` plus complex thermal noise ``σ = p99(|x|) / snr``; ``(k, σ)``."""
    from ambient_imaging.operators import fft2c

    coil = maps[None] * x[idx][:, None]  # (n, Nc, H, W)
    k = fft2c(coil)
    sigma = float(np.percentile(imgs[idx], 99)) / snr
    re = torch.randn(k.shape, generator=g, dtype=torch.float64)
    im = torch.randn(k.shape, generator=g, dtype=torch.float64)
    return k + sigma * torch.complex(re, im) / math.sqrt(2.0), sigma


def _write_file(out: Path, path: Path, k: torch.Tensor, fov: float, **kwargs: Any) -> dict[str, Any]:
    """Write one fastMRI file of k-space ``k`` (extra ``write_fastmri`` keywords) and return its ``files`` entry."""
    from ..fastmri import write_fastmri

    path = write_fastmri(path, k.to(torch.complex64), fov_mm=(fov, fov), compression="gzip", **kwargs)
    return {"file": str(path.relative_to(out)), "slices": int(k.shape[0]), "bytes": path.stat().st_size}


def _summary(
    *, size: str, seed: int, acceleration: float, clean_fraction: float, clean: set[int], matrix: int,
    n_coils: int, snr: float, spacing: float, center_lines: int, spec: Any, block: int, gap: int,
    held: set[int], train_idx: list[int], val_idx: list[int], files: list[dict[str, Any]], t0: float,
    slices_per_file: int | None = None,
) -> dict[str, Any]:
    """The build summary written to ``build.json`` (files, bytes, slices, seconds, parameters)."""
    src = template_path()
    return {
        "dataset": "mri-brain",
        "size": size,
        "seed": int(seed),
        "acceleration": float(acceleration),
        "clean_fraction": float(clean_fraction),
        "clean_files": sorted(clean),
        "slices_per_file": slices_per_file,
        "matrix": matrix,
        "n_coils": n_coils,
        "snr": float(snr),
        "pixel_spacing_mm": spacing,
        "center_lines": center_lines,
        "mask": spec.to_dict(),
        "split": {"block": block, "gap": gap, "heldout_blocks": sorted(held)},
        "train_slices": len(train_idx),
        "val_slices": len(val_idx),
        "files": files,
        "bytes": int(sum(f["bytes"] for f in files)),
        "source": {"package": "nilearn", "version": _version("nilearn"), "file": src.name,
                   "sha256": hashlib.sha256(src.read_bytes()).hexdigest()},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _version(pkg: str) -> str:
    from importlib.metadata import version

    try:
        return version(pkg)
    except Exception:  # noqa: BLE001
        return "unknown"
