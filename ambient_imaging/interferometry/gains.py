"""Station-based complex gains: simulation and self-calibration.

Model (ant1 − ant2 baselines, see :mod:`ambient_imaging.operators.interferometry`)::

    V_ij^obs = g_i(t) · conj(g_j(t)) · V_ij + ε

:func:`solve_gains` is the per-integration least-squares solution (alternating StEFCal-style
updates, Salvini & Wijnholds 2014) of ``min_g Σ w |y − g_i conj(g_j) m|²`` for a model ``m``
(``mode="phase"`` keeps ``|g| = 1``). :func:`gain_products` turns gains into the per-row factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .closures import integration_groups

__all__ = ["StationGains", "station_slots", "random_station_gains", "gain_products", "solve_gains"]


@dataclass
class StationGains:
    """Complex gains ``(G, S)`` for ``G`` integrations and ``S`` stations (slots of :func:`station_slots`).

    Attributes:
        gains: ``(G, S)`` complex128.
        group: ``(M,)`` integration of each visibility row.
        slot1, slot2: ``(M,)`` station slots of ant1/ant2 of each row.
        numbers: ``(S,)`` station numbers of the slots.
    """

    gains: Tensor
    group: Tensor
    slot1: Tensor
    slot2: Tensor
    numbers: Tensor

    def factor(self) -> Tensor:
        """``g_i conj(g_j)`` per row ``(M,)``."""
        return gain_products(self.gains, self.group, self.slot1, self.slot2)


def station_slots(stations: Tensor, times: Tensor, time_tol: float = 1e-3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(group, slot1, slot2, numbers)``: integration index and station slot (0..S-1) of each row."""
    st = torch.as_tensor(stations).long().cpu()
    numbers, inv = torch.unique(st.reshape(-1), return_inverse=True)
    inv = inv.reshape(st.shape)
    group = torch.from_numpy(integration_groups(torch.as_tensor(times), time_tol))
    return group, inv[:, 0], inv[:, 1], numbers


def gain_products(gains: Tensor, group: Tensor, slot1: Tensor, slot2: Tensor) -> Tensor:
    """``g_{slot1}(t) conj(g_{slot2}(t))`` per row from gains ``(G, S)``."""
    return gains[group, slot1] * gains[group, slot2].conj()


def random_station_gains(
    stations: Tensor,
    times: Tensor,
    amp_error: float = 0.1,
    phase: str = "uniform",
    generator: torch.Generator | None = None,
    time_tol: float = 1e-3,
) -> StationGains:
    """Random gains per station and integration: ``|g| ~ U(1 − a, 1 + a)``, phases uniform in
    ``[−π, π)`` (``phase="uniform"``, mm-VLBI) or zero (``phase="none"``)."""
    group, s1, s2, numbers = station_slots(stations, times, time_tol)
    shape = (int(group.max()) + 1 if group.numel() else 0, numbers.numel())
    amp = 1.0 + float(amp_error) * (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1)
    if phase == "uniform":
        ph = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) * math.pi
    elif phase == "none":
        ph = torch.zeros(shape, dtype=torch.float64)
    else:
        raise ValueError(f"random_station_gains: phase must be 'uniform' or 'none', got {phase!r}")
    return StationGains(torch.polar(amp, ph), group, s1, s2, numbers)


def solve_gains(
    y: Tensor,
    model: Tensor,
    slots: StationGains | tuple[Tensor, Tensor, Tensor, Tensor],
    weights: Tensor,
    mode: str = "amp+phase",
    iters: int = 40,
    amp_prior: float | None = None,
) -> StationGains:
    """Least-squares station gains per integration: ``min Σ w |y − g_i conj(g_j) m|²``.

    Args:
        y, model: ``(M,)`` observed and model visibilities (complex).
        slots: a :class:`StationGains` (its gains are the starting point) or the output of
            :func:`station_slots`.
        weights: ``(M,)`` ``1/σ²`` (0 for invalid rows).
        mode: ``"phase"`` (``|g| = 1``) or ``"amp+phase"``.
        amp_prior: optional std of ``|g|`` about 1 (a Gaussian prior that keeps amplitude gains
            near unity where the model is poor; ``None``: none).
    """
    if mode not in ("phase", "amp+phase"):
        raise ValueError(f"solve_gains: mode must be 'phase' or 'amp+phase', got {mode!r}")
    if isinstance(slots, StationGains):
        group, s1, s2, numbers, g = slots.group, slots.slot1, slots.slot2, slots.numbers, slots.gains.clone()
    else:
        group, s1, s2, numbers = slots
        g = torch.ones(int(group.max()) + 1, numbers.numel(), dtype=torch.complex128)
    y = y.detach().to(torch.complex128).cpu()
    m = model.detach().to(torch.complex128).cpu()
    w = weights.detach().to(torch.float64).cpu()
    n_g, n_s = g.shape
    flat1 = group * n_s + s1
    flat2 = group * n_s + s2
    lam = 0.0 if amp_prior is None else 1.0 / float(amp_prior) ** 2
    for it in range(int(iters)):
        gf = g.reshape(-1)
        # rows as seen from ant1: y ≈ g_1 · (conj(g_2) m); from ant2: conj(y) ≈ g_2 · (conj(g_1 m))
        z1 = gf[flat2].conj() * m
        z2 = (gf[flat1] * m).conj()
        num = torch.zeros(n_g * n_s, dtype=torch.complex128)
        den = torch.zeros(n_g * n_s, dtype=torch.float64)
        num.index_add_(0, flat1, w * z1.conj() * y)
        num.index_add_(0, flat2, w * z2.conj() * y.conj())
        den.index_add_(0, flat1, w * z1.abs() ** 2)
        den.index_add_(0, flat2, w * z2.abs() ** 2)
        if lam > 0 and mode == "amp+phase":
            # prior pulls |g| to 1 along the current phase
            num = num + lam * torch.exp(1j * torch.angle(num))
            den = den + lam
        new = torch.where(den > 0, num / den.clamp_min(1e-300), gf)
        if mode == "phase":
            new = torch.exp(1j * torch.angle(new))
        gf = 0.5 * (gf + new) if it % 2 == 1 else new
        if mode == "phase":
            gf = torch.exp(1j * torch.angle(gf))
        g = gf.reshape(n_g, n_s)
    # fix the arbitrary phase per integration: first station with data has zero phase
    ref = torch.angle(g[:, :1])
    g = g * torch.exp(-1j * ref)
    return StationGains(g, group, s1, s2, numbers)


def apply_gains_numpy(vis: np.ndarray, factor: Tensor) -> np.ndarray:
    """``vis · factor`` for numpy visibilities (helper for simulations)."""
    return vis * factor.cpu().numpy()
