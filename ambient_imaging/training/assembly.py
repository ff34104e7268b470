"""Building a run from a config: the network, the loss, the data-dependent settings, the prior record.

:func:`train` is what ``ambient-imaging train`` runs: data → settings → network + loss →
:class:`~.trainer.Trainer`. Names in the config are turned into objects once, here, through
registries (:data:`~.losses.LOSSES`, :data:`~.families.FAMILIES`, :data:`NETWORK_PRESETS`);
after that the code asks the objects.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from ambient_imaging.operators.domains import MaskDomain, mask_domain

from .config import TrainConfig
from .distributed import DistContext, resolve_device
from .families import Family, family_of
from .hardware import cpu_contention
from .losses import Loss, loss_class
from .trainer import Trainer, TrainResult, seed_everything

__all__ = ["NETWORK_PRESETS", "build_network", "build_loss", "network_mask_domain", "resolve_data_settings",
           "prior_record", "train"]


def _presets() -> dict[str, tuple[Callable[..., nn.Module], bool]]:
    from ambient_imaging.networks import UNet

    # preset -> (constructor, takes the image resolution)
    return {"tiny": (UNet.tiny, False), "small": (UNet.small, True), "paper": (UNet.paper, True)}


#: the denoiser presets ``TrainConfig.network`` names
NETWORK_PRESETS = ("tiny", "small", "paper")


def network_mask_domain(cfg: TrainConfig, image_channels: int, mask_channels: int) -> MaskDomain:
    """The network's mask domain: ``cfg.mask_domain``, or (``"auto"``) the data family's.

    Unobserved pixels / k-space lines get the σ → ∞ preconditioning (``networks/precond.py``); the
    gridded-uv masks of interferometry use another FFT convention and keep plain EDM.
    """
    if cfg.mask_domain != "auto":
        return mask_domain(cfg.mask_domain)
    return family_of(cfg.operator).mask_domain(mask_channels, image_channels)


def build_network(
    cfg: TrainConfig, image_shape: tuple[int, int, int], is_complex: bool, mask_channels: int
) -> nn.Module:
    """``EDMPrecond(UNet.<preset>(...))`` for the data's image shape (``cfg.network_overrides`` go to the UNet)."""
    from ambient_imaging.networks import EDMPrecond

    c, h, w = image_shape
    real_ch = c * (2 if is_complex else 1)
    preset, takes_resolution = _presets()[cfg.network]
    kwargs: dict[str, Any] = {"img_resolution": int(min(h, w))} if takes_resolution else {}
    kwargs.update(cfg.network_overrides)
    try:
        backbone = preset(real_ch + mask_channels, real_ch, **kwargs)
    except TypeError as err:
        raise ValueError(f"network_overrides: {err}") from err
    # EDM2's learned per-σ uncertainty (training only) for the losses that use it
    logvar = 128 if loss_class(cfg.loss).learns_uncertainty(cfg) else 0
    return EDMPrecond(
        backbone, image_channels=c, is_complex=is_complex, mask_channels=mask_channels,
        sigma_data=_sigma_data(cfg), mask_domain=network_mask_domain(cfg, c, mask_channels),
        logvar_channels=logvar,
    )


def _sigma_data(cfg: TrainConfig) -> float:
    """The configured σ_data, or EDM's 0.5 when it is still unset (``train`` estimates it first)."""
    return float(cfg.sigma_data) if cfg.sigma_data is not None else 0.5


def build_loss(cfg: TrainConfig, noise_sigma: float, mask_channels: int = 0) -> Loss:
    """The loss object for ``cfg.loss``: ``LOSSES[cfg.loss].from_config(...)``.

    The baselines feed all-ones mask channels to a network that takes a mask, so that
    every loss trains the same network.
    """
    return loss_class(cfg.loss).from_config(cfg, noise_sigma, mask_channels, family_of(cfg.operator))


