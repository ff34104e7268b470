"""Closure phases and log closure amplitudes in torch, differentiable through the NUFFT.

Station-based gains ``V_ij^obs = g_i conj(g_j) V_ij + ε`` (VLBI: atmospheric phases, amplitude
calibration errors) cancel in

* **closure phases** of triangles ``(a, b, c)``: ``ψ = arg(V_ab V_bc V_ca)`` (``V_ca = conj V_ac``);
* **log closure amplitudes** of quadrangles ``(a, b, c, d)``:
  ``log|V_ab| + log|V_cd| − log|V_ad| − log|V_bc|`` (ehtim's ``(12)(34)/(14)(23)``).

Per integration (rows with equal time stamps, within ``time_tol`` seconds) a **non-redundant**
set is formed as ehtim does with ``count='min'``: with the stations present ordered by number and
the first as reference ``r``, the triangles ``(r, i, j)`` for ``i < j`` (``(N−1)(N−2)/2``) and the
quadrangles ``(r, s_i, s_j, s_k)`` of :func:`ehtim.observing.obs_helpers.quad_minimal_set`
(``N(N−3)/2``). Triangles or quadrangles with a missing (flagged) baseline are skipped.

Uncertainties (ehtim's, ``σ`` = std of the real and of the imaginary part of each visibility):

* closure phase: ``σ_ψ = sqrt(Σ σ_i² / |V_i|²)`` radians;
* log closure amplitude: ``σ = sqrt(Σ σ_i² / A_i²)`` with ``A_i`` the debiased amplitudes;
* debiasing (``debias=True``, ehtim's default): ``A = sqrt(|V|² − σ²)`` where ``|V| > σ``, else
  ``σ`` (ehtim's ``force_nonzero``), and the log closure amplitude gets ehtim's second-order
  correction ``+ ½ (1/snr₁² + 1/snr₂² − 1/snr₃² − 1/snr₄²)``.

Optional averaging (``avg_time`` seconds): closure quantities of the same triangle/quadrangle in
one time bin are combined with weights ``w = 1/σ²`` — phases as ``arg Σ w e^{iψ}``, log closure
amplitudes as ``Σ w l / Σ w``, ``σ_avg = (Σ w)^{-1/2}`` — and model values are averaged the
same way (:meth:`ClosureIndex.model_cphase` / :meth:`~ClosureIndex.model_logcamp`), so the
averaged quantities stay gain invariant and differentiable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .compact import ZBL_UV_CUT, zero_baseline_rows

__all__ = [
    "ClosureIndex",
    "ClosureData",
    "closure_index",
    "closure_data",
    "closure_phases",
    "log_closure_amplitudes",
    "debias_amplitudes",
    "integration_groups",
    "component_sigma",
    "CP_UV_MIN",
]

#: ehtim's ``cp_uv_min`` as EHT's M87 pipelines and their χ² evaluation set it (``uv_zblcut = 0.1e9``): closure
#: phases of triangles with an intra-site leg (ALMA–APEX, SMA–JCMT) are left out. Such a triangle's phase is
#: that of the co-located pair, ~0 for any compact source and measured at SNR ~100, so it constrains nothing
#: in the image and its χ² measures only systematics (extended emission, smearing).
CP_UV_MIN = ZBL_UV_CUT


def integration_groups(times: np.ndarray | Tensor, time_tol: float = 1e-3) -> np.ndarray:
    """Integration index of each row: sorted time stamps closer than ``time_tol`` seconds share one."""
    t = np.asarray(times.cpu().numpy() if isinstance(times, Tensor) else times, np.float64)
    if t.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    new = np.concatenate([[True], np.diff(ts) > time_tol])
    gid = np.cumsum(new) - 1
    out = np.empty_like(gid)
    out[order] = gid
    return out


@dataclass
class ClosureIndex:
    """Which visibility rows form each closure quantity (one coverage, shared by a batch).

    Attributes:
        tri_rows: ``(T, 3)`` rows of ``V_ab, V_bc, V_ca``; ``tri_conj`` ``(T, 3)``: take ``conj``.
        tri_stations: ``(T, 3)`` station numbers ``(a, b, c)``; ``tri_time`` ``(T,)`` seconds.
        quad_rows: ``(Q, 4)`` rows of ``V_ab, V_cd`` (numerator) and ``V_ad, V_bc`` (denominator).
        quad_stations: ``(Q, 4)``; ``quad_time`` ``(Q,)``.
        tri_bin / quad_bin: ``(T,)``/``(Q,)`` averaging bin of each raw quantity (identity
            without averaging); ``n_tri_bins``/``n_quad_bins`` bins.
    """

    tri_rows: Tensor
    tri_conj: Tensor
    tri_stations: Tensor
    tri_time: Tensor
    quad_rows: Tensor
    quad_stations: Tensor
    quad_time: Tensor
    tri_bin: Tensor
    quad_bin: Tensor
    n_tri_bins: int
    n_quad_bins: int

    @property
    def n_cphase(self) -> int:
        return self.n_tri_bins

    @property
    def n_logcamp(self) -> int:
        return self.n_quad_bins

    # ---- raw quantities -----------------------------------------------------------------
    def raw_cphase(self, vis: Tensor) -> Tensor:
        """Closure phases (radians) ``(B, T)`` of visibilities ``(B, M)`` (before averaging)."""
        v = vis[:, self.tri_rows.to(vis.device)]
        v = torch.where(self.tri_conj.to(vis.device), v.conj(), v)
        return torch.angle(v[..., 0] * v[..., 1] * v[..., 2])

    def raw_logcamp(self, vis: Tensor, amp: Tensor | None = None) -> Tensor:
        """Log closure amplitudes ``(B, Q)`` from visibilities (or given amplitudes ``(B, M)``)."""
        a = vis.abs() if amp is None else amp
        la = torch.log(a[:, self.quad_rows.to(a.device)].clamp_min(torch.finfo(a.dtype).tiny))
        return la[..., 0] + la[..., 1] - la[..., 2] - la[..., 3]

    # ---- averaged (what likelihoods compare) ------------------------------------------------
    def _bin_sum(self, vals: Tensor, bins: Tensor, n: int) -> Tensor:
        out = torch.zeros(vals.shape[0], n, dtype=vals.dtype, device=vals.device)
        return out.index_add(1, bins.to(vals.device), vals)

    def model_cphase(self, vis: Tensor, weights: Tensor) -> Tensor:
        """Model closure phases ``(B, T_avg)`` averaged with the data's weights ``(T,)``."""
        psi = self.raw_cphase(vis)
        if self.n_tri_bins == psi.shape[1]:
            return psi
        ph = weights.to(psi) * torch.exp(1j * psi)
        return torch.angle(self._bin_sum(ph, self.tri_bin, self.n_tri_bins))

    def model_logcamp(self, vis: Tensor, weights: Tensor) -> Tensor:
        """Model log closure amplitudes ``(B, Q_avg)`` averaged with the data's weights ``(Q,)``."""
        lc = self.raw_logcamp(vis)
        if self.n_quad_bins == lc.shape[1]:
            return lc
        w = weights.to(lc)
        num = self._bin_sum(lc * w, self.quad_bin, self.n_quad_bins)
        den = self._bin_sum(w[None].expand_as(lc), self.quad_bin, self.n_quad_bins)
        return num / den


