"""Interferometric likelihoods as objects: complex visibilities, amplitudes, closure phases and
log closure amplitudes, each with a differentiable ``loss(x)`` and ehtim's reduced ``chi2(x)``.

All take one measurement ``y`` ``(1, M)`` and its :class:`~ambient_imaging.operators.Interferometer`
(per-visibility noise; ``stations``/``times`` for closures) and evaluate images ``x`` ``(K, 1, H, W)``
(K samples, e.g. a posterior batch), returning ``(K,)``. ``σ`` below is the std of the real and
of the imaginary part of a visibility (UVFITS/ehtim), ``σ = noise_sigma / √2``.

========  ==========================================  ====================================
name      reduced χ² (ehtim ``imager_utils``)          ``loss`` = negative log-likelihood
========  ==========================================  ====================================
vis       ``Σ |V − g_i ḡ_j A x|² / σ² / (2N)``        ``N · χ²``
amp       ``Σ (|V|_deb − |g_i g_j| |A x|)² / σ² / N``  ``N χ² / 2``
cphase    ``(2/N) Σ (1 − cos(ψ − ψ_x)) / σ_ψ²``       ``N χ² / 2``
logcamp   ``(1/N) Σ ((l − l_x) / σ_l)²``              ``N χ² / 2``
========  ==========================================  ====================================

``|V|_deb`` are debiased amplitudes (ehtim's ``amp_debias``); closure quantities and their σ's
come from :func:`ambient_imaging.interferometry.closure_data`. Station gains ``g`` (from
self-calibration) enter the visibility and amplitude terms through ``gains``.
For noise-only residuals every χ² is ≈ 1.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import Tensor

from ambient_imaging.interferometry.closures import ClosureData, closure_data, component_sigma, debias_amplitudes
from ambient_imaging.interferometry.gains import StationGains
from ambient_imaging.interferometry.rice import log_amplitude_moments

__all__ = [
    "Likelihood",
    "VisibilityLikelihood",
    "AmplitudeLikelihood",
    "ClosurePhaseLikelihood",
    "LogClosureAmplitudeLikelihood",
    "RiceLogClosureAmplitudeLikelihood",
    "LIKELIHOODS",
    "LOGCAMP_NOISE",
    "make_likelihoods",
    "total_chi2",
    "total_loss",
    "parse_data_terms",
    "chi2_report",
]


class Likelihood:
    """Base class: ``loss(x)`` (negative log-likelihood, differentiable) and ``chi2(x)`` per sample."""

    name = "base"

    def __init__(self, y: Tensor, op):
        if y.ndim != 2 or y.shape[0] != 1:
            raise ValueError(f"{type(self).__name__}: one measurement at a time, y must be (1, M), got "
                             f"{tuple(y.shape)}")
        if op.batch_size != 1:
            raise ValueError(f"{type(self).__name__}: the operator must hold one measurement (batch 1)")
        self.y = y.to(torch.complex128)
        self.op = op
        self.valid = op.mask[0].to(y.device)
        self.sigma = component_sigma(op).to(y.device)[0].expand(y.shape[1])

    @property
    def n_data(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def model(self, x: Tensor) -> Tensor:
        """Model visibilities ``(K, M)`` of images ``(K, 1, H, W)``."""
        return self.op.forward(x)

    def chi2(self, x: Tensor) -> Tensor:
        """Reduced χ² ``(K,)`` of images ``x`` ``(K, 1, H, W)``."""
        return self.chi2_of(self.model(x))

    def chi2_of(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Reduced χ² ``(K,)`` of model visibilities ``v`` ``(K, M)`` (:meth:`model`): several
        likelihoods of one operator share one transform (:func:`total_chi2`)."""
        raise NotImplementedError

    def loss(self, x: Tensor) -> Tensor:
        """Negative log-likelihood (up to a constant) ``(K,)``; its gradient drives RML and DPS."""
        return self.loss_of_chi2(self.chi2(x))

    def loss_of_chi2(self, chi2: Tensor) -> Tensor:
        """The negative log-likelihood that a reduced χ² stands for (``N χ² / 2``)."""
        return 0.5 * self.n_data * chi2

    def perturbed(self, k: int, generator: torch.Generator | None = None) -> Likelihood:
        """A copy whose data are ``k`` draws of data + noise from this likelihood's own noise model
        (``(K, ·)`` data, one row per sample): randomize-then-optimize (Bardsley et al. 2014) samples a
        Gaussian posterior exactly when a data step minimises the perturbed likelihood plus a perturbed
        prior term."""
        raise NotImplementedError(f"{type(self).__name__} cannot be perturbed")

    @staticmethod
    def _noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(shape, dtype=like.real.dtype, generator=generator).to(like.device)


