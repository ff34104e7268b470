"""Coil sensitivity maps: ESPIRiT calibration (sigpy), simulated birdcage maps, root-sum-of-squares."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["espirit_maps", "birdcage_maps", "rss"]


def espirit_maps(
    kspace: Tensor,
    calib_width: int = 24,
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
    show_pbar: bool = False,
    where: str | None = None,
    sets: int = 1,
) -> Tensor:
    """ESPIRiT coil sensitivities from k-space with a fully sampled centre (``sigpy.mri.app.EspiritCalib``).

    Args:
        kspace: complex k-space ``(Nc, H, W)``, or ``(B, Nc, H, W)`` for a stack of slices
            (calibrated one by one, with a progress bar when ``show_pbar``). Only the central
            ``calib_width × calib_width`` block is used; it must be fully sampled.
        calib_width: side of the calibration block. thresh: singular-value threshold of the
            calibration matrix. kernel_width: k-space kernel size. crop: eigenvalue threshold
            below which maps are set to 0 (outside the object). max_iter: power iterations.
        where: what the k-space is (e.g. ``"brain1.h5 slice 7"``); every error message starts with it.

    Returns:
        ``complex64`` maps of the input's shape on the input's device, normalised so that
        ``Σ_c |S_c|² = 1`` inside the support, phase relative to coil 0 (sigpy convention).
        The calibration itself runs on the CPU (sigpy with numpy), whatever the input device.
    """
    try:
        if int(sets) != 1:
            from .espirit_sets import espirit_map_sets

            return espirit_map_sets(kspace, calib_width, thresh, kernel_width, crop, int(sets))
        return _espirit(kspace, calib_width, thresh, kernel_width, crop, max_iter, show_pbar)
    except (ValueError, TypeError, RuntimeError, np.linalg.LinAlgError, FloatingPointError) as err:
        if where is None:
            raise
        msg = str(err).removeprefix("espirit_maps: ")
        kind = TypeError if isinstance(err, TypeError) else ValueError
        raise kind(f"{where}: ESPIRiT coil-map estimation failed: {msg}") from err


def _espirit(kspace: Tensor, calib_width: int, thresh: float, kernel_width: int, crop: float, max_iter: int,
             show_pbar: bool) -> Tensor:
    import sigpy.mri.app
    from tqdm.auto import tqdm

    if not isinstance(kspace, Tensor):
        raise TypeError(f"espirit_maps: kspace must be a torch.Tensor, got {type(kspace).__name__}")
    if not kspace.is_complex():
        raise TypeError(f"espirit_maps: kspace must be complex, got {kspace.dtype}")
    if kspace.ndim not in (3, 4):
        raise ValueError(f"espirit_maps: kspace must be (Nc, H, W) or (B, Nc, H, W), got {tuple(kspace.shape)}")
    h, w = kspace.shape[-2:]
    if not 0 < kernel_width < calib_width:
        raise ValueError(f"espirit_maps: need 0 < kernel_width < calib_width, got {kernel_width} and {calib_width}")
    if calib_width > min(h, w):
        raise ValueError(f"espirit_maps: calib_width={calib_width} exceeds the k-space size {h}x{w}")
    if not bool(torch.isfinite(torch.view_as_real(kspace.resolve_conj())).all()):
        raise ValueError("espirit_maps: kspace holds NaN or Inf values")
    batched = kspace.ndim == 4
    slices = kspace if batched else kspace[None]
    _check_acs(slices, calib_width)
    out = []
    for k in tqdm(slices, desc="ESPIRiT", disable=not show_pbar or len(slices) == 1, leave=False):
        arr = k.detach().cpu().numpy().astype(np.complex64)
        maps = sigpy.mri.app.EspiritCalib(
            arr,
            calib_width=calib_width,
            thresh=thresh,
            kernel_width=kernel_width,
            crop=crop,
            max_iter=max_iter,
            show_pbar=show_pbar and len(slices) == 1,
        ).run()
        out.append(torch.as_tensor(np.asarray(maps, dtype=np.complex64)))
    res = torch.stack(out).to(kspace.device)
    return res if batched else res[0]


def _check_acs(slices: Tensor, calib_width: int) -> None:
    """Every column and row of the central ``calib_width²`` block must hold data (ESPIRiT needs a full ACS)."""
    h, w = slices.shape[-2:]
    r0, c0 = h // 2 - calib_width // 2, w // 2 - calib_width // 2
    block = slices[..., r0 : r0 + calib_width, c0 : c0 + calib_width].abs()
    cols = (block.amax(dim=(1, 2)) > 0).sum(dim=-1)  # (B,) sampled columns in the block
    rows = (block.amax(dim=(1, 3)) > 0).sum(dim=-1)
    worst_c, worst_r = int(cols.min()), int(rows.min())
    if worst_c < calib_width or worst_r < calib_width:
        raise ValueError(
            f"espirit_maps: the central {calib_width}x{calib_width} k-space block is not fully sampled "
            f"(only {worst_c} of its columns and {worst_r} of its rows hold data); "
            "use a smaller calib_width (at most the number of ACS lines) or data with more ACS lines"
        )


def birdcage_maps(
    n_coils: int,
    shape: tuple[int, int],
    r: float = 1.5,
    dtype: torch.dtype = torch.complex64,
    device: torch.device | str | None = None,
) -> Tensor:
    """Simulated birdcage coil sensitivities ``(n_coils, H, W)`` (``sigpy.mri.birdcage_maps``).

    ``r`` is the coil-ring radius relative to the field of view (sigpy's default 1.5).
    Not normalised (``Σ|S|²`` varies over the image, as for real coils).
    """
    import sigpy.mri

    if int(n_coils) < 1:
        raise ValueError(f"birdcage_maps: n_coils must be >= 1, got {n_coils}")
    if len(tuple(shape)) != 2:
        raise ValueError(f"birdcage_maps: shape must be (H, W), got {shape}")
    maps = sigpy.mri.birdcage_maps((int(n_coils), *(int(s) for s in shape)), r=r, dtype=np.complex128)
    return torch.as_tensor(maps).to(device=device, dtype=dtype)


def rss(x: Tensor, dim: int = 1, keepdim: bool = False) -> Tensor:
    """Root-sum-of-squares ``sqrt(Σ |x|²)`` over ``dim`` (the coil axis), a real tensor."""
    return torch.sqrt(torch.sum(x.abs() ** 2, dim=dim, keepdim=keepdim))
