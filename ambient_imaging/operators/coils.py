"""Coil compression: SVD/PCA of the coil dimension to ``n`` virtual coils (Buehrer et al. 2007; Huang et al. 2008).

The multi-coil data ``k`` (``Nc`` coils) is mapped by an ``n × Nc`` matrix ``A`` with orthonormal rows,
the ``n`` dominant left singular vectors of the coil-by-sample matrix (all slices and k-space points
of the input: one matrix per volume, so the virtual coils are the same on every slice). ``A`` is a
partial isometry: the energy kept is ``‖A k‖² / ‖k‖² = Σ_{i<n} s_i² / Σ s_i²``, and ``n = Nc`` is
lossless (a unitary change of coils: root-sum-of-squares images, SENSE reconstructions and the
data-consistency term are unchanged). Zero (unsampled or padding) columns do not affect ``A``, and
compression commutes with the k-space mask, so compressing undersampled data equals undersampling
compressed data. Sensitivity maps must be estimated after compression (ESPIRiT on the virtual coils).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["compress_coils", "coil_compression_matrix"]


def _coil_matrix(k: np.ndarray) -> np.ndarray:
    """``(Nc, N)`` samples of ``(..., Nc, H, W)`` data (coil axis -3)."""
    nc = k.shape[-3]
    return np.moveaxis(k, -3, 0).reshape(nc, -1)


def coil_compression_matrix(kspace: np.ndarray | Tensor, n: int) -> tuple[np.ndarray, float]:
    """The ``(n, Nc)`` compression matrix of ``kspace`` ``(..., Nc, H, W)`` and the fraction of energy it keeps.

    Rows are the conjugated dominant eigenvectors of the ``Nc × Nc`` coil covariance ``K Kᴴ`` (computed
    in float64), sorted by decreasing eigenvalue; the sign/phase of each row is fixed so that its
    largest-magnitude entry is real and positive (deterministic output).
    """
    k = kspace.detach().cpu().numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    if not np.iscomplexobj(k) or k.ndim < 3:
        raise ValueError(f"coil_compression_matrix: need complex k-space (..., coils, H, W), got {k.dtype} {k.shape}")
    nc = int(k.shape[-3])
    n = int(n)
    if not 1 <= n <= nc:
        raise ValueError(f"coil_compression_matrix: n must be in [1, {nc}] (the number of coils), got {n}")
    x = _coil_matrix(k).astype(np.complex128)
    cov = x @ x.conj().T
    vals, vecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    u = vecs[:, :n]
    idx = np.argmax(np.abs(u), axis=0)
    phase = u[idx, np.arange(n)] / np.abs(u[idx, np.arange(n)]).clip(1e-300)
    u = u / phase[None]
    total = float(vals.sum())
    kept = float(vals[:n].sum() / total) if total > 0 else 1.0
    return u.conj().T, kept


def compress_coils(
    kspace: np.ndarray | Tensor, n: int, matrix: np.ndarray | None = None
) -> np.ndarray | Tensor:
    """Compress ``kspace`` ``(..., Nc, H, W)`` to ``n`` virtual coils (same type, dtype and device as the input).

    ``matrix``: an ``(n, Nc)`` matrix from :func:`coil_compression_matrix` (e.g. computed on a whole
    volume and applied slice by slice); computed from ``kspace`` when ``None``. ``n = Nc`` returns a
    unitary mix of the coils (lossless).
    """
    is_t = isinstance(kspace, Tensor)
    k = kspace.detach().cpu().numpy() if is_t else np.asarray(kspace)
    nc = int(k.shape[-3]) if k.ndim >= 3 else 0
    if matrix is None:
        matrix, _ = coil_compression_matrix(k, n)
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape != (int(n), nc):
        raise ValueError(f"compress_coils: matrix must be ({n}, {nc}), got {matrix.shape}")
    out = np.einsum("vc,...chw->...vhw", matrix.astype(np.complex128), k).astype(k.dtype, copy=False)
    if is_t:
        return torch.from_numpy(np.ascontiguousarray(out)).to(kspace.device)
    return out
