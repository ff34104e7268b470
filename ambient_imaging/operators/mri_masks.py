"""Cartesian k-space sampling masks (fastMRI conventions: phase-encode lines are columns along ``W``).

Kinds:

* ``"random"`` — fastMRI ``RandomMaskFunc``: the ``c`` centre lines (ACS) plus each other
  line independently with probability ``(W/R − c) / (W − c)``, so ``E[#lines] = W/R``.
* ``"equispaced"`` — fastMRI ``EquispacedMaskFractionFunc``: ACS plus lines every
  ``a = R (c − W) / (c R − W)`` columns from a random offset (``#lines ≈ W/R``).
* ``"variable_density"`` — ACS plus exactly ``round(W/R) − c`` other lines drawn without
  replacement with weights ``(1 − |k − W/2| / (W/2))^p`` (denser near the centre).
* ``"poisson"`` — 2-D variable-density Poisson-disc (``sigpy.mri.poisson``, elliptical
  corners cropped) with a fully sampled ``c_H × c_W`` calibration square.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["mri_mask", "MASK_KINDS", "mask_presets"]

MASK_KINDS = ("random", "equispaced", "variable_density", "poisson")


def mri_mask(
    shape: tuple[int, int],
    acceleration: float,
    center_fraction: float = 0.08,
    center_lines: int | None = None,
    kind: str = "random",
    batch: int = 1,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    *,
    device: torch.device | str | None = None,
    density_power: float = 2.0,
) -> tuple[Tensor, Tensor]:
    """Draw ``batch`` k-space masks and their ACS (auto-calibration) regions.

    Args:
        shape: k-space size ``(H, W)``; lines are columns (phase encodes along ``W``).
        acceleration: ``R >= 1``; about ``1/R`` of k-space is sampled.
        center_fraction: fraction of ``W`` fully sampled at the centre (ACS), as in fastMRI;
            for ``"poisson"`` the calibration square is ``round(cf·H) × round(cf·W)``.
        center_lines: number of ACS lines (overrides ``center_fraction``; for ``"poisson"``
            a ``center_lines × center_lines`` square).
        kind: one of :data:`MASK_KINDS`.
        batch: number of independent masks.
        generator / seed: randomness (give at most one); ``None`` uses torch's global RNG.
        device: device of the returned masks.
        density_power: ``p`` of the ``"variable_density"`` weights.

    Returns:
        ``(mask, acs)``, both bool ``(batch, H, W)``; ``acs ⊆ mask``. For the 1-D kinds both
        are constant along ``H`` (pass either straight to :class:`MultiCoilMRI`).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mri_mask: unknown kind {kind!r}; valid kinds are {', '.join(MASK_KINDS)}")
    if len(tuple(shape)) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"mri_mask: shape must be (H, W) with positive sizes, got {shape}")
    h, w = (int(s) for s in shape)
    acceleration = float(acceleration)
    if not math.isfinite(acceleration) or acceleration < 1.0:
        raise ValueError(f"mri_mask: acceleration must be >= 1, got {acceleration}")
    if int(batch) < 1:
        raise ValueError(f"mri_mask: batch must be >= 1, got {batch}")
    batch = int(batch)
    if generator is not None and seed is not None:
        raise ValueError("mri_mask: give either generator or seed, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    if center_lines is not None:
        c_w = int(center_lines)
        c_h = c_w
        if c_w < 0:
            raise ValueError(f"mri_mask: center_lines must be >= 0, got {center_lines}")
    else:
        if not 0.0 <= float(center_fraction) <= 1.0:
            raise ValueError(f"mri_mask: center_fraction must be in [0, 1], got {center_fraction}")
        c_w = round(w * float(center_fraction))
        c_h = round(h * float(center_fraction))
    if c_w > w or (kind == "poisson" and c_h > h):
        raise ValueError(
            f"mri_mask: the centre ({c_h if kind == 'poisson' else ''}{'x' if kind == 'poisson' else ''}{c_w} "
            f"{'points' if kind == 'poisson' else 'lines'}) is larger than the image ({h}x{w})"
        )
    gdev = generator.device if generator is not None else torch.device("cpu")

    if kind == "poisson":
        mask, acs = _poisson(h, w, acceleration, c_h, c_w, batch, generator, gdev)
        return mask.to(device), acs.to(device)

    target = w / acceleration
    if c_w > target + 1e-9:
        raise ValueError(
            f"mri_mask: {c_w} centre lines already exceed the W/R = {w}/{acceleration:g} = {target:.1f} lines of "
            "the requested acceleration; lower center_fraction/center_lines or the acceleration"
        )
    pad = (w - c_w + 1) // 2  # fastMRI: centre block [pad, pad + c)
    acs_lines = torch.zeros(batch, w, dtype=torch.bool, device=gdev)
    acs_lines[:, pad : pad + c_w] = True
    if kind == "random":
        prob = (target - c_w) / (w - c_w) if w > c_w else 0.0
        lines = torch.rand(batch, w, generator=generator, device=gdev) < prob
    elif kind == "equispaced":
        lines = _equispaced(w, acceleration, c_w, batch, generator, gdev)
    else:
        lines = _variable_density(w, target, c_w, acs_lines, density_power, batch, generator, gdev)
    lines |= acs_lines
    mask = lines[:, None, :].expand(batch, h, w).clone()
    acs = acs_lines[:, None, :].expand(batch, h, w).clone()
    return mask.to(device), acs.to(device)


def _equispaced(w: int, r: float, c: int, batch: int, generator, dev) -> Tensor:
    lines = torch.zeros(batch, w, dtype=torch.bool, device=dev)
    if c * r >= w or r == 1.0:  # the centre alone meets the target (or everything is sampled)
        if r == 1.0:
            lines[:] = True
        return lines
    spacing = r * (c - w) / (c * r - w)  # fastMRI EquispacedMaskFractionFunc
    offsets = torch.randint(0, max(round(spacing), 1), (batch,), generator=generator, device=dev)
    for i, off in enumerate(offsets.tolist()):
        idx = np.round(np.arange(off, w - 1, spacing)).astype(np.int64)
        lines[i, torch.as_tensor(idx, device=dev)] = True
    return lines


def _variable_density(w: int, target: float, c: int, acs: Tensor, power: float, batch: int, generator, dev) -> Tensor:
    if power < 0:
        raise ValueError(f"mri_mask: density_power must be >= 0, got {power}")
    n_extra = round(target) - c
    lines = torch.zeros(batch, w, dtype=torch.bool, device=dev)
    if n_extra <= 0:
        return lines
    d = (torch.arange(w, device=dev, dtype=torch.float64) - w // 2).abs() / (w / 2)
    weights = (1.0 - d).clamp_min(1e-3) ** power
    weights = weights.expand(batch, w) * (~acs)  # ACS lines are already in
    pick = torch.multinomial(weights, n_extra, replacement=False, generator=generator)
    lines.scatter_(1, pick, True)
    return lines


def _poisson(h: int, w: int, r: float, c_h: int, c_w: int, batch: int, generator, dev) -> tuple[Tensor, Tensor]:
    import sigpy.mri
    from tqdm.auto import tqdm

    acs = torch.zeros(h, w, dtype=torch.bool)
    acs[int(h / 2 - c_h / 2) : int(h / 2 + c_h / 2), int(w / 2 - c_w / 2) : int(w / 2 + c_w / 2)] = True
    if c_h * c_w > h * w / r:
        raise ValueError(
            f"mri_mask: the {c_h}x{c_w} calibration square already exceeds H·W/R = {h * w / r:.0f} points; "
            "lower center_fraction/center_lines or the acceleration"
        )
    seeds = torch.randint(0, 2**31 - 1, (batch,), generator=generator, device=dev).tolist()
    masks = []
    for s in tqdm(seeds, desc="poisson masks", disable=batch < 8, leave=False):
        if r == 1.0:
            masks.append(torch.ones(h, w, dtype=torch.bool))
            continue
        try:
            m = sigpy.mri.poisson((h, w), r, calib=(c_h, c_w), dtype=np.complex64, crop_corner=True, seed=int(s))
        except ValueError as err:
            raise ValueError(f"mri_mask: cannot draw a {h}x{w} Poisson-disc mask at acceleration {r:g}: {err}") from err
        masks.append(torch.from_numpy(np.abs(m) > 0) | acs)
    mask = torch.stack(masks)
    return mask, acs.expand(batch, h, w).clone()


def mask_presets() -> dict[str, dict]:
    """Named sampling presets from ``operators/mri/presets.toml`` (fastMRI challenge settings etc.).

    Each value holds ``kind``, ``acceleration`` and ``center_fraction`` (pass them to
    :func:`mri_mask` as keywords) plus a ``description``.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    from ..resources import instrument_path

    path = instrument_path("mri", "presets.toml")
    with open(path, "rb") as f:
        data = tomllib.load(f)
    presets = data.get("preset", {})
    if not isinstance(presets, dict) or not presets:
        raise ValueError(f"{path}: no [preset.<name>] tables found")
    return presets