class VisibilityLikelihood(Likelihood):
    """Complex visibilities, optionally with station gains ``g`` applied to the model."""

    name = "vis"

    def __init__(self, y: Tensor, op, gains: StationGains | None = None):
        super().__init__(y, op)
        self.gains = gains

    @property
    def n_data(self) -> int:
        return int(self.valid.sum())

    def perturbed(self, k: int, generator: torch.Generator | None = None) -> VisibilityLikelihood:
        new = copy.copy(self)
        m = self.y.shape[1]
        eps = torch.complex(self._noise((k, m), self.y, generator), self._noise((k, m), self.y, generator))
        new.y = self.y + self.sigma * eps * self.valid
        return new

    def _factor(self) -> Tensor | None:
        return None if self.gains is None else self.gains.factor().to(self.y.device)

    def chi2_of(self, v: Tensor) -> Tensor:
        f = self._factor()
        if f is not None:
            v = v * f
        r = ((self.y - v).abs() / self.sigma.clamp_min(1e-300)) ** 2
        return (r * self.valid).sum(-1) / (2 * max(self.n_data, 1))

    def loss_of_chi2(self, chi2: Tensor) -> Tensor:
        return self.n_data * chi2


class AmplitudeLikelihood(Likelihood):
    """Visibility amplitudes (debiased as ehtim does), optionally with amplitude gains."""

    name = "amp"

    def __init__(self, y: Tensor, op, debias: bool = True, gains: StationGains | None = None):
        super().__init__(y, op)
        a = self.y[0].abs()
        self.amp = debias_amplitudes(a, self.sigma) if debias else a
        self.gains = gains

    @property
    def n_data(self) -> int:
        return int(self.valid.sum())

    def perturbed(self, k: int, generator: torch.Generator | None = None) -> AmplitudeLikelihood:
        new = copy.copy(self)
        new.amp = self.amp + self.sigma * self._noise((k, self.amp.shape[-1]), self.amp, generator) * self.valid
        return new

    def chi2_of(self, v: Tensor) -> Tensor:
        a = v.abs()
        if self.gains is not None:
            a = a * self.gains.factor().abs().to(a.device)
        r = ((self.amp - a) / self.sigma.clamp_min(1e-300)) ** 2
        return (r * self.valid).sum(-1) / max(self.n_data, 1)


class _ClosureLikelihood(Likelihood):
    def __init__(self, y: Tensor, op, data: ClosureData | None = None, debias: bool = True,
                 avg_time: float | None = None, snrcut: float = 0.0):
        super().__init__(y, op)
        self.data = data if data is not None else closure_data(y, op, debias=debias, avg_time=avg_time,
                                                                snrcut=snrcut)

    #: the :class:`ClosureData` field this likelihood fits (its σ's are ``<field>_sigma``)
    field = "cphase"

    @property
    def n_data(self) -> int:
        return int(getattr(self.data, self.field).shape[-1])

    def perturbed(self, k: int, generator: torch.Generator | None = None) -> _ClosureLikelihood:
        new = copy.copy(self)
        values, sigma = getattr(self.data, self.field), getattr(self.data, self.field + "_sigma")
        noise = self._noise((k, values.shape[-1]), values, generator)
        new.data = dataclasses.replace(self.data, **{self.field: values + sigma * noise})
        return new


