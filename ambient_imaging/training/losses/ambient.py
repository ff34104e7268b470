"""The ambient loss: learn ``E[x | Ã x_t, Ã]`` from measurements ``y = A x`` only (Daras et al. 2023; A-DPS).

See :class:`AmbientLoss` and ``docs/losses.md``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor

from ambient_imaging.datasets.batch import MeasurementBatch
from ambient_imaging.operators import LinearOperator

from ..families import family_of
from ..sigma import WEIGHTINGS, LogNormalSigma
from .base import (
    Loss,
    LossOutput,
    b4,
    check_sigma_data,
    check_sigma_dist,
    config_sigma_data,
    dof,
    image_noise_sigma,
    randn_image,
    real_dtype,
    register_loss,
    sample_sigma,
    sq,
    weighted_output,
)

__all__ = ["AmbientLoss"]


def _stable_seed(*parts: Any) -> int:
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def _sample_keys(batch: MeasurementBatch, key: str) -> list[Any]:
    """Per-sample identity for deterministic Ã: ``meta[i][key]`` or else a hash of ``y[i]``."""
    keys: list[Any] = []
    for i in range(len(batch)):
        meta = batch.meta[i] if i < len(batch.meta) else {}
        if key in meta:
            keys.append(("meta", str(meta[key])))
        else:
            yi = batch.y[i].detach().cpu().contiguous()
            keys.append(("y", hashlib.blake2b(yi.numpy().tobytes(), digest_size=8).hexdigest()))
    return keys


@register_loss
class AmbientLoss(Loss):
    r"""Ambient Diffusion loss: learn ``E[x | Ã x_t, Ã]`` from measurements ``y = A x`` only.

    Daras et al., "Ambient Diffusion", NeurIPS 2023 (arXiv 2305.19256), Eq. (3.2)/Thm 4.1;
    image-domain form from A-DPS, Aali et al., ICLR 2025 (arXiv 2403.08728).

    Each call draws ``Ã = A.subsample(δ)`` (every measured row kept w.p. ``1-δ``, protected
    rows ``keep`` always), builds the network input from Ã's data only::

        u = Ã^H (Ã y + s Ã η),   η ~ N(0, I) image-shaped       (= Ã^H Ã x_t, x_t = x + σ η)

    (PixelMask: ``u = M̃ ⊙ (y + s η)``; Fourier operators: ``Ã^H(ỹ + s ε)`` with ``ε = Ã η`` on
    Ã's rows), calls ``D = net(u, σ, mask=Ã.mask_channels())`` and scores it against the data:

        measurement space:  L = λ(σ) ‖P (A D − y)‖² / n_P
        image space (A-DPS): L = λ(σ) ‖A^H P (A D − y)‖² / (n_img · n_P / n_y)

    with ``P`` the projection on all measured rows of A, or with ``heldout=True`` on the rows of
    A that are **not** in Ã (their noise is independent of ``u``).
    ``n_P`` counts the scored real degrees of freedom (so samples with different sampling weigh
    alike).

    **Measurement noise.** With noisy ``y`` (σ_n' > 0, the noise per real image channel, see
    :func:`image_noise_sigma`) Ã's rows already carry noise of level σ_n'. The loss then draws
    σ from the log-normal truncated to ``σ > σ_n'`` and adds only ``s = √(σ² − σ_n'²)``, so the
    network is told the noise level its input really has; the prior is trained for σ ≥ σ_n'
    (samplers stop there). On Ã's rows the target's noise is also in the input, so plain scoring
    of all rows (``heldout=False``) would teach D to reproduce it. ``heldout=True`` scores only
    the rows outside Ã (exact, but fewer rows: a noisier gradient); ``heldout=None`` (default)
    scores every row and, on Ã's rows, compares ``(1 − a) A D + a Ã x_t`` with ``a = σ_n'²/σ²``
    (Tweedie, as in :class:`AmbientTweedieLoss`: exact when the measurement noise is white in
    the image domain, e.g. pixel masks; for multi-coil k-space an approximation whose error
    vanishes as σ ≫ σ_n'). Noiseless data: all rows, plain.

    **Range of Ã** (MRI priors that must accept users' masks): ``extra_acceleration = r > 1``
    draws, per sample, a target ratio ``ρ`` log-uniformly in ``[1/(1 − δ), r]`` and the δ that
    makes Ã keep about ``1/ρ`` of A's rows (so Ã spans accelerations from ~R to ~r·R);
    ``center_range = (lo, hi)`` protects, per sample, a centred block of ``c ~ U{lo..hi}`` lines
    (inside A's protected rows) instead of all of them — line masks only.

    **Weighting** (``weighting``; see ``docs/losses.md``): ``"edm"`` ``λ = (σ² + σ_d²)/(σ σ_d)²``;
    ``"floor"`` ``λ = (σ² + σ_d²)/((σ² + σ_f²) σ_d²)`` with ``σ_f = sigma_floor`` (default σ_n');
    ``"uncertainty"``: EDM2's learned per-σ uncertainty (Karras et al. 2024): the network returns
    ``u(σ)`` (``net(..., return_logvar=True)``, :class:`~ambient_imaging.networks.EDMPrecond` with
    ``logvar_channels``) and the loss is ``λ L / e^u + u`` with λ the floor weight, so every σ band
    contributes O(1) whatever error it cannot remove.

    :meth:`evaluate` returns the drawn σ ``(B,)`` with the loss (trainer diagnostics per σ band).

    Args:
        delta: further-corruption probability δ ∈ (0, 1) (the smallest one with ``extra_acceleration``).
        keep: protected rows (``None``: operator default, e.g. MRI ACS; ``False``: none; or a bool tensor).
        space: ``"measurement"`` or ``"image"``.
        heldout: score only A's rows outside Ã (``None``: all rows, Tweedie-corrected on Ã's rows for noisy data).
        fresh_subsample: draw Ã afresh at every call (the theory). ``False``: Ã is a fixed,
            deterministic function of the sample — of ``meta[i][subsample_key]`` when present,
            else of a hash of ``y[i]`` — and of ``subsample_seed`` (the public Ambient code's behaviour).
        sigma_dist, sigma_data: noise-level distribution and σ_d.
        sigma_n: measurement noise per real image channel (``None``: from the operator; ``0``: ignore).
        weighting, sigma_floor: see above.
        extra_acceleration, center_range: see above.
    """

    def __init__(
        self,
        delta: float = 0.1,
        keep: Tensor | None | bool = None,
        space: str = "measurement",
        heldout: bool | None = None,
        fresh_subsample: bool = True,
        sigma_dist: LogNormalSigma | None = None,
        sigma_data: float = 0.5,
        subsample_seed: int = 0,
        subsample_key: str = "index",
        sigma_n: float | None = None,
        weighting: str = "edm",
        sigma_floor: float | None = None,
        extra_acceleration: float | None = None,
        center_range: tuple[int, int] | None = None,
    ):
        if not 0.0 < float(delta) < 1.0:
            raise ValueError(f"AmbientLoss: delta must be in (0, 1), got {delta}")
        if space not in ("measurement", "image"):
            raise ValueError(f"AmbientLoss: space must be 'measurement' or 'image', got {space!r}")
        if keep is not None and keep is not False and not isinstance(keep, Tensor):
            raise TypeError(f"AmbientLoss: keep must be None, False or a bool tensor, got {type(keep).__name__}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"AmbientLoss: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if sigma_n is not None and not (math.isfinite(float(sigma_n)) and float(sigma_n) >= 0):
            raise ValueError(f"AmbientLoss: sigma_n must be >= 0, got {sigma_n}")
        if sigma_floor is not None and not (math.isfinite(float(sigma_floor)) and float(sigma_floor) >= 0):
            raise ValueError(f"AmbientLoss: sigma_floor must be >= 0, got {sigma_floor}")
        if extra_acceleration is not None and not float(extra_acceleration) >= 1.0:
            raise ValueError(f"AmbientLoss: extra_acceleration must be >= 1, got {extra_acceleration}")
        if center_range is not None:
            lo, hi = (int(v) for v in center_range)
            if not 0 <= lo <= hi:
                raise ValueError(f"AmbientLoss: center_range must be (lo, hi) with 0 <= lo <= hi, got {center_range}")
            center_range = (lo, hi)
        self.delta = float(delta)
        self.keep = keep
        self.space = space
        self.heldout = None if heldout is None else bool(heldout)
        self.fresh_subsample = bool(fresh_subsample)
        self.sigma_dist = check_sigma_dist(sigma_dist)
        self.sigma_data = check_sigma_data(sigma_data)
        self.subsample_seed = int(subsample_seed)
        self.subsample_key = subsample_key
        self.sigma_n = None if sigma_n is None else float(sigma_n)
        self.weighting = weighting
        self.sigma_floor = None if sigma_floor is None else float(sigma_floor)
        self.extra_acceleration = None if extra_acceleration is None else float(extra_acceleration)
        self.center_range = center_range
        self._image_like: dict[tuple, tuple[tuple[int, ...], torch.dtype]] = {}

    # ---- what the trainer asks ---------------------------------------------------------------
    name = "ambient"
    subsamples = True

    @classmethod
    def from_config(cls, cfg: Any, noise_sigma: float = 0.0, mask_channels: int = 0, family: Any = None) -> AmbientLoss:
        """``AmbientLoss`` from a config; mask ranges (``extra_acceleration``, ``center_lines``) where the
        family's rows are lines (MRI)."""
        fam = family if family is not None else family_of(cfg.operator)
        lines = fam.line_rows
        return cls(
            delta=cfg.delta,
            space=cfg.space,
            heldout=cfg.heldout,
            fresh_subsample=cfg.fresh_subsample,
            sigma_data=config_sigma_data(cfg),
            weighting=cfg.weighting,
            sigma_floor=cfg.sigma_floor,
            extra_acceleration=cfg.extra_acceleration if lines and cfg.extra_acceleration > 1 else None,
            center_range=tuple(cfg.center_lines) if lines and cfg.center_lines is not None else None,
        )

    @classmethod
    def check_config(cls, cfg: Any) -> str | None:
        if not family_of(cfg.operator).has_rows:
            return f"operator {cfg.operator!r} has no rows to subsample; use loss 'tweedie' (the default for noise)"
        return None

    @classmethod
    def learns_uncertainty(cls, cfg: Any) -> bool:
        return cfg.weighting == "uncertainty"

    @classmethod
    def scoring(cls, cfg: Any, noisy: bool) -> str:
        if cfg.heldout is None:
            return "tweedie" if noisy else "all rows"
        return "held-out rows" if cfg.heldout else "all rows"

    @classmethod
    def sigma_min(cls, sigma_min: float, noise_sigma: float, noise_sigma_image_max: float) -> float:
        """Trained at σ > σ_n per real image channel (the largest over the set): samplers stop there."""
        return max(float(sigma_min), float(noise_sigma_image_max))

    def _ranges(self, op: LinearOperator, b: int, generator: torch.Generator | None,
                seeds: list[int] | None) -> tuple[float | Tensor, Tensor | None | bool]:
        """Per-sample δ and protected rows for ``extra_acceleration`` / ``center_range``."""
        keep = self.keep
        if self.extra_acceleration is None and self.center_range is None:
            return self.delta, keep
        sub = op.subsampling_factor()
        if sub is None:
            raise TypeError(f"{type(op).__name__} has no subsampling rows")
        rows = sub.row_mask()
        rows = rows.expand(b, *rows.shape[1:]) if rows.shape[0] == 1 else rows
        if seeds is None:
            u = torch.rand(b, 2, generator=generator, device=rows.device, dtype=torch.float64)
        else:
            u = torch.stack([torch.rand(2, generator=torch.Generator().manual_seed(s ^ 0x5EED), dtype=torch.float64)
                             for s in seeds]).to(rows.device)
        base = sub.protected_rows(keep)
        prot = None if base is None else torch.broadcast_to(base.to(rows.device).bool(), rows.shape) & rows
        if self.center_range is not None:
            if rows.ndim != 2:
                raise ValueError("AmbientLoss: center_range needs a line mask ((B, W) rows, e.g. Cartesian MRI)")
            lo, hi = self.center_range
            width = (lo + torch.floor(u[:, 1] * (hi - lo + 1))).clamp_max(hi).to(rows.device)
            w = rows.shape[-1]
            start = w // 2 - torch.div(width, 2, rounding_mode="floor")  # ESPIRiT's centred block
            col = torch.arange(w, device=rows.device)[None, :] - start[:, None]
            block = (col >= 0) & (col < width[:, None])
            prot = block & rows if prot is None else block & prot
        delta: float | Tensor = self.delta
        if self.extra_acceleration is not None and self.extra_acceleration > 1.0 / (1.0 - self.delta):
            n = rows.reshape(b, -1).sum(1).double()
            c = torch.zeros_like(n) if prot is None else prot.reshape(b, -1).sum(1).double()
            lo, hi = math.log(1.0 / (1.0 - self.delta)), math.log(self.extra_acceleration)
            ratio = torch.exp(lo + (hi - lo) * u[:, 0])
            keep_frac = (n / ratio - c) / (n - c).clamp_min(1.0)
            delta = (1.0 - keep_frac).clamp(self.delta, 0.95)
        return delta, (False if prot is None else prot)

    def further_corrupt(self, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LinearOperator:
        """Draw ``Ã`` for this batch (fresh, or deterministic per sample; see class doc)."""
        b = len(batch)
        seeds = None
        if not self.fresh_subsample:
            seeds = [_stable_seed(self.subsample_seed, k) for k in _sample_keys(batch, self.subsample_key)]
        delta, keep = self._ranges(batch.op, b, generator, seeds)
        return batch.op.subsample(delta, generator, keep, seeds, batch_size=b)

    def evaluate(self, net: Any, batch: MeasurementBatch, generator: torch.Generator | None = None) -> LossOutput:
        """The ambient loss of one batch (see the class doc)."""
        y, op = batch.y, batch.op
        b = y.shape[0]
        a_t = self.further_corrupt(batch, generator)
        rdt = real_dtype(y)
        # image-shaped noise (the shape/dtype of Ã^H ỹ, cached per layout: one adjoint per call, not two)
        key = (type(op).__name__, tuple(y.shape), y.dtype, str(y.device))
        if key not in self._image_like:
            img = a_t.measurements_to_image(torch.zeros_like(y))
            self._image_like = {key: (tuple(img.shape[1:]), img.dtype)}
        shape, idt = self._image_like[key]
        shape_ref = torch.empty((b, *shape), dtype=idt, device=y.device)
        sigma_n = self.sigma_n if self.sigma_n is not None else image_noise_sigma(op, y, shape_ref)
        noisy = bool(torch.as_tensor(sigma_n).max() > 0)
        if noisy:
            sigma = self.sigma_dist.sample_truncated(b, lower=sigma_n, generator=generator, device=y.device, dtype=rdt)
            sn = torch.as_tensor(sigma_n, device=y.device, dtype=rdt).reshape(-1).expand(b)
            s = torch.sqrt((sigma**2 - sn**2).clamp_min(0))
        else:
            sigma = sample_sigma(self.sigma_dist, b, shape_ref, generator)
            sn, s = torch.zeros_like(sigma), sigma
        eta = randn_image(shape_ref, generator)
        # u = Ã^H(ỹ + s Ã η): one forward, one adjoint (the noise lives exactly on Ã's rows)
        y_in = a_t.restrict(y + b4(s, y.ndim).to(rdt) * a_t.forward(eta))  # Ã x_t (Ã's rows only)
        u = a_t.measurements_to_image(y_in)
        logvar = None
        if self.weighting == "uncertainty":
            out = net(u, sigma, mask=a_t.mask_channels(), return_logvar=True)
            if not isinstance(out, tuple):
                raise TypeError("AmbientLoss(weighting='uncertainty') needs a network that returns (D, logvar) "
                                "with return_logvar=True (EDMPrecond with logvar_channels > 0)")
            d, logvar = out
        else:
            d = net(u, sigma, mask=a_t.mask_channels())

        pred = op.forward(d)
        if self.heldout is None and noisy:
            # Tweedie on Ã's rows (their target noise is in the input): E[ỹ | u] = (1 − a) Ã D + a Ã x_t,
            # a = σ_n'²/σ² — the minimiser stays D = E[x | u] while every measured row is scored
            a = b4((sn**2 / sigma**2).to(rdt), y.ndim)
            pred = pred + a_t.restrict(a * (y_in - pred))
        r = op.restrict(pred - y)
        support = op.restrict(torch.ones_like(y))
        if self.heldout:
            r = r - a_t.restrict(r)
            support = support - a_t.restrict(support)
        n_p = dof(support)
        if self.space == "measurement":
            per = sq(r) / n_p.clamp_min(1)
        else:
            img = op.adjoint(r)
            n_img = img[0].numel() * (2 if img.is_complex() else 1)
            frac = n_p / float(y[0].numel() * (2 if y.is_complex() else 1))
            per = sq(img) / (n_img * frac).clamp_min(1.0)
        if logvar is not None:  # a sample with nothing to score (no held-out row) must not train u(σ)
            logvar = logvar.reshape(-1) * (n_p > 0).to(logvar.dtype)
        return weighted_output(per.to(sigma.dtype), sigma, self.sigma_data, self.weighting, self.sigma_floor, sn,
                               logvar)


