"""ESPIRiT with several sets of maps (soft SENSE; Uecker et al. 2014, BART ``ecalib -m M``).

The calibration is sigpy's ``EspiritCalib`` (calibration matrix → SVD → kernels above ``thresh``
→ the per-pixel ``Nc × Nc`` operator ``G(p) = Σ_k g_k(p) g_k(p)^H`` of the image-domain kernels),
but instead of a power iteration for the dominant eigenvector, every pixel's matrix is
diagonalised (``numpy.linalg.eigh``): the ``M`` leading eigenvectors are the ``M`` sets of maps
and their eigenvalues say where each set is needed. An eigenvalue near 1 means "this coil
combination explains the data here". Where the field of view is smaller than the object (the
image wraps around), two superposed signals live at the same pixel and the *second* eigenvalue is
near 1 there too: one set of maps cannot explain such data, two can. Maps whose eigenvalue is
below ``crop`` are set to 0 (outside the object, or where a further set is not needed).

:func:`second_set_fraction` turns the second eigenvalue map into the number that decides the
default M (see :func:`choose_map_sets`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["espirit_map_sets", "espirit_eigen", "second_set_fraction", "choose_map_sets",
           "REDUCED_FOV_FRACTION"]

#: fraction of the object's pixels whose second ESPIRiT eigenvalue exceeds the crop above which the
#: data are taken as reduced-FOV (wrapped) and two sets of maps are used by default
REDUCED_FOV_FRACTION = 0.03


def _centred_ifft(k: np.ndarray) -> np.ndarray:
    ax = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=ax), axes=ax, norm="ortho"), axes=ax)


def _calib_shape(calib_width: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(calib_width, (tuple, list)):
        return int(calib_width[0]), int(calib_width[1])
    return int(calib_width), int(calib_width)


def _kernels(k: np.ndarray, calib_width: int | tuple[int, int], thresh: float, kernel_width: int) -> np.ndarray:
    """ESPIRiT kernels ``(n, Nc, kw, kw)`` from the centred calibration block of ``k`` (Nc, H, W):
    ``calib_width²``, or ``rows × columns`` for a pair (the readout is fully sampled, so a narrow ACS
    can calibrate on more rows than columns)."""
    nc, h, w = k.shape
    ch, cw = _calib_shape(calib_width)
    r0, c0 = h // 2 - ch // 2, w // 2 - cw // 2
    calib = k[:, r0 : r0 + ch, c0 : c0 + cw]
    kw = kernel_width
    # blocks: (n_blocks, Nc*kw*kw), the layout of sigpy's array_to_blocks
    blocks = np.lib.stride_tricks.sliding_window_view(calib, (kw, kw), axis=(1, 2))  # (Nc, nr, nc, kw, kw)
    mat = blocks.transpose(1, 2, 0, 3, 4).reshape(-1, nc * kw * kw)
    _, s, vh = np.linalg.svd(mat, full_matrices=False)
    vh = vh[s > thresh * s.max()]
    return vh.reshape(len(vh), nc, kw, kw)


def espirit_eigen(kspace: np.ndarray, calib_width: int | tuple[int, int] = 24, thresh: float = 0.02,
                  kernel_width: int = 6,
                  sets: int = 2, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The ``sets`` leading eigenvectors ``(M, Nc, H, W)`` and eigenvalues ``(M, H, W)`` of the ESPIRiT
    operator of one slice ``(Nc, H, W)`` (eigenvalues ≈ 1 where a set explains the data)."""
    k = np.asarray(kspace, dtype=np.complex128)
    nc, h, w = k.shape
    kern = _kernels(k, calib_width, thresh, kernel_width)
    kw = kernel_width
    gram = np.zeros((h * w, nc, nc), dtype=np.complex128)
    r0, c0 = h // 2 - kw // 2, w // 2 - kw // 2
    for i in range(0, len(kern), chunk):
        part = np.zeros((min(chunk, len(kern) - i), nc, h, w), dtype=np.complex128)
        part[:, :, r0 : r0 + kw, c0 : c0 + kw] = kern[i : i + chunk]
        g = _centred_ifft(part).reshape(len(part), nc, h * w).transpose(2, 1, 0)  # (P, Nc, n)
        gram += g @ g.conj().transpose(0, 2, 1)
    gram *= h * w / kw**2
    vals, vecs = np.linalg.eigh(gram)  # ascending
    m = int(sets)
    vals = vals[:, ::-1][:, :m]  # (P, M)
    vecs = vecs[:, :, ::-1][:, :, :m]  # (P, Nc, M)
    maps = vecs.transpose(2, 1, 0).reshape(m, nc, h, w)
    # phase relative to coil 0 (sigpy's convention), per set
    ref = maps[:, :1]
    maps = maps * (ref.conj() / np.maximum(np.abs(ref), 1e-30))
    return maps, vals.T.reshape(m, h, w).real