def closure_index(
    stations: Tensor | np.ndarray,
    times: Tensor | np.ndarray,
    valid: Tensor | np.ndarray | None = None,
    time_tol: float = 1e-3,
    avg_time: float | None = None,
) -> ClosureIndex:
    """Build the non-redundant triangles and quadrangles of every integration.

    Args:
        stations: ``(M, 2)`` station numbers ``(ant1, ant2)`` of each row (``uv`` = ant1 − ant2).
        times: ``(M,)`` seconds. valid: ``(M,)`` bool rows to use (default all).
        time_tol: rows closer in time than this (seconds) are one integration.
        avg_time: average the closure quantities in bins of this many seconds (``None``: none).
    """
    st = np.asarray(stations.cpu().numpy() if isinstance(stations, Tensor) else stations, np.int64)
    t = np.asarray(times.cpu().numpy() if isinstance(times, Tensor) else times, np.float64)
    m = st.shape[0]
    ok = np.ones(m, bool) if valid is None else np.asarray(
        valid.cpu().numpy() if isinstance(valid, Tensor) else valid, bool).reshape(-1)
    if st.shape != (m, 2) or t.shape != (m,) or ok.shape != (m,):
        raise ValueError(f"closure_index: need stations (M, 2), times (M,), valid (M,); got {st.shape}, "
                         f"{t.shape}, {ok.shape}")
    groups = integration_groups(t, time_tol)
    tri_rows, tri_conj, tri_st, tri_t = [], [], [], []
    quad_rows, quad_st, quad_t = [], [], []
    rows_all = np.nonzero(ok)[0]
    order = rows_all[np.argsort(groups[rows_all], kind="stable")]
    if order.size:
        bounds = np.nonzero(np.diff(groups[order]))[0] + 1
        chunks = np.split(order, bounds)
    else:
        chunks = []
    for rows in chunks:
        bl: dict[tuple[int, int], int] = {}
        for r in rows:
            a, b = int(st[r, 0]), int(st[r, 1])
            if a == b:
                continue
            key = (min(a, b), max(a, b))
            bl.setdefault(key, int(r))
        if len(bl) < 3:
            continue
        sites = sorted({s for k in bl for s in k})
        tt = float(t[rows[0]])

        def get(a: int, b: int, bl: dict[tuple[int, int], int] = bl) -> tuple[int, bool] | None:
            r = bl.get((min(a, b), max(a, b)))
            if r is None:
                return None
            # stored as (ant1, ant2): V_ab itself when ant1 == a, else its conjugate
            return r, bool(st[r, 0] != a)

        ref, others = sites[0], sites[1:]
        for i in range(len(others)):
            for j in range(i + 1, len(others)):
                a, b, c = ref, others[i], others[j]
                legs = (get(a, b), get(b, c), get(c, a))
                if any(leg is None for leg in legs):
                    continue
                tri_rows.append([leg[0] for leg in legs])
                tri_conj.append([leg[1] for leg in legs])
                tri_st.append([a, b, c])
                tri_t.append(tt)
        for i in range(3, len(sites)):
            for j in range(1, i):
                k = 1 if j == i - 1 else j + 1
                q = (ref, sites[i], sites[j], sites[k])
                legs = (get(q[0], q[1]), get(q[2], q[3]), get(q[0], q[3]), get(q[1], q[2]))
                if any(leg is None for leg in legs):
                    continue
                quad_rows.append([leg[0] for leg in legs])
                quad_st.append(list(q))
                quad_t.append(tt)

    def tens(a, shape, dtype):
        return torch.tensor(a, dtype=dtype).reshape(shape)

    tri_stations = tens(tri_st, (-1, 3), torch.long)
    quad_stations = tens(quad_st, (-1, 4), torch.long)
    tri_time = tens(tri_t, (-1,), torch.float64)
    quad_time = tens(quad_t, (-1,), torch.float64)
    tri_bin, n_tb = _bins(tri_stations, tri_time, avg_time)
    quad_bin, n_qb = _bins(quad_stations, quad_time, avg_time)
    return ClosureIndex(
        tri_rows=tens(tri_rows, (-1, 3), torch.long), tri_conj=tens(tri_conj, (-1, 3), torch.bool),
        tri_stations=tri_stations, tri_time=tri_time, quad_rows=tens(quad_rows, (-1, 4), torch.long),
        quad_stations=quad_stations, quad_time=quad_time, tri_bin=tri_bin, quad_bin=quad_bin,
        n_tri_bins=n_tb, n_quad_bins=n_qb,
    )  # fmt: skip


