"""Load a trained prior from a run directory (config + safetensors only; nothing is unpickled or imported)."""

from __future__ import annotations

import math
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

from .checkpoint import CheckpointError, check_inside, latest_checkpoint, load_checkpoint
from .config import CONFIG_VERSION, flat_config

__all__ = ["Prior", "load_prior", "prior_fields"]


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

    Nothing outside the run folder is read (every path is checked before it is opened:
    :func:`~ambient_imaging.training.checkpoint.check_inside`), the recorded metadata are
    validated field by field (errors name the file and the field), and the recorded network is
    sized before it is built.
    """
    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"run directory not found: {path}")
    if (path / "state.json").is_file() and path.parent.name == "checkpoints":
        ck_dir, path = path, path.parent.parent
        check_inside(ck_dir, path, "the checkpoint folder")
    else:
        if not (path / "config.toml").is_file():
            raise CheckpointError(f"{path}: not a training run directory (no config.toml)")
        ck_dir = latest_checkpoint(path)
        if ck_dir is None:
            raise CheckpointError(f"{path}: this run has no checkpoint yet; train it first (or wait for one)")
    config = _read_config(path)
    ck = load_checkpoint(ck_dir, weights_only=ema)
    net = _build_network(ck.state.get("network"), ck_dir, ck.ema if ema else ck.net)
    net = net.to(device).eval().requires_grad_(False)
    info = ck.state.get("prior", {})
    if not isinstance(info, dict):
        raise CheckpointError(f"{ck_dir / 'state.json'}: field 'prior' must be a table, got {type(info).__name__}")
    fields = prior_fields(info, config, ck_dir / "state.json")
    return Prior(
        denoiser=net,
        **fields,
        config=config,
        run_dir=path,
        step=ck.step,
        normalisation=_normalisation(info, ck_dir),
        mask_spec=_mask_spec(info, ck_dir),
        info=dict(info),
    )


def _read_config(run: Path) -> dict[str, Any]:
    cfg_path = check_inside(run / "config.toml", run, "config.toml")
    with open(cfg_path, "rb") as f:
        try:
            config = tomllib.load(f)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{cfg_path}: not valid TOML ({err})") from err
    try:
        version = int(config.get("version", 1))
    except (TypeError, ValueError):
        got = config.get("version")
        raise CheckpointError(f"{cfg_path}: field 'version' must be an integer, got {got!r}") from None
    if version > CONFIG_VERSION:
        raise CheckpointError(
            f"{run}: written by a newer ambient-imaging (run format {version}, this version reads up to "
            f"{CONFIG_VERSION}); upgrade ambient-imaging to load it"
        )
    return flat_config(config, str(cfg_path))


def _build_network(net_cfg: Any, ck_dir: Path, weights: dict[str, torch.Tensor]) -> nn.Module:
    """The recorded network with ``weights``, sized first: built on the ``meta`` device (no memory), its
    parameters must fit the weights read and the memory available before the real one is built."""
    from ambient_imaging.limits import check_memory, format_bytes
    from ambient_imaging.networks import EDMPrecond

    if not net_cfg or not isinstance(net_cfg, dict):
        raise CheckpointError(f"{ck_dir}: the checkpoint does not record its network configuration")
    try:
        # classes are looked up in an allow-list (networks.backbone_classes): nothing named in
        # state.json is ever imported, at any nesting level
        with torch.device("meta"):
            shell = EDMPrecond.from_config(net_cfg)
        need = sum(p.numel() * p.element_size() for p in shell.parameters())
    except (ValueError, TypeError, RuntimeError, OverflowError, MemoryError) as err:
        raise CheckpointError(f"{ck_dir / 'state.json'}: field 'network': cannot rebuild the network "
                              f"({str(err)[:300]})") from err
    have = sum(t.numel() * t.element_size() for t in weights.values())
    if need > 2 * have + 2**20:
        raise CheckpointError(
            f"{ck_dir / 'state.json'}: field 'network' describes a network of {format_bytes(need)} but the weights "
            f"hold {format_bytes(have)}; the metadata do not match the weights (tampered or corrupt checkpoint)")
    check_memory(need, "the recorded network", str(ck_dir))
    net = EDMPrecond.from_config(net_cfg)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{ck_dir}: weights do not match the recorded network ({str(err)[:300]})") from err
    return net


def _number(d: dict[str, Any], key: str, default: float, where: Path, *, low: float = 0.0, strict: bool = False,
            high: float = math.inf, high_strict: bool = False) -> float:
    v = d.get(key, default)
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if strict else v >= low) and (v < high if high_strict else v <= high)
    if not ok:
        rng = f"{'>' if strict else '>='} {low:g}" + (f" and {'<' if high_strict else '<='} {high:g}"
                                                      if math.isfinite(high) else "")
        raise CheckpointError(f"{where}: field '{key}' must be a finite number {rng}, got {v!r}")
    return float(v)


def prior_fields(info: dict[str, Any], config: dict[str, Any], where: Path) -> dict[str, Any]:
    """The :class:`Prior` attributes recorded in ``info`` (``state.json``'s ``"prior"`` table), validated.

    Missing fields fall back on the run's ``config`` or the historical defaults; a field of the
    wrong type or out of range (NaN or negative σ, an image of 0×0, δ ≥ 1) raises
    :class:`CheckpointError` naming ``where`` and the field.
    """
    shape = info.get("image_shape", (0, 0, 0))
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in shape)):
        raise CheckpointError(f"{where}: field 'image_shape' must be three integers (C, H, W) in 1..65536, "
                              f"got {str(shape)[:80]}")
    texts = {}
    for key, fallback in (("family", config.get("operator", "mask")), ("scale_rule", "unknown")):
        v = info.get(key, fallback)
        if not isinstance(v, str):
            raise CheckpointError(f"{where}: field '{key}' must be a string, got {type(v).__name__}")
        texts[key] = v
    flag = info.get("is_complex", False)
    if not isinstance(flag, bool):
        raise CheckpointError(f"{where}: field 'is_complex' must be true or false, got {flag!r}")
    channels = info.get("mask_channels", 0)
    if not isinstance(channels, int) or isinstance(channels, bool) or not 0 <= channels <= 4096:
        raise CheckpointError(f"{where}: field 'mask_channels' must be an integer in 0..4096, got {channels!r}")
    sigma_min = _number(info, "sigma_min", 0.002, where)
    sigma_max = _number(info, "sigma_max", 80.0, where, low=sigma_min, strict=True)
    return {
        "family": texts["family"], "scale_rule": texts["scale_rule"],
        "image_shape": tuple(shape), "is_complex": flag, "mask_channels": channels,
        "noise_sigma": _number(info, "noise_sigma", _fallback(config, "noise_sigma", 0.0), where),
        "delta": _number(info, "delta", _fallback(config, "delta", 0.0), where, high=1.0, high_strict=True),
        "corruption": _number(info, "corruption", _fallback(config, "corruption", 0.0), where),
        "sigma_min": sigma_min, "sigma_max": sigma_max,
        "sigma_data": _number(info, "sigma_data", _fallback(config, "sigma_data", 0.5), where, strict=True),
    }


def _fallback(config: dict[str, Any], key: str, default: float) -> Any:
    v = config.get(key)
    return default if v is None else v


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
