"""Regularised maximum likelihood (RML) imaging for VLBI data, ehtim-style.

``RML()(y, op) -> Reconstruction`` minimises over positive images ``x`` (Jy/pixel)::

    Σ_d α_d χ²_d(x)  +  Σ_r β_r R_r(x)

with reduced χ²'s of the chosen data products (:mod:`.likelihoods`: ``vis``, ``amp``, ``cphase``,
``logcamp``) and the regularisers (ehtim's normalisations; ``F`` the total flux, ``θ`` the nominal
resolution ``1/max|uv|``, ``Δ`` the pixel, ``P`` the prior image)

==========  ===============================================================
``mem``     relative entropy to the Gaussian prior ``P``: ``Σ x log(x/P) / F``
``tv``      total variation ``Σ |∇x| / (F Δ/θ)``
``tsv``     total squared variation ``Σ |∇x|² / (F² Δ²/θ²)``
``l1``      ``Σ |x| / F``
``flux``    ``(Σ x − F)² / F²``
``centroid``  ``|Σ x r / Σ x|² / θ²`` (keeps the image centred; closures do not fix position)
==========  ===============================================================

* positivity by reparametrisation, ``x = exp(z)`` (default) or ``softplus(z)``;
* start: a circular Gaussian (FWHM ``prior_fwhm``, default a quarter of the field: 40 µas for
  ``--fov 160uas``) holding the compact flux (``total_flux``, else estimated); on VLBI data with
  intra-site baselines those are rescaled to it first (zero-baseline vs compact flux,
  :mod:`ambient_imaging.interferometry.compact`; otherwise the flux is the median amplitude on the
  shortest baselines);
* ``rounds`` of L-BFGS, each after the first starting from the previous image blurred to
  ``blur_frac · θ`` (blur-and-reimage, as in ehtim scripts);
* ``selfcal=True``: station gains are solved against the current image before every round after
  the first (:func:`~ambient_imaging.interferometry.solve_gains`) and applied to the ``vis``/``amp``
  terms; the first round images with the closure terms if there are any (else the Gaussian is the
  self-calibration model).

``info`` carries ``chi2_vis``, ``chi2_amp``, ``chi2_cphase``, ``chi2_logcamp`` (lists, one per
measurement) for the products the fit used, ``chi2_unfitted`` (the χ² of the other products the
data allow, for information: e.g. ``vis`` of a closure-only fit is large when the data carry
station gains), ``warnings`` (:func:`fit_warnings`) and timings.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.interferometry.compact import ZBL_UV_CUT, compact_flux_data
from ambient_imaging.interferometry.flux import gaussian_image
from ambient_imaging.interferometry.gains import StationGains, solve_gains, station_slots

from .denoiser import Reconstruction
from .likelihoods import LOGCAMP_NOISE, chi2_report, make_likelihoods, parse_data_terms, total_chi2
from .method import Method

__all__ = ["RML", "fit_warnings", "rml_from_options", "positive", "positive_inverse", "REGULARISERS", "CHI2_LIMIT",
           "POSITIVITY", "RICE_BELOW_SNR", "LOGCAMP_NOISE_RULES", "resolve_logcamp_noise"]

REGULARISERS = ("mem", "tv", "tsv", "l1", "flux", "centroid")
#: ``logcamp_noise`` (``--logcamp-noise``): ``"auto"`` (:func:`resolve_logcamp_noise`) or a model of
#: :data:`~.likelihoods.LOGCAMP_NOISE`
LOGCAMP_NOISE_RULES = ("auto", "rice", "ehtim")
CHI2_LIMIT = 10.0
Z_MAX = 50.0
#: chosen on simulated EHT 2017 crescents (docs/interferometry.md, "Choosing the regularisers"):
#: TV biases rings small and fills them; TSV (ehtim's tv2) does not
DEFAULT_REG = {"mem": 1.0, "tsv": 3.0, "flux": 10.0, "centroid": 1.0}


def parse_reg_terms(spec: str | dict[str, float] | None) -> dict[str, float]:
    """``"mem:1,tv:0.3"`` or a dict → ``{name: weight}``; ``None`` → the defaults."""
    if spec is None:
        return dict(DEFAULT_REG)
    if isinstance(spec, dict):
        terms = {str(k).lower(): float(v) for k, v in spec.items()}
    else:
        terms = {}
        for part in str(spec).split(","):
            if part.strip():
                name, _, w = part.partition(":")
                terms[name.strip().lower()] = float(w) if w else 1.0
    bad = sorted(set(terms) - set(REGULARISERS))
    if bad:
        raise ValueError(f"unknown regularisers {bad}; choose from {', '.join(REGULARISERS)}")
    return terms


#: positive reparametrisations of an image, ``x = exp(z)`` or ``x = softplus(z)`` (RML, likelihood-daps)
POSITIVITY = ("exp", "softplus")


def positive(z: Tensor, kind: str) -> Tensor:
    """``x = exp(z)`` or ``softplus(z)`` (``kind`` in :data:`POSITIVITY`)."""
    return torch.exp(z) if kind == "exp" else torch.nn.functional.softplus(z)


def positive_inverse(x: Tensor, kind: str) -> Tensor:
    """``z`` with ``positive(z, kind) = x`` for ``x > 0``: ``log x``, or the inverse of softplus,
    ``log(e^x − 1) = x + log(1 − e^{−x})`` (stable for large and small ``x``)."""
    return torch.log(x) if kind == "exp" else x + torch.log(-torch.expm1(-x))


def _blur(x: Tensor, pixel: float, fwhm: float) -> Tensor:
    """Circular Gaussian blur (FFT, periodic) of ``(B, 1, H, W)`` images, total flux kept."""
    if fwhm <= 0:
        return x
    k = gaussian_image(tuple(x.shape[-2:]), pixel, fwhm, 1.0, x.dtype)[0, 0]
    kf = torch.fft.rfft2(torch.fft.ifftshift(k))
    return torch.fft.irfft2(torch.fft.rfft2(x) * kf, s=x.shape[-2:])


@dataclass
class RML(Method):
    """RML imager (see the module docs). Call as ``RML(...)(y, op)`` like the other baselines.

    Args:
        data_terms: ``{"cphase": 1, "logcamp": 1}`` (default), any of vis/amp/cphase/logcamp, or a
            string ``"cphase,logcamp,amp:0.2"``.
        reg_terms: regulariser weights (default :data:`DEFAULT_REG`: ``mem 1, tsv 3, flux 10, centroid 1``).
        total_flux: the compact flux in Jy (``--flux``); default estimated. Intra-site baselines (EHT:
            ALMA–APEX, SMA–JCMT), which also see extended emission, are rescaled to it
            (:func:`~ambient_imaging.interferometry.compact.compact_flux_data`).
        prior_fwhm: FWHM (radians) of the Gaussian prior/start; default a quarter of the field.
        positivity: ``"exp"`` or ``"softplus"``.
        rounds, iters: blur-and-reimage rounds and L-BFGS iterations per round.
        blur_frac: blur FWHM between rounds, in units of the nominal resolution ``1/max|uv|``.
        selfcal: solve station gains for the ``vis``/``amp`` terms (``True``/``"amp+phase"`` or
            ``"phase"``).
        debias, avg_time, snrcut: closure options (:func:`~ambient_imaging.interferometry.closure_data`).
        logcamp_noise: how the fit models the log closure amplitudes' noise: ``"ehtim"`` (first-order σ's of
            the measured amplitudes), ``"rice"`` (mean and variance at the model's SNR,
            :class:`~ambient_imaging.sampling.likelihoods.RiceLogClosureAmplitudeLikelihood`; needs
            ``avg_time=None``; the first round always fits ehtim's statistic, the Rice model refines from the
            second) or ``"auto"`` (default, :func:`resolve_logcamp_noise`: ``"rice"`` when the median log closure
            amplitude has SNR below :data:`RICE_BELOW_SNR`, where the first-order σ's fail, else ``"ehtim"``).
            Reported: ehtim's χ²'s, and ``chi2_logcamp_rice``, which judges a Rice fit.
        chi2_limit: χ² above which :func:`fit_warnings` warns.
    """

    name = "rml"
    kinds = frozenset({"visibilities"})
    options = frozenset({"steps", "data_terms", "selfcal", "flux", "logcamp_noise"})

    data_terms: dict[str, float] | str | None = None
    reg_terms: dict[str, float] | str | None = None
    total_flux: float | None = None
    prior_fwhm: float | None = None
    positivity: str = "exp"
    rounds: int = 3
    iters: int = 200
    blur_frac: float = 0.5
    selfcal: bool | str = False
    debias: bool = True
    avg_time: float | None = None
    snrcut: float = 0.0
    logcamp_noise: str = "auto"
    chi2_limit: float = CHI2_LIMIT
    zbl_uv_cut: float | None = ZBL_UV_CUT
    info_extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_prior(cls, prior: Any = None, **options: Any) -> RML:
        """The imager from the user's validated options (``steps``: L-BFGS iterations per round;
        ``flux``: the compact flux in Jy, :mod:`ambient_imaging.interferometry.compact`)."""
        kw = cls.accepted(prior, **options)
        return rml_from_options(kw.get("data_terms") or "cphase,logcamp", selfcal=bool(kw.get("selfcal")),
                                iters=kw.get("steps"), total_flux=kw.get("flux"),
                                logcamp_noise=kw.get("logcamp_noise"))

    def __post_init__(self):
        self.data_terms = parse_data_terms(self.data_terms)
        self.reg_terms = parse_reg_terms(self.reg_terms)
        if self.positivity not in POSITIVITY:
            raise ValueError(f"RML: positivity must be 'exp' or 'softplus', got {self.positivity!r}")
        if self.selfcal not in (False, True, "phase", "amp+phase"):
            raise ValueError(f"RML: selfcal must be False, True, 'phase' or 'amp+phase', got {self.selfcal!r}")
        if int(self.rounds) < 1 or int(self.iters) < 1:
            raise ValueError("RML: rounds and iters must be >= 1")
        if self.logcamp_noise not in LOGCAMP_NOISE_RULES:
            raise ValueError(f"RML: logcamp_noise must be one of {list(LOGCAMP_NOISE_RULES)}, "
                             f"got {self.logcamp_noise!r}")
        if self.logcamp_noise == "rice" and self.avg_time is not None:
            raise ValueError("RML: the Rice model of log closure amplitudes works per integration: with closure time "
                             "bins (avg_time) use logcamp_noise='ehtim', or average the visibilities instead "
                             "(reconstruct --avg-time)")

    # ---- helpers ---------------------------------------------------------------------------------
    def _to_x(self, z: Tensor) -> Tensor:
        # z ≤ 50 (e^50 Jy per pixel, absurd but finite): a line-search probe far out (L-BFGS can propose one
        # after a poor curvature pair) then gets a huge objective and is backed off, instead of overflowing
        # to inf/NaN, which the strong-Wolfe search cannot bracket
        return positive(z.clamp(max=Z_MAX), self.positivity)

    def _to_z(self, x: Tensor) -> Tensor:
        x = x.clamp_min(float(x.max()) * 1e-10 + 1e-300)
        return positive_inverse(x, self.positivity)

    def _likelihoods(self, y: Tensor, op, terms: dict, gains: StationGains | None, noise: str = "ehtim") -> dict:
        return make_likelihoods(y, op, terms, gains, self.debias, self.avg_time, self.snrcut,
                                logcamp=LOGCAMP_NOISE[noise])

    def _regulariser(self, x: Tensor, prior: Tensor, flux: float, pixel: float, res: float) -> Tensor:
        reg = x.new_zeros(x.shape[0])
        w = self.reg_terms
        tot = x.sum(dim=(1, 2, 3))
        if w.get("mem", 0):
            reg = reg + w["mem"] * (x * torch.log(x / prior) - x + prior).sum(dim=(1, 2, 3)) / flux
        if w.get("tv", 0) or w.get("tsv", 0):
            dx = torch.diff(x, dim=-1, append=x[..., -1:])
            dy = torch.diff(x, dim=-2, append=x[..., -1:, :])
            if w.get("tv", 0):
                eps = 1e-8 * flux
                tv = torch.sqrt(dx**2 + dy**2 + eps**2).sum(dim=(1, 2, 3))
                reg = reg + w["tv"] * tv / (flux * pixel / res)
            if w.get("tsv", 0):
                reg = reg + w["tsv"] * (dx**2 + dy**2).sum(dim=(1, 2, 3)) / (flux * pixel / res) ** 2
        if w.get("l1", 0):
            reg = reg + w["l1"] * x.abs().sum(dim=(1, 2, 3)) / flux
        if w.get("flux", 0):
            reg = reg + w["flux"] * (tot - flux) ** 2 / flux**2
        if w.get("centroid", 0):
            h, wd = x.shape[-2:]
            yy = (torch.arange(h, dtype=x.dtype, device=x.device) - h // 2) * pixel
            xx = (torch.arange(wd, dtype=x.dtype, device=x.device) - wd // 2) * pixel
            cy = (x.sum(-1)[:, 0] * yy).sum(-1) / tot
            cx = (x.sum(-2)[:, 0] * xx).sum(-1) / tot
            reg = reg + w["centroid"] * (cx**2 + cy**2) / res**2
        return reg

    def _fit(self, z0: Tensor, likelihoods: dict, weights: dict, prior, flux, pixel, res) -> Tensor:
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([z], lr=1.0, max_iter=int(self.iters), history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            x = self._to_x(z)
            obj = (self._regulariser(x, prior, flux, pixel, res) + total_chi2(likelihoods, weights, x)).sum()
            obj.backward()
            return obj

        with torch.enable_grad():
            opt.step(closure)
        return z.detach()

    # ---- the imager ------------------------------------------------------------------------------
    def __call__(self, y: Tensor, op) -> Reconstruction:
        t0 = time.perf_counter()
        outs, infos = [], []
        for b in range(y.shape[0]):
            ob = op if op.batch_size == 1 else op[b]
            x, info = self._single(y[b : b + 1], ob)
            outs.append(x)
            infos.append(info)
        rec = Reconstruction(torch.cat(outs)[:, None], nfe=0)
        keys = sorted({k for i in infos for k in i if k.startswith("chi2_") and k != "chi2_unfitted"})
        rec.info.update(method="rml", data_terms=dict(self.data_terms), reg_terms=dict(self.reg_terms),
                        logcamp_noise=[i["logcamp_noise"] for i in infos],
                        selfcal=self.selfcal, rounds=self.rounds, iters=self.iters,
                        total_flux=[i["total_flux"] for i in infos], **self.info_extra)
        for k in keys:
            rec.info[k] = [i.get(k, float("nan")) for i in infos]
        rec.info["chi2_unfitted"] = [i["chi2_unfitted"] for i in infos]
        rec.info["gains"] = [i.get("gains") for i in infos]
        rec.info["all_zero"] = [i["all_zero"] for i in infos]
        rec.info["compact_flux"] = [i["compact_flux"] for i in infos]
        rec.info["zero_baseline_flux"] = [i["zero_baseline_flux"] for i in infos]
        rec.info["seconds"] = time.perf_counter() - t0
        rec.info["warnings"] = fit_warnings(rec.info, limit=self.chi2_limit)
        return rec

    def _single(self, y: Tensor, op) -> tuple[Tensor, dict[str, Any]]:
        y = y.to(torch.complex128)
        op = op.to(dtype=torch.float64)
        h, w = op.image_shape
        pixel = float(op.pixel_scale)
        uvmax = float(op.uv[torch.broadcast_to(op.mask, op.uv.shape[:2])].norm(dim=-1).max())
        res = 1.0 / uvmax
        y, op, compact = compact_flux_data(y, op, self.total_flux, self.zbl_uv_cut)
        flux = compact.flux
        if not (math.isfinite(flux) and flux > 0):
            raise ValueError(f"RML: total flux must be positive, got {flux}")
        fwhm = float(self.prior_fwhm) if self.prior_fwhm is not None else 0.25 * w * pixel
        prior = gaussian_image((h, w), pixel, fwhm, flux).to(y.real.dtype)
        prior = prior.clamp_min(flux * 1e-12 / (h * w))
        terms = dict(self.data_terms)
        selfcal = self.selfcal if self.selfcal is not False else None
        mode = "amp+phase" if selfcal is True else selfcal
        gains: StationGains | None = None
        slots = None
        if selfcal is not None:
            if op.stations is None:
                raise ValueError("RML: selfcal needs station pairs and times on the operator "
                                 "(Visibilities.to_operator sets them)")
            slots = station_slots(op.stations, op.times)
        liks = self._likelihoods(y, op, terms, None)
        noise = self.logcamp_noise
        if noise == "auto":
            noise = resolve_logcamp_noise(liks["logcamp"].data) if "logcamp" in liks and self.avg_time is None \
                else "ehtim"
        # the first round fits ehtim's log closure amplitudes (the likelihoods just built): from the Gaussian start
        # the long baselines see ~0 flux, where the Rice mean is flat (no gradient to grow structure); later rounds
        # fit the Rice model on the same closure data
        first = liks
        if noise != "ehtim" and "logcamp" in liks:
            liks = {**liks, "logcamp": LOGCAMP_NOISE[noise](y, op, data=liks["logcamp"].data)}
        closure_terms = {k: v for k, v in terms.items() if k in ("cphase", "logcamp")}
        z = self._to_z(prior)
        wts = op.visibility_weights(y)[0] * 2.0  # 1/σ² per component
        for r in range(int(self.rounds)):
            if r > 0:
                z = self._to_z(_blur(self._to_x(z), pixel, self.blur_frac * res))
            round_terms = terms
            if selfcal is not None:
                if r == 0 and closure_terms:
                    round_terms = closure_terms
                else:
                    model = op.forward(self._to_x(z))[0]
                    start = slots if gains is None else gains
                    gains = solve_gains(y[0], model, start, wts, mode=mode)
                    liks = self._likelihoods(y, op, terms, gains, noise)
            use = first if r == 0 else liks
            z = self._fit(z, {k: use[k] for k in round_terms}, round_terms, prior, flux, pixel, res)
        x = self._to_x(z).detach()
        report = chi2_report(x, y, op, gains, self.debias, self.avg_time)
        # the χ²'s of the products the fit used judge it (chi2_fitted: a Rice fit of the log closure amplitudes
        # by the calibrated chi2_logcamp_rice); ehtim's χ² of every fitted product is reported too (and the Rice χ²
        # of the log closure amplitudes whichever model was fitted), and the products not fitted go to chi2_unfitted
        rice = noise == "rice" and int(self.rounds) > 1  # (one round: ehtim's statistic only)
        judged = [f"chi2_{t}_rice" if t == "logcamp" and rice else f"chi2_{t}" for t in terms]
        info: dict[str, Any] = {k: v for k, v in report.items()
                                if k in judged or k[5:] in terms or (k == "chi2_logcamp_rice" and "logcamp" in terms)}
        info["chi2_unfitted"] = {k: v for k, v in report.items() if k not in info}
        info["chi2_fitted"] = judged
        info["logcamp_noise"] = noise
        info["total_flux"] = flux
        info["compact_flux"] = compact.describe()
        info["zero_baseline_flux"] = compact.zero_baseline_flux
        info["gains"] = gains
        info["all_zero"] = bool(float(x.abs().max()) <= 0 or float(x.sum()) <= 1e-12 * max(flux, 1e-30))
        return x, info


def fit_warnings(info: dict[str, Any], image: Tensor | None = None, limit: float = CHI2_LIMIT) -> list[str]:
    """Honest-failure check of a reconstruction's ``info``: a list of warnings (empty when the fit is fine).

    Warns when the image is all zero (``info["all_zero"]`` or ``image``) or any ``chi2_*`` exceeds
    ``limit``, saying what to try. The CLI prints them; ``--strict`` turns them into an error.
    """
    msgs: list[str] = []

    def values(v) -> list[float]:
        if isinstance(v, (list, tuple)):
            return [float(a) for a in v if a is not None]
        return [float(v)]

    zero = any(bool(z) for z in (info.get("all_zero") or []) if z is not None) if isinstance(
        info.get("all_zero"), (list, tuple)) else bool(info.get("all_zero", False))
    if image is not None and float(image.abs().max()) <= 0:
        zero = True
    if zero:
        msgs.append("the reconstruction is all zero: no positive image fits these data. For VLBI data with "
                    "uncalibrated station phases use closure quantities (--sampler rml --data-terms cphase,logcamp) "
                    "or self-calibration (--selfcal); check that --fov and --npix cover the source.")
    hints = {
        "chi2_vis": "complex visibilities are not fit: the data probably carry station gains (VLBI) — use "
                    "--data-terms cphase,logcamp[,amp] or add --selfcal; or the file's weights underestimate the noise",
        "chi2_amp": "visibility amplitudes are not fit: amplitude gains or a wrong total flux — add --selfcal, "
                    "lower the amp weight, or fit closure quantities only",
        "chi2_cphase": "closure phases are not fit: widen --fov, raise --npix, lower the regulariser weights "
                       "(more iterations/rounds; likelihood-dps: raise --zeta or --steps, or the prior does not "
                       "cover this source), or check the data's σ's (add a systematic error: --sys-noise 0.02)",
        "chi2_logcamp": "log closure amplitudes are not fit: widen --fov, raise --npix, lower the regulariser "
                        "weights (likelihood-dps: raise --zeta or --steps), or check the data's σ's (add a "
                        "systematic error: --sys-noise 0.02)",
        "chi2_red": "the data are not fit (reduced χ² of the complex visibilities): for VLBI data use "
                    "--sampler rml --data-terms cphase,logcamp or --selfcal",
    }
    hints["chi2_logcamp_rice"] = hints["chi2_logcamp"]
    products = {k for k in hints if k != "chi2_red" and k in info}
    judged = info.get("chi2_fitted")  # RML: the χ²'s that judge the fit (one list per measurement)
    if judged:
        judged = {k for j in (judged if isinstance(judged[0], (list, tuple)) else [judged]) for k in j}
    for key, hint in hints.items():
        if key not in info or (key == "chi2_red" and products):  # a fit of chosen products: judged on them
            continue
        if judged and key not in judged:  # reported for information (e.g. ehtim's χ² beside a Rice fit)
            continue
        vals = [v for v in values(info[key]) if math.isfinite(v)]
        if vals and max(vals) > limit:
            msgs.append(f"{key} = {max(vals):.3g} > {limit:g}: {hint}.")
    return msgs


#: below this median SNR of the log closure amplitudes (1/σ, ehtim's first-order σ) ``logcamp_noise="auto"`` fits the
#: Rice model, where the weakest visibility of a typical quadrangle is within a few σ of zero and the first-order σ
#: and debiasing fail. Chosen on the coverage simulations (benchmarks/interferometry_coverage.py): with 30-s averages
#: (median SNR 1.9–4.8 there) the Rice model cut the mean |ΔD| from 3.0 to 1.8 µas, crescents of SNR 3.3–4.8
#: included; with scan averages (SNR > 6) both statistics gave the same rings (1.3 / 1.4 µas) and ehtim's fitted its
#: own χ² better (both comparisons before the intra-site triangles left the closure phases). EHT 2017 M87 days:
#: median 1.1–1.2 (10-s records), 1.9 (30 s), 6.2–6.9 (scans).
RICE_BELOW_SNR = 5.0


def resolve_logcamp_noise(data: Any) -> str:
    """``"rice"`` when the median SNR of the log closure amplitudes in ``data``
    (:class:`~ambient_imaging.interferometry.ClosureData`) is below :data:`RICE_BELOW_SNR`, else ``"ehtim"``."""
    sig = data.logcamp_sigma
    if sig.numel() == 0:
        return "ehtim"
    return "rice" if float((1.0 / sig).median()) < RICE_BELOW_SNR else "ehtim"


def rml_from_options(data_terms: str | None = "cphase,logcamp", selfcal: bool = False, reg_terms: str | None = None,
                     iters: int | None = None, rounds: int | None = None, total_flux: float | None = None,
                     prior_fwhm: float | None = None, avg_time: float | None = None,
                     logcamp_noise: str | None = None) -> RML:
    """Build the :class:`RML` imager from CLI-style options (``--data-terms cphase,logcamp,amp:0.2``,
    ``--selfcal``, ``--reg-terms mem:1,tv:0.3``, ``--logcamp-noise ehtim``, ...); ``None`` keeps a default."""
    kw: dict[str, Any] = {"data_terms": data_terms, "selfcal": bool(selfcal), "reg_terms": reg_terms,
                          "total_flux": total_flux, "prior_fwhm": prior_fwhm, "avg_time": avg_time}
    if logcamp_noise is not None:
        kw["logcamp_noise"] = str(logcamp_noise)
    if iters is not None:
        kw["iters"] = int(iters)
    if rounds is not None:
        kw["rounds"] = int(rounds)
    return RML(**kw)