def _bins(stations: Tensor, time: Tensor, avg_time: float | None) -> tuple[Tensor, int]:
    n = stations.shape[0]
    if avg_time is None or avg_time <= 0 or n == 0:
        return torch.arange(n), n
    tb = torch.floor((time - time.min()) / float(avg_time)).long()
    key = torch.cat([tb[:, None], stations], 1)
    _, inv = torch.unique(key, dim=0, return_inverse=True)
    return inv, int(inv.max()) + 1


def component_sigma(op) -> Tensor:
    """Per-visibility σ of the real and of the imaginary part, ``(B|1, M)``: ``noise_sigma / √2``
    (the operator's noise has ``E|ε|² = σ_op²``; UVFITS/ehtim σ's are per component)."""
    sig = op.noise_sigma
    m = op.n_vis
    s = torch.as_tensor(sig, dtype=torch.float64)
    if s.ndim == 0:
        s = s.reshape(1, 1).expand(1, m)
    elif s.ndim == 1:
        s = s.reshape(-1, 1).expand(-1, m)
    s = s / math.sqrt(2.0)
    valid = torch.broadcast_to(op.mask.cpu(), torch.broadcast_shapes(op.mask.shape, s.shape))
    if not (torch.broadcast_to(s, valid.shape)[valid] > 0).all():
        raise ValueError("closure quantities need the visibility noise: the operator has noise_sigma = 0 "
                         "on valid rows (give the UVFITS weights / noise_sigma)")
    return s