class ClosurePhaseLikelihood(_ClosureLikelihood):
    """Closure phases of a non-redundant set of triangles per integration (gain invariant)."""

    name = field = "cphase"

    def chi2_of(self, v: Tensor) -> Tensor:
        if self.n_data == 0:
            raise ValueError("no closure phases: need integrations with >= 3 stations")
        d = self.data
        psi = d.index.model_cphase(v, d.cphase_weight.to(v.device))
        dev = d.cphase.to(psi.device)
        sig = d.cphase_sigma.to(psi.device)
        return (2.0 / self.n_data) * ((1.0 - torch.cos(dev - psi)) / sig**2).sum(-1)


class LogClosureAmplitudeLikelihood(_ClosureLikelihood):
    """Log closure amplitudes of a non-redundant set of quadrangles per integration (gain invariant)."""

    name = field = "logcamp"

    def chi2_of(self, v: Tensor) -> Tensor:
        if self.n_data == 0:
            raise ValueError("no log closure amplitudes: need integrations with >= 4 stations")
        d = self.data
        lc = d.index.model_logcamp(v, d.logcamp_weight.to(v.device))
        return (((d.logcamp.to(lc.device) - lc) / d.logcamp_sigma.to(lc.device)) ** 2).sum(-1) / self.n_data