def espirit_map_sets(kspace: Tensor, calib_width: int = 24, thresh: float = 0.02, kernel_width: int = 6,
                     crop: float = 0.95, sets: int = 2) -> Tensor:
    """``sets`` ESPIRiT map sets ``(M, Nc, H, W)`` (or ``(B, M, Nc, H, W)`` for ``(B, Nc, H, W)`` input),
    complex64 on the input's device, each set zero where its eigenvalue is below ``crop``.

    Set 0 is the usual single set of maps (``Σ_c |S_0c|² = 1`` on the object); set 1 is non-zero
    only where a second signal folds onto the pixel (reduced FOV). Arguments as
    :func:`~ambient_imaging.operators.espirit_maps`.
    """
    if not isinstance(kspace, Tensor) or not kspace.is_complex():
        raise TypeError("espirit_map_sets: kspace must be a complex torch.Tensor")
    if kspace.ndim not in (3, 4):
        raise ValueError(f"espirit_map_sets: kspace must be (Nc, H, W) or (B, Nc, H, W), got {tuple(kspace.shape)}")
    if int(sets) < 1 or int(sets) > kspace.shape[-3]:
        raise ValueError(f"espirit_map_sets: sets must be in 1..{kspace.shape[-3]} (the coil count), got {sets}")
    ch, cw = _calib_shape(calib_width)
    if not 0 < kernel_width < min(ch, cw) or ch > kspace.shape[-2] or cw > kspace.shape[-1]:
        raise ValueError(f"espirit_map_sets: need 0 < kernel_width < calib_width <= {min(kspace.shape[-2:])}, "
                         f"got {kernel_width} and {calib_width}")
    batched = kspace.ndim == 4
    out = []
    for k in (kspace if batched else kspace[None]):
        maps, vals = espirit_eigen(k.detach().cpu().numpy(), calib_width, thresh, kernel_width, int(sets))
        maps = maps * (vals > crop)[:, None]
        out.append(torch.as_tensor(maps.astype(np.complex64)))
    res = torch.stack(out).to(kspace.device)
    return res if batched else res[0]


def second_set_fraction(kspace: np.ndarray | Tensor, calib_width: int = 24, thresh: float = 0.02,
                        kernel_width: int = 6, crop: float = 0.95) -> float:
    """Fraction of the object's pixels (first eigenvalue above ``crop``) whose second eigenvalue is
    above ``crop`` too: ~0 for a field of view that holds the object, a few to tens of percent where
    the image wraps around (reduced FOV)."""
    k = kspace.detach().cpu().numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    _, vals = espirit_eigen(k, calib_width, thresh, kernel_width, 2)
    obj = vals[0] > crop
    return float((vals[1] > crop)[obj].mean()) if obj.any() else 0.0


def choose_map_sets(kspace: np.ndarray | Tensor, calib_width: int = 24, kernel_width: int = 6,
                    crop: float = 0.95) -> tuple[int, float]:
    """The default number of map sets for one slice and the evidence: ``(2, fraction)`` when
    :func:`second_set_fraction` exceeds :data:`REDUCED_FOV_FRACTION` (reduced FOV), else ``(1, fraction)``."""
    frac = second_set_fraction(kspace, calib_width, kernel_width=kernel_width, crop=crop)
    return (2 if frac > REDUCED_FOV_FRACTION else 1), frac