def debias_amplitudes(amp: Tensor, sigma: Tensor) -> Tensor:
    """ehtim's ``amp_debias(force_nonzero=True)``: ``sqrt(|V|² − σ²)`` where ``|V| > σ``, else ``σ``."""
    deb2 = amp**2 - sigma**2
    return torch.where(amp > sigma, deb2.clamp_min(0).sqrt(), sigma)


def closure_phases(vis: Tensor, index: ClosureIndex) -> Tensor:
    """Unaveraged closure phases (radians) ``(B, T)`` of visibilities ``(B, M)``."""
    return index.raw_cphase(vis)


def log_closure_amplitudes(vis: Tensor, index: ClosureIndex) -> Tensor:
    """Unaveraged log closure amplitudes ``(B, Q)`` of visibilities ``(B, M)`` (no debiasing)."""
    return index.raw_logcamp(vis)


@dataclass
class ClosureData:
    """Observed closure quantities of one measurement and their σ's (ehtim conventions).

    Attributes:
        index: the :class:`ClosureIndex`.
        cphase, cphase_sigma: ``(T_avg,)`` radians.
        logcamp, logcamp_sigma: ``(Q_avg,)``.
        cphase_weight, logcamp_weight: ``(T,)``/``(Q,)`` raw ``1/σ²`` used for averaging models.
    """

    index: ClosureIndex
    cphase: Tensor
    cphase_sigma: Tensor
    logcamp: Tensor
    logcamp_sigma: Tensor
    cphase_weight: Tensor
    logcamp_weight: Tensor