class RiceLogClosureAmplitudeLikelihood(LogClosureAmplitudeLikelihood):
    """Log closure amplitudes whose mean and variance come from the *model's* SNR (the Rice distribution).

    The data statistic is the log closure amplitude of the raw measured amplitudes, ``l = Σ± log|y_i|``
    (four independent visibilities, ``+`` numerator, ``−`` denominator). For model visibilities ``v`` its mean
    and variance are exact sums of the Rice moments (:func:`~ambient_imaging.interferometry.rice.log_amplitude_moments`
    at ``ρ_i = |v_i| / σ_i``): ``m = Σ± (μ(ρ_i) + log σ_i)``, ``s² = Σ ν(ρ_i)``. The fit minimises the Gaussian
    deviance per datum

        D = (1/N) Σ [ (l − m)² / s² + log(s² / s_d²) ],

    with ``s_d² = Σ σ_i² / |y_i|²`` (the data's first-order variance, a constant) so that ``D`` is the reduced χ²
    of ehtim's statistic wherever every SNR is high. Near a null of the model (``ρ → 0``) the mean tends to the
    noise's ``log σ + 0.058`` and the variance to ``0.411`` per visibility, so a fit is not pushed to fill nulls
    that the data cannot see. The variance is taken at ``max(ρ_i, ρ_d,i)``, with ``ρ_d = sqrt(|y|²/σ² − 2)`` the
    data's debiased SNR: a Gaussian in ``log a`` has too light a penalty for a model null where the data hold
    signal (the Rice density falls as ``exp(−a²/2σ²)`` there), and without this floor a fit could put nulls under
    significant data to widen its own error bars. ``ρ`` uses the data's σ's with the model's amplitudes, i.e. it
    takes the station gains as ≈ 1 (a-priori calibrated data); at high SNR ``D`` does not depend on them.

    Reported χ²'s stay ehtim's (:func:`chi2_report`); this class is what RML fits (``RML(logcamp_noise="rice")``).
    Closure averaging in time bins (``avg_time``) is not supported: the statistic is per integration.
    """

    def __init__(self, y: Tensor, op, data: ClosureData | None = None, debias: bool = True,
                 avg_time: float | None = None, snrcut: float = 0.0):
        super().__init__(y, op, data, debias, avg_time, snrcut)
        idx = self.data.index
        if idx.n_quad_bins != idx.quad_rows.shape[0]:
            raise ValueError("RiceLogClosureAmplitudeLikelihood: closure time bins (avg_time) are not supported; "
                             "average the visibilities instead (reconstruct --avg-time)")
        self._sign = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
        amp = self.y[0].abs().clamp_min(1e-300)
        q = idx.quad_rows
        self._lc = (torch.log(amp)[q] * self._sign).sum(-1)[None]  # (1, Q) data statistic
        self._log_sd2 = torch.log(((self.sigma / amp) ** 2)[q].sum(-1))
        # the data's SNR, debiased (E|y|² = |V|² + 2σ²): the variance never exceeds what it allows
        self._snr_d = torch.sqrt(((amp / self.sigma) ** 2 - 2.0).clamp_min(0.0))

    def _moments(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance ``(K, Q)`` of the data statistic under model visibilities ``v``."""
        if self.n_data == 0:
            raise ValueError("no log closure amplitudes: need integrations with >= 4 stations")
        q = self.data.index.quad_rows.to(v.device)
        sig = self.sigma.to(device=v.device, dtype=v.real.dtype)
        rho = v.abs() / sig
        mean, _ = log_amplitude_moments(rho)
        _, var = log_amplitude_moments(torch.maximum(rho, self._snr_d.to(rho)))
        sign = self._sign.to(device=v.device, dtype=v.real.dtype)
        return ((mean + torch.log(sig))[:, q] * sign).sum(-1), var[:, q].sum(-1)

    def chi2_of(self, v: Tensor) -> Tensor:
        """The deviance per datum ``D`` (what a fit minimises; the reduced χ² at high SNR)."""
        m, s2 = self._moments(v)
        dev = (self._lc.to(m) - m) ** 2 / s2 + torch.log(s2) - self._log_sd2.to(m)
        return dev.sum(-1) / self.n_data

    def pearson_chi2(self, x: Tensor) -> Tensor:
        """``(1/N) Σ (l − m)² / s²`` ``(K,)``: about 1 for the true image at any SNR (``m`` and, where the data
        are noise, ``s²`` are the exact moments of ``l``), unlike ehtim's statistic, whose χ² grows where
        visibilities are noise."""
        m, s2 = self._moments(self.model(x))
        return ((self._lc.to(m) - m) ** 2 / s2).sum(-1) / self.n_data

    def perturbed(self, k: int, generator: torch.Generator | None = None) -> RiceLogClosureAmplitudeLikelihood:
        new = copy.copy(self)
        noise = self._noise((k, self._lc.shape[-1]), self._lc, generator)
        new._lc = self._lc + torch.exp(0.5 * self._log_sd2) * noise
        return new


LIKELIHOODS = {
    "vis": VisibilityLikelihood,
    "amp": AmplitudeLikelihood,
    "cphase": ClosurePhaseLikelihood,
    "logcamp": LogClosureAmplitudeLikelihood,
}


def _weighted_chi2s(likelihoods: dict[str, Likelihood], weights: dict[str, float], x: Tensor):
    """``(weight, likelihood, χ²)`` of every likelihood with a non-zero weight, with one forward transform
    when they share their operator (the usual case: :func:`make_likelihoods`) instead of one per product."""
    used = [(n, lk) for n, lk in likelihoods.items() if weights.get(n, 0)]
    shared = bool(used) and all(lk.op is used[0][1].op for _, lk in used)
    v = used[0][1].model(x) if shared else None
    for name, lk in used:
        yield weights[name], lk, (lk.chi2_of(v) if v is not None else lk.chi2(x))


def total_chi2(likelihoods: dict[str, Likelihood], weights: dict[str, float], x: Tensor) -> Tensor:
    """``Σ w_d χ²_d(x)`` ``(K,)`` over the likelihoods with a non-zero weight (one transform for all)."""
    return sum((w * c for w, _, c in _weighted_chi2s(likelihoods, weights, x)), x.new_zeros(x.shape[0]))


def total_loss(likelihoods: dict[str, Likelihood], weights: dict[str, float], x: Tensor) -> Tensor:
    """``Σ w_d loss_d(x)`` ``(K,)``: the weighted negative log-likelihood (one transform for all)."""
    return sum((w * lk.loss_of_chi2(c) for w, lk, c in _weighted_chi2s(likelihoods, weights, x)),
               x.new_zeros(x.shape[0]))


def parse_data_terms(spec: str | dict[str, float] | None, default: str = "cphase,logcamp") -> dict[str, float]:
    """``"cphase,logcamp,amp:0.2"`` or ``{"cphase": 1, ...}`` → ``{name: weight}`` (weight 1 unless given)."""
    if spec is None:
        spec = default
    if isinstance(spec, dict):
        terms = {str(k).strip().lower(): float(v) for k, v in spec.items()}
    else:
        terms = {}
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, _, w = part.partition(":") if ":" in part else part.partition("=")
            try:
                terms[name.strip().lower()] = float(w) if w else 1.0
            except ValueError as err:
                raise ValueError(f"data term {part!r}: the weight must be a number (e.g. amp:0.2)") from err
    unknown = sorted(set(terms) - set(LIKELIHOODS))
    if unknown or not terms:
        raise ValueError(f"unknown data terms {unknown or spec!r}; choose from {', '.join(LIKELIHOODS)}")
    for k, w in terms.items():
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"data term {k}: weight must be >= 0, got {w}")
    return terms


#: how the log closure amplitudes' noise is modelled in a fit: ehtim's first-order σ's from the data, or the
#: Rice moments at the model's SNR (:class:`RiceLogClosureAmplitudeLikelihood`)
LOGCAMP_NOISE = {"ehtim": LogClosureAmplitudeLikelihood, "rice": RiceLogClosureAmplitudeLikelihood}


def make_likelihoods(y: Tensor, op, terms, gains: StationGains | None = None, debias: bool = True,
                     avg_time: float | None = None, snrcut: float = 0.0,
                     logcamp: type[LogClosureAmplitudeLikelihood] = LogClosureAmplitudeLikelihood,
                     ) -> dict[str, Likelihood]:
    """One likelihood per data term (``terms``: names or :func:`parse_data_terms` input); ``logcamp`` is the
    class that fits the log closure amplitudes (a value of :data:`LOGCAMP_NOISE`)."""
    names = parse_data_terms(terms) if not isinstance(terms, (list, tuple)) else {t: 1.0 for t in terms}
    out: dict[str, Likelihood] = {}
    cdata = None
    for n in names:
        if n == "vis":
            out[n] = VisibilityLikelihood(y, op, gains)
        elif n == "amp":
            out[n] = AmplitudeLikelihood(y, op, debias, gains)
        else:
            if cdata is None:
                cdata = closure_data(y, op, debias=debias, avg_time=avg_time, snrcut=snrcut)
            out[n] = (logcamp if n == "logcamp" else LIKELIHOODS[n])(y, op, data=cdata)
    return out


def chi2_report(x: Tensor, y: Tensor, op, gains: StationGains | None = None, debias: bool = True,
                avg_time: float | None = None) -> dict[str, float]:
    """Reduced χ² of image ``x`` ``(1, 1, H, W)`` for every data product that applies:
    ``{"chi2_vis", "chi2_amp"[, "chi2_cphase", "chi2_logcamp", "chi2_logcamp_rice"]}`` (closures need
    stations/times on the operator and enough stations per integration). All are ehtim's but
    ``chi2_logcamp_rice``: the Pearson χ² of the raw log closure amplitudes against their Rice moments
    (:meth:`RiceLogClosureAmplitudeLikelihood.pearson_chi2`), which stays calibrated at low SNR."""
    terms = ["vis", "amp"]
    closures = getattr(op, "stations", None) is not None
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, lk in make_likelihoods(y, op, terms, gains, debias).items():
            out[f"chi2_{name}"] = float(lk.chi2(x)[0])
        if closures:
            cdata = closure_data(y, op, debias=debias, avg_time=avg_time)
            for cls in (ClosurePhaseLikelihood, LogClosureAmplitudeLikelihood):
                lk = cls(y, op, data=cdata)
                if lk.n_data:
                    out[f"chi2_{lk.name}"] = float(lk.chi2(x)[0])
            if "chi2_logcamp" in out and cdata.index.n_quad_bins == cdata.index.quad_rows.shape[0]:
                rice = RiceLogClosureAmplitudeLikelihood(y, op, data=cdata)
                out["chi2_logcamp_rice"] = float(rice.pearson_chi2(x)[0])
    return out