def resolve_data_settings(cfg: TrainConfig, data: Any) -> tuple[TrainConfig, dict[str, Any], list[str]]:
    """Settings that depend on the training measurements, and what the prior records about them.

    * ``sigma_data=None``: estimated from the measurements (:func:`~.statistics.estimate_sigma_data`);
    * ambient training on line masks (MRI): ``center_lines=None`` becomes ``[max(2, ACS_min // 2), ACS_max]``;
    * the prior info keys ``noise_sigma_image`` / ``noise_sigma_image_max`` (σ_n per real image
      channel: median and largest over the set), ``scoring`` (resolved ``heldout``), ``weighting``,
      ``sigma_data_estimated``, and for MRI ``data_accelerations``, ``train_accelerations``,
      ``train_center_lines`` (``[lo, hi]``).

    Returns the completed config (written to the run's ``config.toml``), the extra prior info
    and notes for the terminal.
    """
    from .statistics import measurement_summary

    loss = loss_class(cfg.loss)
    family = family_of(data.family)
    notes: list[str] = []
    info: dict[str, Any] = {}
    summary = data.statistics if getattr(data, "statistics", None) else measurement_summary(data.dataset)
    sig = float(getattr(data, "noise_sigma", 0.0) or 0.0)
    sig_max = max(sig, float(summary["noise_sigma_range"][1]))
    info["noise_sigma_image"] = sig * family.image_noise_factor
    info["noise_sigma_image_max"] = sig_max * family.image_noise_factor
    info["scoring"] = loss.scoring(cfg, sig > 0)
    info["weighting"] = loss.weighting_of(cfg)
    changes: dict[str, Any] = {}
    _estimate_sigma_data(cfg, data, changes, info, notes)
    if sig > 0:
        notes.append(f"measurement noise σ_n = {sig:.4g} (training scale; {info['noise_sigma_image']:.4g} per real "
                     f"image channel): trained at σ > σ_n, scoring: {info['scoring']}")
    if family.line_rows and loss.subsamples and summary["accelerations"] is not None:
        _mask_ranges(cfg, summary, changes, info, notes)
    if changes:
        cfg = cfg.replace(**changes)
    return cfg, info, notes


def _estimate_sigma_data(cfg: TrainConfig, data: Any, changes: dict, info: dict, notes: list[str]) -> None:
    from .statistics import estimate_sigma_data

    if cfg.sigma_data is not None:
        info["sigma_data_estimated"] = False
        return
    est = estimate_sigma_data(data.dataset, max_items=64)
    if est is None:
        changes["sigma_data"] = 0.5
        notes.append("σ_data: no estimate for this operator family; using 0.5")
    else:
        changes["sigma_data"] = round(float(est), 4)
        notes.append(f"σ_data = {changes['sigma_data']:.4g} per real channel, estimated from the measurements "
                     "(density-compensated row energies minus noise; set sigma_data to override)")
    info["sigma_data_estimated"] = est is not None