def closure_data(
    y: Tensor,
    op,
    debias: bool = True,
    avg_time: float | None = None,
    time_tol: float = 1e-3,
    snrcut: float = 0.0,
    cp_uv_min: float | None = CP_UV_MIN,
) -> ClosureData:
    """Closure phases and log closure amplitudes of measured visibilities ``y`` ``(1, M)``.

    ``op`` is an :class:`~ambient_imaging.operators.Interferometer` with ``stations`` and ``times``
    (e.g. from :meth:`ambient_imaging.datasets.Visibilities.to_operator`) and per-visibility noise.
    ``snrcut``: drop closure quantities whose ``1/σ`` is below it (ehtim's ``snrcut``).
    ``cp_uv_min``: drop the triangles with an intra-site leg, shorter than this (wavelengths), when the data
    also hold baselines ten times longer (:func:`~.compact.zero_baseline_rows`); ``None`` keeps them.
    """
    stations, times = getattr(op, "stations", None), getattr(op, "times", None)
    if stations is None or times is None:
        raise ValueError("closure quantities need station pairs and time stamps on the operator "
                         "(Interferometer(..., stations=, times=); Visibilities.to_operator sets them)")
    if y.ndim != 2 or y.shape[0] != 1:
        raise ValueError(f"closure_data: one measurement at a time, y must be (1, M), got {tuple(y.shape)}")
    mask = op.mask[0] if op.mask.shape[0] == 1 else None
    if mask is None:
        raise ValueError("closure_data: the operator must hold one measurement (batch 1)")
    idx = closure_index(stations, times, mask.cpu(), time_tol=time_tol, avg_time=avg_time)
    if cp_uv_min is not None:
        short = zero_baseline_rows(op, cp_uv_min)[0].cpu()
        if bool(short.any()):
            idx = _subset(idx, ~short[idx.tri_rows].any(-1), None, avg_time)
    v = y.detach().to(torch.complex128).cpu()
    sig = component_sigma(op).cpu()[0:1].expand(1, v.shape[1])
    amp = v.abs()
    # closure phases: σ = sqrt(Σ σ²/|V|²) with raw amplitudes
    rows = idx.tri_rows
    psi = idx.raw_cphase(v)[0]
    cp_sig = torch.sqrt(((sig[0, rows] / amp[0, rows].clamp_min(1e-300)) ** 2).sum(-1))
    # log closure amplitudes with debiased amplitudes
    a = debias_amplitudes(amp, sig) if debias else amp
    q = idx.quad_rows
    lc = idx.raw_logcamp(v, a)[0]
    inv_snr2 = (sig[0, q] / a[0, q].clamp_min(1e-300)) ** 2  # (Q, 4)
    lc_sig = torch.sqrt(inv_snr2.sum(-1))
    if debias:
        lc = lc + 0.5 * (inv_snr2[:, 0] + inv_snr2[:, 1] - inv_snr2[:, 2] - inv_snr2[:, 3])
    if snrcut > 0:
        idx, psi, cp_sig, lc, lc_sig = _cut(idx, psi, cp_sig, lc, lc_sig, snrcut, avg_time)
    w_cp, w_lc = 1.0 / cp_sig**2, 1.0 / lc_sig**2
    if idx.n_tri_bins != psi.shape[0]:
        ph = idx._bin_sum((w_cp * torch.exp(1j * psi))[None], idx.tri_bin, idx.n_tri_bins)[0]
        wsum = idx._bin_sum(w_cp[None], idx.tri_bin, idx.n_tri_bins)[0]
        psi, cp_sig = torch.angle(ph), wsum.rsqrt()
    if idx.n_quad_bins != lc.shape[0]:
        wsum = idx._bin_sum(w_lc[None], idx.quad_bin, idx.n_quad_bins)[0]
        lc = idx._bin_sum((w_lc * lc)[None], idx.quad_bin, idx.n_quad_bins)[0] / wsum
        lc_sig = wsum.rsqrt()
    return ClosureData(idx, psi, cp_sig, lc, lc_sig, w_cp, w_lc)


def _cut(idx: ClosureIndex, psi, cp_sig, lc, lc_sig, snrcut: float, avg_time):
    keep_t = (1.0 / cp_sig) >= snrcut
    keep_q = (1.0 / lc_sig) >= snrcut
    return _subset(idx, keep_t, keep_q, avg_time), psi[keep_t], cp_sig[keep_t], lc[keep_q], lc_sig[keep_q]


def _subset(idx: ClosureIndex, keep_t: Tensor | None, keep_q: Tensor | None, avg_time) -> ClosureIndex:
    """The triangles ``keep_t`` and quadrangles ``keep_q`` of ``idx`` (``None``: all), re-binned."""
    keep_t = torch.ones(idx.tri_rows.shape[0], dtype=torch.bool) if keep_t is None else keep_t
    keep_q = torch.ones(idx.quad_rows.shape[0], dtype=torch.bool) if keep_q is None else keep_q
    tri_bin, n_tb = _bins(idx.tri_stations[keep_t], idx.tri_time[keep_t], avg_time)
    quad_bin, n_qb = _bins(idx.quad_stations[keep_q], idx.quad_time[keep_q], avg_time)
    return ClosureIndex(
        idx.tri_rows[keep_t], idx.tri_conj[keep_t], idx.tri_stations[keep_t], idx.tri_time[keep_t],
        idx.quad_rows[keep_q], idx.quad_stations[keep_q], idx.quad_time[keep_q], tri_bin, quad_bin, n_tb, n_qb,
    )  # fmt: skip
