"""Load a trained prior from a run directory (config + safetensors only; nothing is unpickled or imported)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import torch
from torch import nn

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from .config import CONFIG_VERSION

__all__ = ["Prior", "load_prior"]


@dataclass
class Prior:
    """A trained denoiser and what it was trained on.

    Attributes:
        denoiser: the EDM-preconditioned network (EMA weights by default), eval mode,
            ``denoiser(x, sigma, mask) ≈ E[x | x_t]``.
        family: operator family it was trained with (``mask|noise|mri|interferometry``).
        image_shape: ``(C, H, W)``. is_complex: complex images (MRI).
        noise_sigma: measurement-noise std σ_n of the training data (training scale).
        delta: the ambient extra-corruption δ. corruption: synthetic corruption level.
        sigma_min, sigma_max: the diffusion-noise range the denoiser is trained for
            (``sigma_min = σ_n`` for Tweedie priors: sample with the truncated sampler).
        sigma_data: EDM σ_data. mask_channels: number of mask channels the network takes.
        scale_rule: how measurements were normalised before training (a sentence: ``normalisation.describe()``).
        normalisation: the structured rule (:class:`~ambient_imaging.problems.Normalisation`) that
            reconstruction applies and undoes; read from the checkpoint's record, or from
            ``scale_rule`` for priors written before records existed.
        mask_spec: the k-space sampling protocol of retrospectively undersampled MRI training data
            (:class:`~ambient_imaging.problems.MaskSpec`), ``None`` when the data carried their own masks.
        config: the run's settings (a dict). run_dir: where it was loaded from.
        step: training step of the loaded weights.
        info: everything the run recorded about the prior (``state.json``'s ``"prior"`` table),
            e.g. ``train_accelerations`` / ``train_center_lines`` (``[lo, hi]``: the MRI masks it
            was trained on, see :func:`~ambient_imaging.training.mask_in_training_range`),
            ``noise_sigma_image`` (σ_n per real image channel), ``sigma_data_estimated``.
    """

    denoiser: nn.Module
    family: str
    image_shape: tuple[int, int, int]
    is_complex: bool
    noise_sigma: float
    delta: float
    corruption: float
    sigma_min: float
    sigma_max: float
    sigma_data: float
    mask_channels: int
    scale_rule: str
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    step: int = 0
    normalisation: Any = None
    mask_spec: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        kind = "complex" if self.is_complex else "real"
        return (
            f"Prior({self.family}, {kind} {c}x{h}x{w}, step {self.step}, σ_n={self.noise_sigma:g}, "
            f"δ={self.delta:g}, σ∈[{self.sigma_min:g}, {self.sigma_max:g}], run_dir={self.run_dir})"
        )


def load_prior(run_dir: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True) -> Prior:
    """Load the latest checkpoint of a training run as a :class:`Prior`.

    Args:
        run_dir: a run directory written by ``ambient-imaging train`` (holds ``config.toml``
            and ``checkpoints/``), or one checkpoint folder inside it.
        device: where to put the denoiser.
        ema: use the EMA weights (default; what sampling should use) or the raw weights.
    """
    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"run directory not found: {path}")
    if (path / "state.json").is_file() and path.parent.name == "checkpoints":
        ck_dir, path = path, path.parent.parent
    else:
        if not (path / "config.toml").is_file():
            raise CheckpointError(f"{path}: not a training run directory (no config.toml)")
        ck_dir = latest_checkpoint(path)
        if ck_dir is None:
            raise CheckpointError(f"{path}: this run has no checkpoint yet; train it first (or wait for one)")
    with open(path / "config.toml", "rb") as f:
        try:
            config = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise CheckpointError(f"{path / 'config.toml'}: not valid TOML ({err})") from err
    version = int(config.get("version", 1))
    if version > CONFIG_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer ambient-imaging (run format {version}, this version reads up to "
            f"{CONFIG_VERSION}); upgrade ambient-imaging to load it"
        )
    ck = load_checkpoint(ck_dir, weights_only=ema)
    net_cfg = ck.state.get("network")
    if not net_cfg or not isinstance(net_cfg, dict):
        raise CheckpointError(f"{ck_dir}: the checkpoint does not record its network configuration")
    from ambient_imaging.networks import EDMPrecond

    try:
        # classes are looked up in an allow-list (networks.backbone_classes): nothing named in
        # state.json is ever imported, at any nesting level
        net = EDMPrecond.from_config(net_cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{ck_dir}: cannot rebuild the network ({err})") from err
    weights = ck.ema if ema else ck.net
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{ck_dir}: weights do not match the recorded network ({err})") from err
    net = net.to(device).eval().requires_grad_(False)
    info = ck.state.get("prior", {})
    shape = tuple(int(s) for s in info.get("image_shape", (0, 0, 0)))
    return Prior(
        denoiser=net,
        family=str(info.get("family", config.get("operator", "mask"))),
        image_shape=shape,  # type: ignore[arg-type]
        is_complex=bool(info.get("is_complex", False)),
        noise_sigma=float(info.get("noise_sigma", config.get("noise_sigma", 0.0))),
        delta=float(info.get("delta", config.get("delta", 0.0))),
        corruption=float(info.get("corruption", config.get("corruption", 0.0))),
        sigma_min=float(info.get("sigma_min", 0.002)),
        sigma_max=float(info.get("sigma_max", 80.0)),
        sigma_data=float(info.get("sigma_data", config.get("sigma_data", 0.5))),
        mask_channels=int(info.get("mask_channels", 0)),
        scale_rule=str(info.get("scale_rule", "unknown")),
        config=config,
        run_dir=path,
        step=ck.step,
        normalisation=_normalisation(info, ck_dir),
        mask_spec=_mask_spec(info, ck_dir),
        info=dict(info) if isinstance(info, dict) else {},
    )


def _normalisation(info: dict[str, Any], where: Path) -> Any:
    from ambient_imaging.problems import Normalisation

    try:
        if isinstance(info.get("normalisation"), dict):
            return Normalisation.from_dict(info["normalisation"])
        return Normalisation.from_rule(str(info.get("scale_rule", "unknown")))
    except ValueError as err:
        raise CheckpointError(f"{where}: {err}") from err


def _mask_spec(info: dict[str, Any], where: Path) -> Any:
    from ambient_imaging.problems import MaskSpec

    d = info.get("mask_spec")
    if not isinstance(d, dict):
        return None
    try:
        return MaskSpec.from_dict(d)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: the recorded mask_spec is not valid ({err})") from err
