"""What every sampler driven by an interferometric likelihood shares.

A :class:`LikelihoodSampler` turns one measurement into a :class:`LikelihoodPosterior` — compact-flux data
(:func:`~ambient_imaging.interferometry.compact.compact_flux_data`), the likelihoods of
:mod:`.likelihoods`, the weighted negative log-likelihood ``L`` of a Jy/pixel image, the conditioned
denoiser and the prior-units → Jy scale ``s = total_flux / k`` (the ``"flux"`` normalisation: prior
images are k · sky / total flux) — lets its subclass draw samples from it, then rescales each sample
to the compact flux, centres it on its flux centroid (closures fix neither) and reports χ² per product
of the mean and per sample (``info["chi2_<product>"]``, ``info["chi2_samples"]``; a failed fit warns,
``--strict`` errors).

Fitted to a prior (:meth:`LikelihoodSampler.fit`): its σ range, the prior's ``k`` (its images' total in
prior units, from the prior's ``flux_rule``) and, for a mask-conditioned ambient prior trained on
gridded uv data, its δ: such a prior is evaluated through one fixed training-type operator ``Ã`` per
sample (the measurement's coverage gridded to the image's uv cells and subsampled at δ, as A-DPS
does), never through an all-ones mask it was not trained on.

Samplers: :class:`~.likelihood_dps.LikelihoodDPS`, :class:`~.likelihood_daps.LikelihoodDAPS`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.interferometry.compact import ZBL_UV_CUT, compact_flux_data

from .denoiser import ConditionedDenoiser, Reconstruction
from .likelihoods import make_likelihoods, parse_data_terms, total_loss
from .method import Method
from .rml import fit_warnings
from .schedule import sigma_range

__all__ = ["LikelihoodSampler", "LikelihoodPosterior", "center_on_centroid", "failed_samples", "SAMPLE_CHI2_LIMIT"]

#: a sample whose χ² on some product exceeds ``max(SAMPLE_CHI2_LIMIT, 2 × the samples' median)`` did not fit the
#: data (its data steps ended in a poor local optimum: on simulated EHT crescents, closure χ² 2.4–38 against
#: 1.0–1.5 for the others, with bright pixels off the ring); :func:`failed_samples` names them
SAMPLE_CHI2_LIMIT = 2.0


def failed_samples(chi2_samples: dict[str, list[float]], limit: float = SAMPLE_CHI2_LIMIT) -> list[int]:
    """Indices of the samples whose χ² on any product is above ``max(limit, 2 × median over the samples)``."""
    bad: set[int] = set()
    for values in chi2_samples.values():
        v = torch.tensor([float(a) for a in values], dtype=torch.float64)
        if v.numel() == 0:
            continue
        cut = max(float(limit), 2.0 * float(v.median()))
        bad |= {i for i, a in enumerate(v.tolist()) if not a <= cut}
    return sorted(bad)


@dataclass
class LikelihoodPosterior:
    """One measurement's posterior as a likelihood-driven sampler sees it (prior units ↔ Jy: ``scale``)."""

    den: Any
    liks: dict[str, Any]
    nll: Callable[[Tensor], Tensor]
    flux: float
    scale: float
    shape: tuple[int, int]
    compact: Any
    conditioning: str
    #: ``randomized(k, generator)``: the negative log-likelihood of ``k`` samples, each with its own draw of
    #: data + noise (randomize-then-optimize data steps); ``None`` where the data cannot be perturbed
    randomized: Callable[[int, Any], Callable[[Tensor], Tensor]] | None = None


