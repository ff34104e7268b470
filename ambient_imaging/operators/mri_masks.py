"""Cartesian k-space sampling masks (fastMRI conventions: phase-encode lines are columns along ``W``).

The 1-D kinds reproduce fastMRI's ``fastmri/data/subsample.py`` mask functions under the names of
its ``create_mask_for_mask_type`` (``W`` columns, ``c = round(W · center_fraction)`` centre lines in
``[(W − c + 1) // 2, … + c)``, the ACS):

* ``"random"`` — ``RandomMaskFunc``: the ``c`` centre lines plus each column independently with
  probability ``(W/R − c) / (W − c)``, so ``E[#lines] = W/R``.
* ``"equispaced"`` — ``EquiSpacedMaskFunc``: the centre lines plus every ``R``-th column from a random
  offset in ``[0, R)`` (integer ``R``; the true acceleration is below ``R`` because the centre adds lines).
* ``"equispaced_fraction"`` — ``EquispacedMaskFractionFunc``: centre plus lines every
  ``a = R (c − W) / (c R − W)`` columns (rounded positions) from a random offset in ``[0, round(a))``,
  so ``#lines ≈ W/R`` (what the fastMRI brain multi-coil data and its VarNet examples use).
* ``"magic"`` — ``MagicMaskFunc`` (Defazio 2019, offset sampling for conjugate symmetry): every
  ``R``-th line with different offsets on the two halves of k-space (integer ``R``).
* ``"magic_fraction"`` — ``MagicMaskFractionFunc``: ``magic`` with the centre clipped to
  ``[1, round(W/R)]`` lines and the spacing ``round(W / (round(W/R) − c))`` to hit ``W/R``.
* ``"variable_density"`` — ACS plus exactly ``round(W/R) − c`` other lines drawn without
  replacement with weights ``(1 − |k − W/2| / (W/2))^p`` (denser near the centre).
* ``"poisson"`` — 2-D variable-density Poisson-disc (``sigpy.mri.poisson``, elliptical
  corners cropped) with a fully sampled ``c_H × c_W`` calibration square.

Randomness: a ``torch.Generator`` / ``seed`` (default), or ``rng=np.random.RandomState(s)``, which
draws exactly as fastMRI does: ``mri_mask((H, W), R, center_fraction=cf, kind=k, rng=RandomState(s))``
equals fastMRI's ``create_mask_for_mask_type(k, [cf], [R])(shape, seed=s)`` column for column, and
``batch=n`` equals ``n`` successive calls of one mask function seeded ``s``.

Zero-padded k-space (fastMRI files): draw over the full width ``W`` and zero the columns outside the
file's acquired band, as fastMRI's ``apply_mask(..., padding=...)`` does; see :func:`apply_band`.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

__all__ = ["mri_mask", "MASK_KINDS", "mask_presets", "apply_band"]

MASK_KINDS = (
    "random",
    "equispaced",
    "equispaced_fraction",
    "magic",
    "magic_fraction",
    "variable_density",
    "poisson",
)
_INTEGER_R = ("equispaced", "magic")


class _Draw(Protocol):
    def uniform(self, n: int) -> np.ndarray: ...
    def randint(self, high: int) -> int: ...
    def choice(self, n: int, k: int, p: np.ndarray) -> np.ndarray: ...


class _TorchDraw:
    """Draws from a ``torch.Generator`` (``None``: torch's global RNG)."""

    def __init__(self, generator: torch.Generator | None):
        self.g = generator
        self.dev = generator.device if generator is not None else torch.device("cpu")

    def uniform(self, n: int) -> np.ndarray:
        return torch.rand(n, generator=self.g, device=self.dev).cpu().numpy()

    def randint(self, high: int) -> int:
        return int(torch.randint(0, high, (1,), generator=self.g, device=self.dev).item())

    def choice(self, n: int, k: int, p: np.ndarray) -> np.ndarray:
        w = torch.as_tensor(p, dtype=torch.float64, device=self.dev)
        return torch.multinomial(w, k, replacement=False, generator=self.g).cpu().numpy()


class _NumpyDraw:
    """Draws from a ``np.random.RandomState`` in fastMRI's order (``choose_acceleration`` first)."""

    def __init__(self, rng: np.random.RandomState):
        self.rng = rng

    def uniform(self, n: int) -> np.ndarray:
        return self.rng.uniform(size=n)

    def randint(self, high: int) -> int:
        return int(self.rng.randint(0, high=high))

    def choice(self, n: int, k: int, p: np.ndarray) -> np.ndarray:
        return self.rng.choice(n, size=k, replace=False, p=p / p.sum())


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
    rng: np.random.RandomState | None = None,
    offset: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw ``batch`` k-space masks and their ACS (auto-calibration) regions.

    Args:
        shape: k-space size ``(H, W)``; lines are columns (phase encodes along ``W``).
        acceleration: ``R >= 1``; about ``1/R`` of k-space is sampled (``"equispaced"`` and
            ``"magic"``: every ``R``-th line, ``R`` an integer, plus the centre).
        center_fraction: fraction of ``W`` fully sampled at the centre (ACS), as in fastMRI;
            for ``"poisson"`` the calibration square is ``round(cf·H) × round(cf·W)``.
        center_lines: number of ACS lines (overrides ``center_fraction``; for ``"poisson"``
            a ``center_lines × center_lines`` square).
        kind: one of :data:`MASK_KINDS` (see the module docstring).
        batch: number of independent masks.
        generator / seed: torch randomness (give at most one); ``None`` uses torch's global RNG.
        device: device of the returned masks.
        density_power: ``p`` of the ``"variable_density"`` weights.
        rng: a ``numpy.random.RandomState`` drawn exactly as fastMRI's mask functions draw from
            theirs (reproduces fastMRI masks for the same seed); excludes ``generator``/``seed``.
        offset: fixed first line of the equispaced/magic kinds (fastMRI's ``offset``); default random.

    Returns:
        ``(mask, acs)``, both bool ``(batch, H, W)``; ``acs ⊆ mask``. For the 1-D kinds both
        are constant along ``H`` (pass either straight to :class:`MultiCoilMRI`).
    """
    h, w, acceleration, batch = _check_args(shape, acceleration, kind, batch, generator, seed, rng)
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    draw: _Draw = _NumpyDraw(rng) if rng is not None else _TorchDraw(generator)
    c_h, c_w = _centre_size(h, w, kind, center_fraction, center_lines)

    if kind == "poisson":
        mask, acs = _poisson(h, w, acceleration, c_h, c_w, batch, draw)
        return mask.to(device), acs.to(device)

    target = w / acceleration
    if kind == "magic_fraction":  # fastMRI clips the centre to [1, round(W/R)] lines
        c_w = max(min(c_w, round(target)), 1)
    elif c_w > target + 1e-9:
        raise ValueError(
            f"mri_mask: {c_w} centre lines already exceed the W/R = {w}/{acceleration:g} = {target:.1f} lines of "
            "the requested acceleration; lower center_fraction/center_lines or the acceleration"
        )
    if offset is not None and int(offset) < 0:
        raise ValueError(f"mri_mask: offset must be >= 0, got {offset}")
    pad = (w - c_w + 1) // 2  # fastMRI: centre block [pad, pad + c)
    centre = np.zeros(w, dtype=bool)
    centre[pad : pad + c_w] = True
    rows = []
    for _ in range(batch):
        lines = _draw_lines(kind, w, acceleration, c_w, centre, density_power, draw, offset, rng)
        rows.append(np.asarray(lines, dtype=bool) | centre)
    lines_t = torch.from_numpy(np.stack(rows))
    acs_t = torch.from_numpy(centre)[None].expand(batch, w)
    mask = lines_t[:, None, :].expand(batch, h, w).clone()
    acs = acs_t[:, None, :].expand(batch, h, w).clone()
    return mask.to(device), acs.to(device)


def _check_args(
    shape: tuple[int, int],
    acceleration: float,
    kind: str,
    batch: int,
    generator: torch.Generator | None,
    seed: int | None,
    rng: np.random.RandomState | None,
) -> tuple[int, int, float, int]:
    """Validate :func:`mri_mask`'s shape/acceleration/kind/batch/randomness; return ``(h, w, R, batch)``."""
    if kind not in MASK_KINDS:
        raise ValueError(f"mri_mask: unknown kind {kind!r}; valid kinds are {', '.join(MASK_KINDS)}")
    if len(tuple(shape)) != 2 or min(int(s) for s in shape) < 1:
        raise ValueError(f"mri_mask: shape must be (H, W) with positive sizes, got {shape}")
    h, w = (int(s) for s in shape)
    acceleration = float(acceleration)
    if not math.isfinite(acceleration) or acceleration < 1.0:
        raise ValueError(f"mri_mask: acceleration must be >= 1, got {acceleration}")
    if kind in _INTEGER_R and not acceleration.is_integer():
        raise ValueError(
            f"mri_mask: kind {kind!r} samples every R-th line and needs an integer acceleration, got "
            f"{acceleration:g}; use {kind}_fraction for a non-integer R"
        )
    if int(batch) < 1:
        raise ValueError(f"mri_mask: batch must be >= 1, got {batch}")
    batch = int(batch)
    if sum(v is not None for v in (generator, seed, rng)) > 1:
        raise ValueError("mri_mask: give either generator or seed (or rng), not several")
    if rng is not None and not isinstance(rng, np.random.RandomState):
        raise TypeError(f"mri_mask: rng must be a numpy.random.RandomState, got {type(rng).__name__}")
    return h, w, acceleration, batch


def _centre_size(h: int, w: int, kind: str, center_fraction: float, center_lines: int | None) -> tuple[int, int]:
    """ACS size ``(c_h, c_w)`` from ``center_lines`` or ``center_fraction``, checked against the image."""
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
    return c_h, c_w


def _draw_lines(
    kind: str,
    w: int,
    acceleration: float,
    c_w: int,
    centre: np.ndarray,
    density_power: float,
    draw: _Draw,
    offset: int | None,
    rng: np.random.RandomState | None,
) -> np.ndarray:
    """One 1-D mask's non-centre lines (``(W,)``) of a 1-D ``kind``, drawn in fastMRI's order."""
    target = w / acceleration
    if rng is not None:
        rng.randint(1)  # fastMRI's choose_acceleration (one (cf, R) pair)
    if kind == "random":
        prob = (target - c_w) / (w - c_w) if w > c_w else 0.0
        return draw.uniform(w) < prob
    if kind == "equispaced":
        return _equispaced(w, int(acceleration), draw, offset)
    if kind == "equispaced_fraction":
        return _equispaced_fraction(w, acceleration, c_w, draw, offset)
    if kind == "magic":
        return _magic(w, int(acceleration), draw, offset)
    if kind == "magic_fraction":
        n_target = round(target) - c_w
        return _magic(w, round(w / n_target), draw, offset) if n_target > 0 else np.zeros(w, dtype=bool)
    return _variable_density(w, target, c_w, centre, density_power, draw)


def apply_band(mask: Tensor | np.ndarray, band: tuple[int, int]) -> Tensor | np.ndarray:
    """Zero the columns outside ``band = (lo, hi)`` (acquired columns ``[lo, hi)``) of a mask ``(..., W)``.

    fastMRI's ``apply_mask(..., padding=(padding_left, padding_right))``: masks are drawn over the
    full zero-padded width and the padding columns are then removed. Returns a new mask of the same type.
    """
    lo, hi = int(band[0]), int(band[1])
    w = int(mask.shape[-1])
    if not 0 <= lo < hi <= w:
        raise ValueError(f"apply_band: band {band} is not a column range inside [0, {w}]")
    out = mask.clone() if isinstance(mask, Tensor) else np.array(mask, copy=True)
    out[..., :lo] = 0
    out[..., hi:] = 0
    return out


def _equispaced(w: int, r: int, draw: _Draw, offset: int | None) -> np.ndarray:
    """fastMRI ``EquiSpacedMaskFunc``: every ``r``-th column from ``offset`` (random in ``[0, r)``)."""
    off = draw.randint(r) if offset is None else int(offset)
    lines = np.zeros(w, dtype=bool)
    lines[off::r] = True
    return lines


def _equispaced_fraction(w: int, r: float, c: int, draw: _Draw, offset: int | None) -> np.ndarray:
    """fastMRI ``EquispacedMaskFractionFunc``: spacing ``r (c − w) / (c r − w)`` adjusted for the centre."""
    lines = np.zeros(w, dtype=bool)
    if r == 1.0:
        lines[:] = True
        return lines
    if c * r >= w:  # the centre alone meets the target
        return lines
    spacing = r * (c - w) / (c * r - w)
    off = draw.randint(round(spacing)) if offset is None else int(offset)
    idx = np.around(np.arange(off, w - 1, spacing)).astype(np.int64)
    lines[idx] = True
    return lines


def _magic(w: int, r: int, draw: _Draw, offset: int | None) -> np.ndarray:
    """fastMRI ``MagicMaskFunc``: equispaced lines with offsets ``o+1``/``o+2`` (even ``o``) or ``o+2``/``o−1``
    (odd ``o``) on the positive/negative half of (unshifted) k-space, then fft-shifted."""
    off = draw.randint(r) if offset is None else int(offset)
    pos_off, neg_off = (off + 1, off + 2) if off % 2 == 0 else (off + 2, off - 1)
    n_pos = (w + 1) // 2
    pos = np.zeros(n_pos, dtype=bool)
    neg = np.zeros(w - n_pos, dtype=bool)
    pos[pos_off::r] = True
    neg[neg_off::r] = True
    return np.fft.fftshift(np.concatenate([pos, neg[::-1]]))


def _variable_density(w: int, target: float, c: int, acs: np.ndarray, power: float, draw: _Draw) -> np.ndarray:
    if power < 0:
        raise ValueError(f"mri_mask: density_power must be >= 0, got {power}")
    n_extra = round(target) - c
    lines = np.zeros(w, dtype=bool)
    if n_extra <= 0:
        return lines
    d = np.abs(np.arange(w, dtype=np.float64) - w // 2) / (w / 2)
    weights = np.clip(1.0 - d, 1e-3, None) ** power * (~acs)  # ACS lines are already in
    lines[draw.choice(w, n_extra, weights)] = True
    return lines


def _poisson(h: int, w: int, r: float, c_h: int, c_w: int, batch: int, draw: _Draw) -> tuple[Tensor, Tensor]:
    import sigpy.mri
    from tqdm.auto import tqdm

    acs = torch.zeros(h, w, dtype=torch.bool)
    acs[int(h / 2 - c_h / 2) : int(h / 2 + c_h / 2), int(w / 2 - c_w / 2) : int(w / 2 + c_w / 2)] = True
    if c_h * c_w > h * w / r:
        raise ValueError(
            f"mri_mask: the {c_h}x{c_w} calibration square already exceeds H·W/R = {h * w / r:.0f} points; "
            "lower center_fraction/center_lines or the acceleration"
        )
    seeds = [draw.randint(2**31 - 1) for _ in range(batch)]
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
