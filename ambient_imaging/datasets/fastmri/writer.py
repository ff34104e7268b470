"""Writing fastMRI-layout files (atomic) and retrospective undersampling of a fully sampled file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from ambient_imaging.io import atomic_path

from .band import acquired_band
from .header import minimal_ismrmrd_header
from .layout import check_layout, open_fastmri

__all__ = ["write_fastmri", "undersample_file", "copy_slices"]


def write_fastmri(
    path: str | Path,
    kspace: np.ndarray | Tensor,
    mask: np.ndarray | Tensor | None = None,
    reconstruction_rss: np.ndarray | Tensor | None = None,
    header_xml: str | bool | None = None,
    attrs: dict[str, Any] | None = None,
    fov_mm: tuple[float, float] | None = None,
    compression: str | None = None,
    *,
    padding: tuple[int, int] | None = None,
    recon_matrix: tuple[int, int] | None = None,
) -> Path:
    """Write a fastMRI-layout file atomically.

    Args:
        kspace: ``(slices, coils, H, W)`` or single-coil ``(slices, H, W)`` complex.
        mask: ``(W,)`` columns, ``(H, W)``, or per slice; stored as ``float32`` 0/1 like fastMRI.
        reconstruction_rss: optional ``(slices, h, w)`` reference magnitude.
        header_xml: ISMRMRD XML; a minimal one (matrix ``H × W``, ``fov_mm``, and ``padding`` /
            ``recon_matrix`` as :func:`minimal_ismrmrd_header` writes them) is generated if ``None``;
            ``False`` writes no ``ismrmrd_header`` (a header-less file).
        padding: zero-padding columns ``(left, right)`` written as ``encodingLimits`` (fastMRI's rule).
        recon_matrix: ``reconSpace`` matrix ``(h, w)`` (fastMRI knee: ``(320, 320)``).
        attrs: extra root attributes; ``acquisition`` defaults to ``"unknown"`` and ``max`` /
            ``norm`` are computed from ``reconstruction_rss`` when given.
        compression: HDF5 filter for ``kspace`` (e.g. ``"gzip"``; fastMRI files use none). Zeroed
            (unsampled) columns of undersampled k-space compress to almost nothing.
    """
    k = kspace.detach().cpu().numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    if not np.iscomplexobj(k):
        raise TypeError(f"write_fastmri: kspace must be complex, got {k.dtype}")
    if k.ndim not in (3, 4):
        raise ValueError(f"write_fastmri: kspace must be (slices, coils, H, W) or (slices, H, W), got {k.shape}")
    h, w = k.shape[-2:]
    path = Path(path)
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64), chunks=(1, *k.shape[1:]), compression=compression)
        if mask is not None:
            m = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
            if m.shape[-1] != w:
                raise ValueError(f"write_fastmri: mask width {m.shape[-1]} does not match the k-space width {w}")
            f.create_dataset("mask", data=(m != 0).astype(np.float32))
        if reconstruction_rss is not None:
            r = reconstruction_rss
            r = np.asarray(r.detach().cpu().numpy() if isinstance(r, Tensor) else r, dtype=np.float32)
            f.create_dataset("reconstruction_rss", data=r)
            f.attrs["max"] = float(r.max())
            f.attrs["norm"] = float(np.linalg.norm(r))
        if header_xml is not False:
            xml = header_xml if isinstance(header_xml, str) and header_xml else minimal_ismrmrd_header(
                (h, w), fov_mm, padding=padding, recon_matrix=recon_matrix)
            f.create_dataset("ismrmrd_header", data=np.bytes_(xml))
        f.attrs["acquisition"] = "unknown"
        for key, val in (attrs or {}).items():
            f.attrs[key] = val
    return path


def undersample_file(
    src: str | Path,
    dst: str | Path,
    acceleration: float,
    center_fraction: float = 0.08,
    kind: str = "random",
    seed: int = 0,
    same_mask: bool = True,
    padding: str | Sequence[int] | None = "auto",
) -> dict[str, Any]:
    """Retrospectively undersample a fully sampled fastMRI file into ``dst`` (atomic).

    One 1-D mask (``same_mask``) or one per slice is drawn with :func:`~ambient_imaging.operators.mri_mask`
    (lines = columns) over the full width and zeroed outside the acquired band (``padding``, see
    :func:`acquired_band`; fastMRI's ``apply_mask(padding=...)``); unsampled k-space is zeroed and the
    mask is stored. References (``reconstruction_rss``) and the header are copied. Returns
    ``{"acceleration": achieved R over the band, "sampled_fraction", "band": (lo, hi), ...}``.
    """
    from ambient_imaging.operators import apply_band, mri_mask

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"undersample_file: destination {dst} is the source file")
    with open_fastmri(src) as f:
        s, nc, h, w, single = check_layout(f, src)
        k = np.asarray(f["kspace"][()], dtype=np.complex64)
        if not np.isfinite(k.view(np.float32)).all():
            raise ValueError(f"{src}: k-space holds NaN or Inf values")
        rss_ref, xml, attrs = _carried(f)
        band = acquired_band(src, padding, f=f, kspace=k[s // 2])
    g = torch.Generator().manual_seed(int(seed))
    masks, _ = mri_mask((h, w), acceleration, center_fraction=center_fraction, kind=kind, batch=1 if same_mask else s,
                        generator=g)
    m = apply_band(masks, band.bounds).numpy()
    lines = m[:, 0, :] if np.all(m == m[:, :1, :]) else None
    kview = k if not single else k[:, None]
    if lines is not None:
        kview *= (lines[:, None, None, :] if not same_mask else lines[0][None, None, None, :])
        stored = lines[0] if same_mask else lines
    else:
        kview *= m[:, None] if not same_mask else m[0][None, None]
        stored = m[0] if same_mask else m
    write_fastmri(dst, k, mask=stored, reconstruction_rss=rss_ref, header_xml=xml,
                  attrs={**attrs, "acceleration": float(acceleration), "mask_kind": kind, "mask_seed": int(seed)})
    frac = float(np.mean(np.asarray(stored)[..., band.lo : band.hi]))
    return {"file": str(dst), "acceleration": 1.0 / frac, "sampled_fraction": frac, "band": band.bounds,
            "padding_source": band.source}


def copy_slices(src: str | Path, dst: str | Path, slices: Sequence[int]) -> Path:
    """Write the slices ``slices`` of the fastMRI file ``src`` to ``dst`` (atomic), in increasing order.

    k-space, the reference (``reconstruction_rss``), a per-slice mask, the ISMRMRD header and the root
    attributes are kept (``max`` / ``norm`` recomputed from the kept references), so that ``dst`` reads and
    scores like ``src`` restricted to those slices.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError(f"copy_slices: destination {dst} is the source file")
    idx = sorted({int(i) for i in slices})
    with open_fastmri(src) as f:
        n = check_layout(f, src)[0]
        if not idx or idx[0] < 0 or idx[-1] >= n:
            raise ValueError(f"copy_slices: slices {idx} are not in {src} ({n} slices)")
        k = np.asarray(f["kspace"][idx])
        rss, xml, attrs = _carried(f, idx)
        mask = f["mask"][()] if "mask" in f else None
        if mask is not None and mask.ndim >= 2 and mask.shape[0] == n and n > 1:
            mask = mask[idx]
    return write_fastmri(dst, k, mask=mask, reconstruction_rss=rss, header_xml=False if xml is None else xml,
                         attrs=attrs)


def _carried(f, slices: list[int] | None = None) -> tuple[np.ndarray | None, str | None, dict[str, Any]]:
    """What a file derived from the open fastMRI file ``f`` keeps: its references (``reconstruction_rss``, the
    ``slices`` of them, all by default), its ISMRMRD header XML (``None`` when it has none) and its root
    attributes (``max`` / ``norm`` left out: :func:`write_fastmri` recomputes them from the references)."""
    rss = None
    if "reconstruction_rss" in f:
        rss = f["reconstruction_rss"][()] if slices is None else f["reconstruction_rss"][slices]
    hdr = f["ismrmrd_header"][()] if "ismrmrd_header" in f else None
    xml = None if hdr is None else bytes(hdr).decode("utf-8", "replace")
    return rss, xml, {a: f.attrs[a] for a in f.attrs if a not in ("max", "norm")}