def center_on_centroid(img: Tensor) -> Tensor:
    """Images ``(K, 1, H, W)`` shifted (Fourier shift, periodic) so that each one's flux centroid is at the
    phase centre ``(H//2, W//2)``; closure phases and log closure amplitudes do not change."""
    k, _, h, w = img.shape
    tot = img.sum(dim=(-1, -2), keepdim=True).clamp_min(1e-300)
    yy = (torch.arange(h, dtype=img.dtype) - h // 2).reshape(1, 1, h, 1)
    xx = (torch.arange(w, dtype=img.dtype) - w // 2).reshape(1, 1, 1, w)
    cy = (img * yy).sum(dim=(-1, -2), keepdim=True) / tot
    cx = (img * xx).sum(dim=(-1, -2), keepdim=True) / tot
    fy = torch.fft.fftfreq(h, dtype=img.dtype).reshape(1, 1, h, 1)
    fx = torch.fft.fftfreq(w, dtype=img.dtype).reshape(1, 1, 1, w)
    ramp = torch.exp(2j * torch.pi * (fy * cy + fx * cx))
    return torch.fft.ifft2(torch.fft.fft2(img) * ramp).real


@dataclass
class LikelihoodSampler(Method):
    """What every sampler driven by interferometric likelihoods shares (module docs); a subclass
    draws the samples (:meth:`_sample`) and names its own settings (:meth:`settings`).

    Args:
        data_terms: e.g. ``"cphase,logcamp"`` or ``{"cphase": 1, "logcamp": 1, "amp": 0.1}``.
        steps, sigma_min, sigma_max, rho: EDM schedule.
        total_flux: the compact flux in Jy (default estimated; intra-site
            baselines are rescaled to it: :func:`~ambient_imaging.interferometry.compact.compact_flux_data`).
        flux_per_image: the prior's total per image in prior units (1 for the ``"flux"`` rule).
        flux_sigma: fractional std of a Gaussian constraint on the total flux of ``s · D(x, σ)``
            (closure quantities do not constrain it; ``None`` disables it).
        zbl_uv_cut: intra-site baselines are shorter (wavelengths); ``None``: no compact-flux handling.
        delta: ``None``: the network sees ``x_t`` (all-ones mask channels, a plain prior); a number: it
            sees ``x_t`` through a fixed gridded ``Ã`` per sample, ``A`` subsampled at ``delta``
            (ambient priors trained on gridded visibilities; :meth:`fit` sets it).
        rescale_flux: scale each final sample to the compact flux (closure likelihoods do not fix it).
        center: shift each final sample (a Fourier shift) so that its flux centroid is the phase centre:
            closure quantities are blind to a shift, so uncentred samples would smear their mean.
        file_flux: the scale ``F`` the measurements were divided by (the prior's ``"flux"``
            normalisation); ``total_flux`` is in Jy and becomes ``total_flux / F`` in the prior's
            units. ``None``: ``y`` is in Jy (a direct call).
    """

    needs_prior = True
    kinds = frozenset({"visibilities"})

    data_terms: dict[str, float] | str | None = None
    steps: int = 100
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    total_flux: float | None = None
    flux_per_image: float = 1.0
    flux_sigma: float | None = 0.05
    zbl_uv_cut: float | None = ZBL_UV_CUT
    delta: float | None = None
    file_flux: float | None = None
    rescale_flux: bool = True
    center: bool = True
    progress: bool = False
    info_extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.data_terms = parse_data_terms(self.data_terms)

    @classmethod
    def for_prior(cls, prior: Any | None = None, **options: Any) -> LikelihoodSampler:
        """The sampler for ``prior`` with the user's validated options (``data_terms``, default
        ``cphase,logcamp``; ``flux``: the compact flux in Jy; ``steps`` and the subclass's), fitted to it."""
        kw = cls.accepted(prior, **options)
        if "flux" in kw:
            kw["total_flux"] = float(kw.pop("flux"))
        kw.setdefault("data_terms", "cphase,logcamp")
        return cls(**kw).fit(prior)

    def fit(self, prior: Any | None) -> LikelihoodSampler:
        """A copy inside the prior's σ range, with its ``k`` (``flux_rule``) and, for an ambient prior
        with mask channels, its training δ (the network then sees a gridded ``Ã`` per sample)."""
        if prior is None:
            return self
        from ambient_imaging.interferometry.flux import FLUX_RULE, parse_flux_rule

        lo, hi = sigma_range(prior, self.sigma_min, self.sigma_max)
        text = str(getattr(prior, "scale_rule", ""))
        rule = parse_flux_rule(text[max(text.find(f"{FLUX_RULE} k="), 0):])
        k = float(rule[0]) if rule else self.flux_per_image
        delta = self.delta
        if delta is None and int(getattr(prior, "mask_channels", 0) or 0) > 0 and getattr(prior, "family", "") == \
                "interferometry":
            delta = float(getattr(prior, "delta", 0.0) or 0.0)
        return dataclasses.replace(self, sigma_min=lo, sigma_max=hi, flux_per_image=k, delta=delta)

    def for_data(self, y: Tensor, op) -> LikelihoodSampler:
        """A copy that knows the scale ``F`` the prior's ``"flux"`` normalisation divides ``y`` by
        (:func:`~ambient_imaging.interferometry.flux.estimate_total_flux`), so that ``total_flux``
        (``--flux``, Jy) is applied in the prior's units. Needed only when ``total_flux`` is set."""
        from ambient_imaging.interferometry.flux import estimate_total_flux

        return dataclasses.replace(self, file_flux=float(estimate_total_flux(y, op).reshape(-1)[0]))

    def __call__(self, net, y: Tensor, op, *, samples: int = 1, mask_channels: int = 0,
                 generator: torch.Generator | None = None) -> Reconstruction:
        t0 = time.perf_counter()
        outs, infos = [], []
        for b in range(y.shape[0]):
            ob = op if op.batch_size == 1 else op[b]
            x, info = self._single(net, y[b : b + 1], ob, samples, mask_channels, generator)
            outs.append(x)
            infos.append(info)
        rec = Reconstruction(torch.stack(outs), nfe=self.steps)
        for k in sorted({k for i in infos for k in i}):
            rec.info[k] = [i.get(k) for i in infos]
        rec.info.update(method=self.name, data_terms=dict(self.data_terms), **self.settings(),
                        seconds=time.perf_counter() - t0, **self.info_extra)
        rec.info["warnings"] = fit_warnings({k: v for k, v in rec.info.items() if k.startswith("chi2_")
                                             and k != "chi2_samples"})
        for b, bad in enumerate(rec.info.get("failed_samples") or []):
            if bad:
                where = f" (measurement {b})" if y.shape[0] > 1 else ""
                rec.info["warnings"].append(
                    f"{len(bad)} of {samples} samples{where} do not fit the data (χ² above "
                    f"max({SAMPLE_CHI2_LIMIT:g}, 2 × the samples' median); samples {bad}): their data steps ended in "
                    "a poor local optimum, often with bright pixels off the source. The mean and std include them: "
                    "inspect the samples, or draw more and leave these out.")
        return rec

    def _single(self, net, y: Tensor, op, k: int, mask_channels: int, generator) -> tuple[Tensor, dict]:
        ctx = self._posterior(net, y, op, k, mask_channels, generator)
        img = self._sample(ctx, k, generator).to(torch.float64) * ctx.scale
        return self._finish(ctx, img)

    def _posterior(self, net, y: Tensor, op, k: int, mask_channels: int, generator) -> LikelihoodPosterior:
        """The pieces every likelihood-driven sampler needs: compact-flux data, likelihoods, the
        negative log-likelihood of a Jy/pixel image, the conditioned denoiser and the flux scale."""
        y = y.to(torch.complex128)
        op = op.to(dtype=torch.float64)
        given = self.total_flux
        if given is not None and self.file_flux is not None:
            given = float(given) / float(self.file_flux)  # Jy → the prior's units (y / F)
        conditioning = self._conditioning(op, k, generator)
        y, op, compact = compact_flux_data(y, op, given, self.zbl_uv_cut)
        flux = compact.flux
        liks = make_likelihoods(y, op, self.data_terms)

        def nll_of(likelihoods: dict[str, Any]) -> Callable[[Tensor], Tensor]:
            def nll(img: Tensor) -> Tensor:
                tot = total_loss(likelihoods, self.data_terms, img)
                if self.flux_sigma:
                    tot = tot + 0.5 * ((img.sum(dim=(1, 2, 3)) - flux) / (self.flux_sigma * flux)) ** 2
                return tot

            return nll

        def randomized(n: int, gen: Any) -> Callable[[Tensor], Tensor]:
            return nll_of({name: lk.perturbed(n, gen) for name, lk in liks.items()})

        return LikelihoodPosterior(ConditionedDenoiser(net, conditioning, mask_channels), liks, nll_of(liks), flux,
                          flux / float(self.flux_per_image), op.image_shape, compact,
                          "x_t" if conditioning is None else f"gridded uv, delta={self.delta:g}", randomized)

    def settings(self) -> dict[str, Any]:
        """The sampler's own settings, recorded in ``Reconstruction.info``."""
        return {}

    def _sample(self, ctx: LikelihoodPosterior, k: int, generator) -> Tensor:
        """``k`` samples ``(K, 1, H, W)`` in prior units."""
        raise NotImplementedError(f"{type(self).__name__} draws no samples")

    def _finish(self, ctx: LikelihoodPosterior, img: Tensor) -> tuple[Tensor, dict]:
        """Samples ``(K, 1, H, W)`` in Jy/pixel: flux rescaled, centred, and their χ² per product."""
        flux = ctx.flux
        if self.rescale_flux:  # closures leave the total free: every sample holds the compact flux
            tot = img.sum(dim=(1, 2, 3), keepdim=True)
            img = img * torch.where(tot > 0, flux / tot.clamp_min(1e-300), torch.ones_like(tot))
        if self.center and bool((img.sum(dim=(1, 2, 3)) > 0).all()):  # closures leave the position free:
            img = center_on_centroid(img)  # each sample's flux centroid to the phase centre
        with torch.no_grad():
            mean = img.mean(0, keepdim=True)
            info = {f"chi2_{n}": float(lk.chi2(mean)[0]) for n, lk in ctx.liks.items()}
            info["chi2_samples"] = {f"chi2_{n}": lk.chi2(img).tolist() for n, lk in ctx.liks.items()}
        info["failed_samples"] = failed_samples(info["chi2_samples"]) if img.shape[0] > 1 else []
        info["total_flux"] = flux
        info["compact_flux"] = ctx.compact.describe()
        info["conditioning"] = ctx.conditioning
        info["all_zero"] = bool(float(mean.abs().max()) <= 0)
        return img, info

    def _conditioning(self, op, k: int, generator):
        """``None`` (the network sees ``x_t``) or ``K`` training-type operators ``Ã``: the coverage on the
        image's uv grid (conjugates included, as in training) subsampled at ``delta``."""
        if self.delta is None:
            return None
        grid = op.to_gridded(include_conjugate=True)
        return grid.subsample(float(self.delta), generator, batch_size=k)