def _mask_ranges(cfg: TrainConfig, summary: dict, changes: dict, info: dict, notes: list[str]) -> None:
    """The range of Ã (accelerations, protected centre lines) of ambient training on line masks."""
    acc = summary["accelerations"]
    cen = summary["center_lines"] or [0, 0]
    if cfg.center_lines is None:
        changes["center_lines"] = [max(2, int(cen[0]) // 2), int(cen[1])]
    lines = changes.get("center_lines", cfg.center_lines)
    hi = max(acc[1], acc[1] * cfg.extra_acceleration)
    info["data_accelerations"] = [float(acc[0]), float(acc[1])]
    info["train_accelerations"] = [float(acc[0]), float(hi)]
    info["train_center_lines"] = [int(lines[0]), int(min(lines[1], cen[1]))]
    info["extra_acceleration"] = float(cfg.extra_acceleration)
    notes.append(f"ambient masks: accelerations {acc[0]:.3g}..{hi:.3g}, protected centre lines "
                 f"{info['train_center_lines'][0]}..{info['train_center_lines'][1]} (recorded with the prior)")


def prior_record(cfg: TrainConfig, data: Any, net: nn.Module, extra_info: dict[str, Any]) -> dict[str, Any]:
    """What :func:`~ambient_imaging.training.load_prior` needs besides the config (``prior_info``)."""
    loss = loss_class(cfg.loss)
    family: Family = family_of(data.family)
    sigma_min = loss.sigma_min(getattr(net, "sigma_min", 0.002), data.noise_sigma,
                               float(extra_info.get("noise_sigma_image_max", 0.0)))
    return {
        "family": data.family,
        "image_shape": list(data.image_shape),
        "is_complex": data.is_complex,
        "mask_channels": data.mask_channels,
        "noise_sigma": data.noise_sigma,
        "delta": cfg.delta if loss.subsamples else 0.0,
        "corruption": cfg.corruption if family.records_corruption else 0.0,
        "sigma_min": float(sigma_min),
        "sigma_max": float(getattr(net, "sigma_max", 80.0)),
        "sigma_data": cfg.sigma_data,
        "scale_rule": data.scale_rule,
        "normalisation": data.normalisation.to_dict(),
        **({"mask_spec": data.mask_spec.to_dict()} if data.mask_spec is not None else {}),
        "loss": cfg.loss,
        **extra_info,
    }


def train(
    cfg: TrainConfig,
    resume: bool = False,
    ctx: DistContext | None = None,
    verbose: bool = True,
    before_fit: Callable[[], None] | None = None,
    lock: Any = None,
) -> TrainResult:
    """Build data, network and loss from ``cfg`` and train (what ``ambient-imaging train`` runs).

    Call under ``torchrun`` with a context from
    :func:`~ambient_imaging.training.distributed.init_distributed` for DDP.
    ``before_fit()`` runs (on every rank) once the data, network and loss are built — every
    input is valid by then — and before anything is written: ``train --overwrite`` clears the
    old run there. ``lock``: the run folder's :class:`~ambient_imaging.locks.RunLock`, held by the
    caller (the CLI takes it before deciding what to do with the folder); without one
    :meth:`Trainer.fit` takes it.
    """
    from .data import build_training_data

    cfg = cfg.validate()
    if ctx is None:
        ctx = DistContext(device=resolve_device(cfg.device))
    if ctx.device.type == "cpu" and ctx.is_main:
        busy = cpu_contention()
        if busy is not None:
            warnings.warn(busy, RuntimeWarning, stacklevel=2)
    seed_everything(cfg.seed)
    data = build_training_data(cfg)
    cfg, extra_info, notes = resolve_data_settings(cfg, data)
    seed_everything(cfg.seed)  # the estimates above read data only; start from the same state as before
    net = build_network(cfg, data.image_shape, data.is_complex, data.mask_channels)
    loss = build_loss(cfg, data.noise_sigma, data.mask_channels)
    if getattr(data, "mix", None) is not None:
        from .mix import apply_mix

        loss = apply_mix(cfg, data, loss, extra_info, notes)
    _check_batch_memory(cfg, data, net, ctx)
    prior_info = prior_record(cfg, data, net, extra_info)
    if verbose:
        n_par = sum(p.numel() for p in net.parameters())
        for note in data.notes + notes:
            print(f"data: {note}", file=sys.stderr)
        print(
            f"network: {cfg.network} ({n_par / 1e6:.2f}M parameters), loss: {cfg.loss}, device: {ctx.device}, "
            f"world size: {ctx.world_size}",
            file=sys.stderr,
        )
    trainer = Trainer(cfg, data.dataset, net, loss, run_dir=cfg.out, prior_info=prior_info, ctx=ctx,
                      clean_items=data.clean_items)
    if before_fit is not None:
        before_fit()
    return trainer.fit(resume=resume, lock=lock)


def _check_batch_memory(cfg: TrainConfig, data: Any, net: Any, ctx: DistContext) -> None:
    """``--batch-size`` against the memory of the device: one item's activations, measured in one forward
    pass, times the items each process holds at once (before any training step allocates them)."""
    import torch

    from ambient_imaging.limits import activation_bytes, check_batch_memory

    c, h, w = data.image_shape
    ch = c * (2 if data.is_complex else 1)
    x = torch.zeros(1, c, h, w, dtype=torch.complex64 if data.is_complex else torch.float32)
    mask = torch.ones(1, data.mask_channels, h, w) if data.mask_channels else None
    try:
        per = activation_bytes(net, x, torch.ones(1), mask)
    except (RuntimeError, TypeError, ValueError):  # a network with another call signature: estimate
        per = 64 * ch * h * w * 4
    per_rank = max(1, cfg.batch_size // max(1, cfg.accumulate) // max(1, ctx.world_size))
    check_batch_memory(per_rank, per, "--batch-size", str(ctx.device))
