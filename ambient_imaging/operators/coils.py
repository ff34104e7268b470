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

__all__ = ["compress_coils", "coil_compression_matrix", "resize_kspace", "size_mismatch_note"]


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


def resize_kspace(kspace: np.ndarray | Tensor, shape: tuple[int, int]) -> np.ndarray | Tensor:
    """Centre-crop or zero-pad the last two (k-space) axes to ``shape``: the same field of view on another grid.

    Used when a prior was trained on another matrix size than a file's (e.g. a 64×64 prior and a
    640×368 fastMRI knee): cropping k-space to the prior's size keeps the whole field of view at a
    lower resolution (the prior sees the whole object, as in training); zero-padding back afterwards
    is sinc interpolation to the file's grid. Values are rescaled by ``sqrt(h·w / (H·W))`` so that
    image intensities (orthonormal FFT) are unchanged. Centre index ``N // 2`` maps to ``n // 2``
    (fastMRI's centred FFT convention); masks can be resized with the same function (cast back to bool).
    """
    is_t = isinstance(kspace, Tensor)
    k = kspace
    h_in, w_in = int(k.shape[-2]), int(k.shape[-1])
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ValueError(f"resize_kspace: shape must be positive, got {shape}")
    out_shape = (*k.shape[:-2], h, w)
    out = torch.zeros(out_shape, dtype=k.dtype, device=k.device) if is_t else np.zeros(out_shape, dtype=k.dtype)
    src, dst = [], []
    for n_in, n_out in ((h_in, h), (w_in, w)):
        n = min(n_in, n_out)
        src.append(slice(n_in // 2 - n // 2, n_in // 2 - n // 2 + n))
        dst.append(slice(n_out // 2 - n // 2, n_out // 2 - n // 2 + n))
    out[..., dst[0], dst[1]] = k[..., src[0], src[1]]
    if (is_t and out.dtype != torch.bool) or (not is_t and out.dtype != bool):
        out = out * float(np.sqrt(h * w / (h_in * w_in)))
    return out


def size_mismatch_note(file_shape: tuple[int, int], prior_shape: tuple[int, int], coils_file: int | None = None,
                       coils_used: int | None = None) -> str:
    """One line telling the user how a file of another size/coil count is reconstructed with a prior ("" if none)."""
    parts = []
    if tuple(file_shape) != tuple(prior_shape):
        (fh, fw), (ph, pw) = file_shape, prior_shape
        res = "lower" if ph * pw < fh * fw else "the same"
        parts.append(
            f"the prior was trained at {ph}x{pw}, the k-space is {fh}x{fw}: the central "
            f"{min(fh, ph)}x{min(fw, pw)} k-space block is reconstructed (same field of view, {res} resolution) "
            "and zero-padded back to the file's grid for scoring")
    if coils_file is not None and coils_used is not None and coils_file != coils_used:
        parts.append(f"{coils_file} coils compressed to {coils_used} virtual coils")
    return "; ".join(parts)
