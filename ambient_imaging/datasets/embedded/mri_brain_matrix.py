"""``mri-brain --matrix H,W``: the brain set at a scan's matrix, from the template at its native 1 mm.

The default ``mri-brain`` build (:mod:`.mri_brain`) area-resamples axial slices to 64×64. A prior
meant for a real scan must be trained at that scan's matrix (a convolutional prior run on another
size is outside its training distribution; ``reconstruct`` refuses it). This builder makes such a set:

* **native resolution** — slices of the MNI152 template at its 1 mm voxels, placed (centred on the
  head's bounding box) in an ``H × W`` field of view: ``H`` is the readout, ``W`` the phase encode
  (fastMRI: phase encodes are the columns). When the head does not fit in ``H × W`` (with a margin of
  :data:`MARGIN` pixels a side) every plane is area-downsampled by the same factor until it does;
  ``build.json`` records the resulting ``pixel_spacing_mm``;
* **several orientations** — axial, coronal and sagittal planes by default (``orientations``), each
  with the head's long axis along the readout, so a prior sees more than one kind of anatomy;
* **the same physics as the default build** — smooth random phase, birdcage coils (``n_coils``), a
  centred orthonormal FFT and complex thermal noise ``σ = p99(|x|) / snr``; training files are
  undersampled by ``MaskSpec("random", acceleration, seed=seed)`` at width ``W`` (its centre width
  follows fastMRI's 8 % of ``W`` at R = 4, the rule ``reconstruct`` applies to the same width);
* **the same split** — per orientation, contiguous blocks of slices; every 5th block held out with
  ``gap`` slices dropped on each side; one orientation per file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .mri_brain import _clean_files, _load_volume, _noisy_kspace, _smooth_phase, _split, _summary

__all__ = ["ORIENTATIONS", "MATRIX_SIZES", "MARGIN", "build_mri_brain_matrix", "parse_matrix", "template_planes"]

#: planes of the template: name -> (volume axis sliced, how a plane is laid out as (readout, phase encode))
ORIENTATIONS = ("axial", "coronal", "sagittal")

#: size presets of a matrix build: slice step per orientation, slices per train file, split block length
MATRIX_SIZES: dict[str, dict[str, int]] = {
    "default": {"step": 4, "per_file": 16, "block": 4},
    "small": {"step": 16, "per_file": 4, "block": 2},
}

#: empty pixels kept around the head on each side when deciding whether it fits at 1 mm
MARGIN = 4

#: the largest side a matrix build accepts
MAX_SIDE = 1024


def parse_matrix(text: str | int | Sequence[int]) -> tuple[int, int]:
    """``"230,180"`` / ``"230x180"`` / ``"128"`` / ``(230, 180)`` → ``(H, W)``: readout × phase encode.

    Raises ``ValueError`` naming the flag for anything else, or sides outside 16..:data:`MAX_SIDE`.
    """
    if isinstance(text, (int, np.integer)):
        parts: list[Any] = [int(text)]
    elif isinstance(text, str):
        parts = text.lower().replace("x", ",").split(",")
    else:
        parts = list(text)
    try:
        sides = [int(str(p).strip()) for p in parts]
    except ValueError:
        raise ValueError(f"--matrix {text}: give H,W (readout, phase encode), e.g. 230,180") from None
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or not all(16 <= s <= MAX_SIDE for s in sides):
        raise ValueError(f"--matrix {text}: give H,W with both sides in 16..{MAX_SIDE}, e.g. 230,180")
    return sides[0], sides[1]


def _planes(vol: np.ndarray, orientation: str) -> np.ndarray:
    """All planes of one orientation, ``(S, rows, cols)``: rows along the readout (the head's long axis)."""
    if orientation == "axial":  # (x, y, z): z planes, anterior up, left-right along the phase encode
        return np.ascontiguousarray(np.transpose(vol, (2, 1, 0))[:, ::-1, :])
    if orientation == "coronal":  # y planes, superior up, left-right along the phase encode
        return np.ascontiguousarray(np.transpose(vol, (1, 2, 0))[:, ::-1, :])
    if orientation == "sagittal":  # x planes, anterior up, inferior-superior along the phase encode
        return np.ascontiguousarray(vol[:, ::-1, :])
    raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")


def _extent(stack: np.ndarray, level: float = 0.05) -> tuple[int, int, int, int]:
    """Bounding box ``(r0, r1, c0, c1)`` (inclusive) of the head over every plane of ``stack``."""
    proj = (stack > level).any(axis=0)
    rows, cols = np.where(proj.any(axis=1))[0], np.where(proj.any(axis=0))[0]
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _place(stack: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """``stack`` ``(S, h, w)`` cut / zero-padded to ``shape`` with the centre of ``box`` at the centre."""
    h, w = shape
    out = np.zeros((stack.shape[0], h, w), dtype=np.float32)
    cy, cx = (box[0] + box[1] + 1) // 2, (box[2] + box[3] + 1) // 2
    oy, ox = h // 2 - cy, w // 2 - cx  # source row r lands on r + oy
    r0, r1 = max(0, -oy), min(stack.shape[1], h - oy)
    c0, c1 = max(0, -ox), min(stack.shape[2], w - ox)
    out[:, r0 + oy : r1 + oy, c0 + ox : c1 + ox] = stack[:, r0:r1, c0:c1]
    return out


def _resample(stack: np.ndarray, factor: float) -> np.ndarray:
    """Area-downsample every plane by ``factor`` (> 1; antialiased bilinear, as the default build)."""
    import torch.nn.functional as F

    size = (max(1, round(stack.shape[1] / factor)), max(1, round(stack.shape[2] / factor)))
    t = torch.from_numpy(np.ascontiguousarray(stack))[:, None]
    out = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)[:, 0]
    return out.clamp_min(0).numpy()


def template_planes(
    shape: tuple[int, int], orientations: Sequence[str] = ORIENTATIONS, step: int = 4, min_fill: float = 0.05,
    vol: np.ndarray | None = None,
) -> tuple[dict[str, tuple[np.ndarray, list[int]]], float]:
    """Planes of the template in an ``H × W`` field of view: ``({orientation: (images (S, H, W), indices)}, mm)``.

    Every ``step``-th plane of each orientation whose brain fill is at least ``min_fill``; ``mm``: the
    pixel spacing (1.0, the template's voxels, unless the head needs downsampling to fit; one factor
    for every orientation, so every plane has the same resolution).
    """
    vol = _load_volume() if vol is None else vol
    h, w = (int(s) for s in shape)
    stacks = {}
    factor = 1.0
    for o in orientations:
        planes = _planes(vol, o)
        keep = [i for i in range(0, planes.shape[0], int(step)) if (planes[i] > 0.05).mean() >= min_fill]
        stacks[o] = (planes[keep], keep)
        r0, r1, c0, c1 = _extent(planes[keep])
        factor = max(factor, (r1 - r0 + 1) / max(h - 2 * MARGIN, 1), (c1 - c0 + 1) / max(w - 2 * MARGIN, 1))
    out = {}
    for o, (planes, keep) in stacks.items():
        if factor > 1.0:
            planes = _resample(planes, factor)
        out[o] = (_place(planes, (h, w), _extent(planes)), keep)
    return out, float(factor)


def build_mri_brain_matrix(
    out_dir: str | Path,
    matrix: str | int | Sequence[int],
    size: str = "default",
    acceleration: float = 4.0,
    n_coils: int = 8,
    seed: int = 0,
    progress: bool = True,
    snr: float = 40.0,
    orientations: Sequence[str] | str | None = ORIENTATIONS,
    gap: int = 1,
    min_fill: float = 0.05,
    clean_fraction: float = 0.0,
) -> dict[str, Any]:
    """Build ``train/`` (undersampled) and ``val/`` (fully sampled) fastMRI files at matrix ``H × W``.

    Args mirror :func:`~ambient_imaging.datasets.embedded.mri_brain.build_mri_brain`; ``matrix``:
    ``(H, W)`` or ``"H,W"`` (readout × phase encode); ``orientations``: any of :data:`ORIENTATIONS`
    (a list or ``"axial,coronal"``); ``size``: a :data:`MATRIX_SIZES` preset (slice step, file size).

    Returns the summary written to ``build.json`` (``matrix`` is ``[H, W]``; ``orientations``,
    ``pixel_spacing_mm``, ``center_lines``, ``mask`` and the slices of each orientation recorded).
    """
    from tqdm.auto import tqdm

    from ambient_imaging.io import atomic_path
    from ambient_imaging.operators import birdcage_maps
    from ambient_imaging.problems import MaskSpec

    h, w = parse_matrix(matrix)
    if size not in MATRIX_SIZES:
        raise ValueError(f"build_mri_brain: size must be one of {sorted(MATRIX_SIZES)}, got {size!r}")
    orientations = ORIENTATIONS if orientations is None else orientations
    names = [o.strip() for o in orientations.split(",")] if isinstance(orientations, str) else list(orientations)
    bad = [o for o in names if o not in ORIENTATIONS]
    if not names or bad:
        raise ValueError(f"--orientations: give some of {', '.join(ORIENTATIONS)}, got {','.join(names)}")
    if not float(acceleration) >= 1.0:
        raise ValueError(f"build_mri_brain: acceleration must be >= 1, got {acceleration}")
    if int(n_coils) < 1 or not float(snr) > 0:
        raise ValueError(f"build_mri_brain: coils must be >= 1 and snr > 0, got {n_coils} and {snr}")
    preset, t0, out = MATRIX_SIZES[size], time.perf_counter(), Path(out_dir)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "val").mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(int(seed))
    planes, factor = template_planes((h, w), names, preset["step"], min_fill)
    maps = birdcage_maps(int(n_coils), (h, w), dtype=torch.complex128)
    spec = MaskSpec("random", float(acceleration), seed=int(seed))
    spacing = float(factor)  # mm: the template's voxels are 1 mm
    common = {"source": "MNI152 ICBM 2009a symmetric T1 (nilearn)", "snr": float(snr), "pixel_spacing_mm": spacing,
              "seed": int(seed), "dataset": "mri-brain", "size": size}
    jobs: list[tuple[str, str, np.ndarray, list[int], list[int]]] = []  # (split, orientation, imgs, chunk, zs)
    layout: dict[str, Any] = {}
    for o in names:
        imgs, zs = planes[o]
        blocks, held, val_idx, train_idx = _split(imgs.shape[0], preset["block"], gap)
        layout[o] = {"planes": len(zs), "train_slices": len(train_idx), "val_slices": len(val_idx),
                     "heldout_blocks": sorted(held)}
        jobs += [("train", o, imgs, train_idx[i : i + preset["per_file"]], zs)
                 for i in range(0, len(train_idx), preset["per_file"])]
        jobs += [("val", o, imgs, c, zs) for c in ([i for i in val_idx if blocks[i] == b] for b in sorted(held)) if c]
    n_train = sum(j[0] == "train" for j in jobs)
    clean = _clean_files(clean_fraction, n_train)
    files: list[dict[str, Any]] = []
    counts = {"train": 0, "val": 0}
    for split, o, imgs, idx, zs in tqdm(jobs, desc="mri-brain", unit="file", disable=not progress):
        n = counts[split]
        counts[split] += 1
        x = torch.from_numpy(imgs[idx]).to(torch.complex128) * _smooth_phase(len(idx), (h, w), g)
        k, sigma = _noisy_kspace(maps, x, imgs[idx], list(range(len(idx))), snr, g)
        name = f"mni152_{split}_{o}_{n:03d}.h5"
        attrs = {**common, "split": split, "orientation": o, "noise_sigma": sigma,
                 "template_slices": np.asarray([zs[i] for i in idx])}
        files.append(_write_matrix_file(out, name, split, k, spec, (h * spacing, w * spacing), attrs,
                                        undersample=split == "train" and n not in clean,
                                        acceleration=float(acceleration)))
    summary = _summary(size=size, seed=seed, acceleration=acceleration, clean_fraction=clean_fraction, clean=clean,
                       matrix=[h, w], n_coils=int(n_coils), snr=snr, spacing=spacing,
                       center_lines=spec.center_width(w), spec=spec, block=preset["block"], gap=gap,
                       held=set(), train_idx=list(range(sum(v["train_slices"] for v in layout.values()))),
                       val_idx=list(range(sum(v["val_slices"] for v in layout.values()))), files=files, t0=t0)
    summary["split"] = {"block": preset["block"], "gap": gap, "per_orientation": layout}
    summary.update(orientations=names, field_of_view_mm=[h * spacing, w * spacing], readout="H (rows)",
                   phase_encode="W (columns)", native_resolution=factor == 1.0,
                   command=f"ambient-imaging data build mri-brain --matrix {h},{w} --coils {int(n_coils)} "
                           f"--snr {float(snr):g} --acceleration {float(acceleration):g} --seed {int(seed)}"
                           + (f" --size {size}" if size != "default" else "")
                           + (f" --orientations {','.join(names)}" if names != list(ORIENTATIONS) else ""))
    with atomic_path(out / "build.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def _write_matrix_file(out: Path, name: str, split: str, k: torch.Tensor, spec: Any, fov: tuple[float, float],
                       attrs: dict[str, Any], undersample: bool, acceleration: float) -> dict[str, Any]:
    """One file of a matrix build: a train file undersampled by ``spec`` (one mask per slice, keyed by
    file name and slice, as ``reconstruct`` keys them) or a fully sampled val file with its RSS."""
    from ambient_imaging.operators import ifft2c, rss

    from ..fastmri import write_fastmri

    h, w = k.shape[-2:]
    if split == "train":
        lines = torch.stack([spec.sample((h, w), key=f"{name}:{j}")[0] for j in range(k.shape[0])])
        kw: dict[str, Any] = {"mask": lines if undersample else None}
        k = k * lines[:, None, None, :] if undersample else k
        attrs = {**attrs, "acceleration": acceleration}
    else:
        kw = {"reconstruction_rss": rss(ifft2c(k), dim=1).to(torch.float32)}
    path = write_fastmri(out / split / name, k.to(torch.complex64), fov_mm=fov, compression="gzip", attrs=attrs, **kw)
    return {"file": str(path.relative_to(out)), "slices": int(k.shape[0]), "bytes": path.stat().st_size}
