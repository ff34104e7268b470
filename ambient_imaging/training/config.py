"""Training configuration: one dataclass in sections, read from TOML/YAML, overridden by CLI flags.

A run directory stores the resolved configuration as ``config.toml``; it is the
single source of truth for resuming a run and for :func:`load_prior`. The file has
sections (:data:`SECTIONS`)::

    steps = 1000                 # the run: out, steps, minutes, seed, device, precision, ...
    [optim]                      # batch_size, lr, warmup_steps, ema_*, ...
    [loss]   name = "ambient"    # delta, space, heldout, weighting, ...
    [data]   path = "faces"      # operator, corruption, noise_sigma, acceleration, ...
    [network] preset = "small"   # sigma_data, mask_domain, channels_last, [network.overrides]

In Python every setting keeps its flat name (``cfg.lr``, ``cfg.loss``, ``cfg.replace(delta=0.2)``;
the CLI flags are those names); :meth:`TrainConfig.section` gives one section. Files written
before the sections (flat keys) still load: :func:`flat_config` is the one compatibility function.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ambient_imaging.operators.domains import MASK_DOMAINS

from .families import FAMILIES as _FAMILIES
from .sigma import WEIGHTINGS

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ambient_imaging.io import atomic_write_text  # re-exported: the one atomic-write implementation

__all__ = ["TrainConfig", "CONFIG_VERSION", "CLEAN_SHARES", "FAMILIES", "GATES", "LOSSES", "NETWORKS", "SECTIONS",
           "flat_config", "write_toml", "atomic_write_text", "check_applicable_flags"]

#: Version of the run-directory layout / config schema. A run written by a newer
#: version is refused by :func:`load_prior` with a clear message.
CONFIG_VERSION = 1

FAMILIES = tuple(_FAMILIES)
LOSSES = ("ambient", "tweedie", "naive", "oracle")  # the configurable entries of training.losses.LOSSES
NETWORKS = ("tiny", "small", "paper")

#: section -> {key in the file: setting}; settings in no section stay at the top level of the file
SECTIONS: dict[str, dict[str, str]] = {
    "optim": {k: k for k in ("batch_size", "accumulate", "lr", "warmup_steps", "weight_decay", "grad_clip",
                             "ema_halflife_images", "ema_rampup")},
    "loss": {"name": "loss", **{k: k for k in ("delta", "space", "heldout", "fresh_subsample", "weighting",
                                               "sigma_floor", "extra_acceleration", "center_lines", "gate",
                                               "gate_factor")}},
    "data": {"path": "data", **{k: k for k in ("clean_data", "operator", "corruption", "noise_sigma", "acceleration",
                                               "center_fraction", "mask_kind", "image_size", "array", "declination",
                                               "observation_hours", "uv_times", "sky_observation", "num_workers",
                                               "cache_items", "clean_share")}},
    "network": {"preset": "network", "overrides": "network_overrides", "sigma_data": "sigma_data",
                "mask_domain": "mask_domain", "channels_last": "channels_last"},
}
PRECISIONS = ("auto", "fp32", "bf16")
#: Ambient Omni's noise-level gate in mixed sets: ``auto`` (noisy complete samples train at σ ≥ their crossing
#: point, clean ones at every σ) or ``off`` (noisy samples as if clean at every σ: the naive mix, an ablation)
GATES = ("auto", "off")
#: the named ``clean_share`` rules (besides a number in (0, 1)): :func:`~.mix.resolve_clean_share`
CLEAN_SHARES = ("auto", "uniform")
SPACES = ("measurement", "image")


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes (grouped):
        data, operator, out: the training measurements (a path, or ``"faces"``), the
            operator family (``mask|noise|mri|interferometry``) and the run directory.
        steps, minutes: stop after ``steps`` optimizer steps or ``minutes`` of wall time,
            whichever comes first (``minutes=None``: no time limit).
        batch_size: images per optimizer step over *all* ranks and accumulation rounds.
        accumulate: gradient-accumulation rounds per optimizer step.
        lr, warmup_steps, weight_decay, grad_clip: AdamW with linear LR warm-up over
            ``warmup_steps`` optimizer steps and global-norm clipping (0 disables it).
        ema_halflife_images, ema_rampup: EMA with ``β = 0.5 ** (batch / halflife)``, the
            half-life limited to ``ema_rampup × images seen`` early on (Karras et al. 2022).
        precision: ``fp32``, ``bf16`` (autocast of the network; weights, optimizer, EMA and the loss stay
            fp32) or ``auto`` (default): bf16 on CPUs with native bf16 instructions (avx512_bf16/AMX:
            ~1.5x faster convolutions), fp32 elsewhere (GPUs: set bf16 explicitly).
            ``compile``: ``torch.compile`` (pays on GPUs; on CPU the compilation takes minutes).
        seed, device: reproducibility and placement (``device=None``: CUDA when available).
        loss: ``ambient`` (further subsampling, δ), ``tweedie`` (noisy data at σ_n),
            ``naive`` (treat A^H y as clean) or ``oracle`` (clean data; baselines only).
        delta, space, heldout, fresh_subsample: ambient-loss settings (``heldout=None``: every
            measured row is scored, Tweedie-corrected on Ã's rows when the data are noisy;
            ``true``: only the rows outside Ã; ``false``: all rows, uncorrected).
        weighting, sigma_floor: per-σ loss weighting (``edm``, ``floor``, ``uncertainty``: EDM2's
            learned per-σ uncertainty; ``docs/losses.md``) and the floor σ_f (default σ_n).
        extra_acceleration, center_lines: MRI ambient training over a range of masks: Ã's
            acceleration is drawn between the data's R (×1/(1−δ)) and ``extra_acceleration`` × R,
            its protected centre width in ``center_lines = [lo, hi]`` (default: half the data's
            ACS width to all of it). Recorded with the prior (``train_accelerations``,
            ``train_center_lines``). ``extra_acceleration = 1`` and ``center_lines = [acs, acs]``
            give a fixed δ with the whole ACS protected (the earlier behaviour).
        gate, gate_factor: mixed sets (a few clean samples beside corrupted ones, :mod:`~.mix`): ``auto``
            (default) trains a complete sample that carries noise σ_n' with the Tweedie loss only at
            σ ≥ ``gate_factor`` · σ_n' (Ambient Omni's crossing point) and clean samples at every σ;
            ``off`` trains noisy complete samples as if clean at every σ (the naive mix). Recorded with
            the prior (``info["gate"]``).
        clean_share: mixed sets: every batch holds ``round(F · B)`` clean samples (at least one of each
            kind), each kind streamed in its own seeded epochs, so that a few clean samples are seen as
            often as asked rather than as often as they occur. ``"auto"`` (default): F = 0.5 when the
            clean samples are fewer than half of the set, else uniform; ``"uniform"``: batches drawn
            uniformly over the set; a number: that F. Recorded with the prior
            (``info["data_mix"]["batch_clean"]``; :func:`~.mix.resolve_clean_share`).
        mask_domain: ``auto`` (``kspace`` for MRI, ``pixel`` for masks) or ``none``/``pixel``/``kspace``:
            the σ → ∞ preconditioning of unobserved entries (``networks/precond.py``).
        diagnostics_every: every this many steps the gradient norm per σ band is measured
            (``metrics.csv`` columns ``gnorm_s*``; 0: never). The loss per σ band (``loss_s*``) is
            always logged.
        channels_last: channels-last memory format for the network (``None``: on CPU in fp32 only, where
            it speeds convolutions up ~8 %; in bf16 it makes GroupNorm's backward ~9x slower).
        cache_items: keep training items in memory after their first read (``num_workers = 0``; up to 2 GiB).
        corruption, noise_sigma, acceleration, center_fraction, mask_kind, image_size:
            synthetic corruption of clean image sets (faces, .npy stacks, image folders)
            and simulated MRI sampling.
        array, declination, observation_hours, uv_times: simulated interferometric
            observations (array layout name, source declination in degrees, hours per
            observation, time samples per observation).
        network, network_overrides, sigma_data: denoiser preset and its keyword overrides;
            ``sigma_data=None`` (default): estimated from the training measurements
            (:func:`~ambient_imaging.training.estimate_sigma_data`) and written to the run's config.
        checkpoint_every, keep_checkpoints, log_every, num_workers, progress.
    """

    data: str = ""
    operator: str = "mask"
    out: str = ""
    steps: int = 1000
    minutes: float | None = None
    batch_size: int = 16
    accumulate: int = 1
    lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_halflife_images: float = 50_000.0
    ema_rampup: float = 0.05
    precision: str = "auto"
    compile: bool = False
    seed: int = 0
    device: str | None = None
    loss: str = "ambient"
    delta: float = 0.1
    space: str = "measurement"
    heldout: bool | None = None
    fresh_subsample: bool = True
    weighting: str = "uncertainty"
    sigma_floor: float | None = None
    extra_acceleration: float = 2.0
    center_lines: list[int] | None = None
    gate: str = "auto"
    gate_factor: float = 1.0
    mask_domain: str = "auto"
    diagnostics_every: int = 100
    channels_last: bool | None = None
    cache_items: bool = True
    corruption: float = 0.5
    noise_sigma: float = 0.0
    acceleration: int = 4
    center_fraction: float | None = None
    mask_kind: str = "random"
    #: a second folder of fully sampled (clean) fastMRI files trained beside ``data`` (mixture training)
    clean_data: str | None = None
    #: mixed sets: the share of every batch drawn from the clean samples (``"auto"``, ``"uniform"`` or a number)
    clean_share: float | str = "auto"
    image_size: int | None = None
    array: str = "vla_d"
    declination: float = 34.0
    observation_hours: float = 4.0
    uv_times: int = 24
    #: interferometry: how training sky images are seen — ``"uv"`` (simulated gridded visibilities of ``array``)
    #: or ``"noise"`` (the sky images with Gaussian noise ``noise_sigma``, e.g. with the tweedie loss)
    sky_observation: str = "uv"
    network: str = "small"
    network_overrides: dict[str, Any] = field(default_factory=dict)
    sigma_data: float | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    progress: bool = True
    version: int = CONFIG_VERSION

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Raise one clear ``ValueError`` for the first invalid setting; return ``self``."""

        def bad(msg: str) -> None:
            raise ValueError(f"invalid training config: {msg}")

        if self.operator not in FAMILIES:
            bad(f"unknown operator family {self.operator!r}; choose one of {', '.join(FAMILIES)}")
        if self.loss not in LOSSES:
            bad(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.network not in NETWORKS:
            bad(f"unknown network preset {self.network!r}; choose one of {', '.join(NETWORKS)}")
        if self.precision not in PRECISIONS:
            bad(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.space not in SPACES:
            bad(f"space must be one of {', '.join(SPACES)}, got {self.space!r}")
        for name in ("steps", "batch_size", "accumulate", "checkpoint_every", "log_every", "keep_checkpoints"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                bad(f"{name} must be a positive integer, got {v!r}")
        if self.batch_size % self.accumulate:
            bad(f"batch_size ({self.batch_size}) must be divisible by accumulate ({self.accumulate})")
        for name in ("warmup_steps", "num_workers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(f"{name} must be an integer >= 0, got {v!r}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            bad(f"minutes must be > 0 (or unset), got {self.minutes}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad(f"lr must be a positive number, got {self.lr}")
        for name in ("weight_decay", "grad_clip", "ema_rampup"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                bad(f"{name} must be >= 0, got {v}")
        if not self.ema_halflife_images > 0:
            bad(f"ema_halflife_images must be > 0, got {self.ema_halflife_images}")
        if not 0.0 < self.delta < 1.0:
            bad(f"delta (extra corruption δ) must be in (0, 1), got {self.delta}")
        if not 0.0 <= self.corruption < 1.0:
            bad(f"corruption must be in [0, 1), got {self.corruption}")
        if not (self.noise_sigma >= 0 and math.isfinite(self.noise_sigma)):
            bad(f"noise_sigma (σ_n) must be >= 0, got {self.noise_sigma}")
        if self.sigma_data is not None and not (self.sigma_data > 0 and math.isfinite(self.sigma_data)):
            bad(f"sigma_data must be > 0 (or unset: estimated from the data), got {self.sigma_data}")
        if self.weighting not in WEIGHTINGS:
            bad(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.sigma_floor is not None and not (self.sigma_floor >= 0 and math.isfinite(self.sigma_floor)):
            bad(f"sigma_floor must be >= 0, got {self.sigma_floor}")
        if not (self.extra_acceleration >= 1 and math.isfinite(self.extra_acceleration)):
            bad(f"extra_acceleration must be >= 1, got {self.extra_acceleration}")
        if self.center_lines is not None and not (
            isinstance(self.center_lines, (list, tuple)) and len(self.center_lines) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in self.center_lines)
            and 0 <= self.center_lines[0] <= self.center_lines[1]
        ):
            bad(f"center_lines must be [lo, hi] integers with 0 <= lo <= hi, got {self.center_lines!r}")
        if not (self.clean_share in CLEAN_SHARES or (isinstance(self.clean_share, (int, float))
                                                      and not isinstance(self.clean_share, bool)
                                                      and math.isfinite(self.clean_share)
                                                      and 0.0 < self.clean_share < 1.0)):
            bad(f"clean_share must be {' or '.join(CLEAN_SHARES)} or a number between 0 and 1 (exclusive), "
                f"got {self.clean_share!r}")
        if self.gate not in GATES:
            bad(f"gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if not (math.isfinite(self.gate_factor) and self.gate_factor >= 1.0):
            bad(f"gate_factor must be >= 1 (the crossing point is at least σ_n), got {self.gate_factor}")
        if self.mask_domain != "auto" and self.mask_domain not in MASK_DOMAINS:
            bad(f"mask_domain must be auto, {', '.join(MASK_DOMAINS)}, got {self.mask_domain!r}")
        if not isinstance(self.diagnostics_every, int) or self.diagnostics_every < 0:
            bad(f"diagnostics_every must be an integer >= 0, got {self.diagnostics_every!r}")
        if self.acceleration < 1:
            bad(f"acceleration must be >= 1, got {self.acceleration}")
        if not -90.0 <= self.declination <= 90.0:
            bad(f"declination must be in [-90, 90] degrees, got {self.declination}")
        if not (0 < self.observation_hours <= 24) or self.uv_times < 2:
            bad("observation_hours must be in (0, 24] and uv_times >= 2")
        if self.sky_observation not in ("uv", "noise"):
            bad(f"sky_observation must be 'uv' or 'noise', got {self.sky_observation!r}")
        if self.image_size is not None and self.image_size < 8:
            bad(f"image_size must be >= 8 pixels, got {self.image_size}")
        from .losses import loss_class  # the loss answers what it needs of the config

        problem = loss_class(self.loss).check_config(self)
        if problem is not None:
            bad(problem)
        if self.version > CONFIG_VERSION:
            bad(
                f"config version {self.version} was written by a newer ambient-imaging "
                f"(this one reads up to {CONFIG_VERSION}); upgrade the package"
            )
        if not isinstance(self.network_overrides, dict):
            bad("network_overrides must be a table/dict")
        return self

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        """Plain flat dict of simple types (JSON-serialisable; ``None`` values dropped)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None}

    def to_sections(self) -> dict[str, Any]:
        """The dict written to ``config.toml``: run settings at the top, then the :data:`SECTIONS`."""
        flat = self.to_dict()
        out: dict[str, Any] = {k: v for k, v in flat.items() if k not in _IN_SECTION}
        for name, keys in SECTIONS.items():
            table = {key: flat[setting] for key, setting in keys.items() if setting in flat}
            if name == "network" and not table.get("overrides"):
                table.pop("overrides", None)
            out[name] = table
        return out

    def section(self, name: str) -> dict[str, Any]:
        """One section's settings by their flat names (``cfg.section("optim")["lr"]``)."""
        if name not in SECTIONS:
            raise ValueError(f"unknown config section {name!r}; sections are {', '.join(SECTIONS)}")
        return {setting: getattr(self, setting) for setting in SECTIONS[name].values()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict, sectioned or flat (:func:`flat_config`), rejecting unknown keys (typos)."""
        d = flat_config(d, source)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"{source}: unknown setting(s) {', '.join(unknown)}; valid settings are {', '.join(sorted(names))}"
            )
        return cls(**{k: _coerce(cls, k, v, source) for k, v in d.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

        A top-level ``[train]`` table, if present, is used; otherwise the whole file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        suffix = path.suffix.lower()
        try:
            if suffix == ".toml":
                with open(path, "rb") as f:
                    d = tomllib.load(f)
            elif suffix in (".yaml", ".yml"):
                try:
                    import yaml
                except ImportError as err:  # pragma: no cover - PyYAML is optional
                    raise ValueError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use TOML") from err
                with open(path) as f:
                    d = yaml.safe_load(f) or {}
            else:
                raise ValueError(f"{path}: config files must end in .toml, .yaml or .yml")
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a valid config file ({err})") from err
        except Exception as err:
            if type(err).__module__.startswith("yaml"):
                raise ValueError(f"{path}: not a valid YAML file ({err})") from err
            raise
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a table of settings at the top level")
        if "train" in d and isinstance(d["train"], dict):
            d = d["train"]
        return cls.from_dict(d, source=str(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """Copy with some settings changed (``None`` values are ignored: "not given")."""
        changes = {k: v for k, v in changes.items() if v is not None}
        base = self.to_dict()
        base.update(changes)
        if "minutes" not in changes and self.minutes is None:
            base.pop("minutes", None)
        return TrainConfig.from_dict(base, source="overrides")

    def save(self, path: str | os.PathLike) -> None:
        """Write as TOML, atomically."""
        atomic_write_text(Path(path), write_toml(self.to_sections()))


_IN_SECTION = {setting for keys in SECTIONS.values() for setting in keys.values()}


def flat_config(d: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """The flat settings of a config dict: sections (``[optim]``, ``[loss]``, ...) unfolded.

    The one compatibility function for configuration files: files written before the sections
    (every setting at the top level, e.g. ``loss = "ambient"``, ``network = "small"``) pass
    through unchanged. A top-level ``loss``/``data``/``network`` that is a table is a section, a
    string is the flat setting.
    """
    out = {k: v for k, v in d.items() if not (k in SECTIONS and isinstance(v, dict))}
    for name, keys in SECTIONS.items():
        table = d.get(name)
        if not isinstance(table, dict):
            continue
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise ValueError(f"{source}: unknown setting(s) {', '.join(unknown)} in [{name}]; valid settings there "
                             f"are {', '.join(keys)}")
        for key, value in table.items():
            setting = keys[key]
            if setting in out:
                raise ValueError(f"{source}: {setting!r} is given twice (at the top level and in [{name}])")
            out[setting] = value
    return out


def _coerce(cls: type, key: str, value: Any, source: str) -> Any:
    """Light type coercion (YAML/TOML ints for floats) with clear errors."""
    f = {f.name: f for f in dataclasses.fields(cls)}[key]
    t = str(f.type)
    if value is None:
        return None
    try:
        if t.startswith("int") and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if t == "float | str":  # a number or a named rule (clean_share)
            return value if isinstance(value, str) else float(value)
        if t.startswith("float"):
            return float(value)
        if t == "bool":
            if not isinstance(value, bool):
                raise ValueError
            return value
        if t.startswith("str"):
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: setting {key!r} must be of type {t}, got {value!r}") from None
    return value


# ---------------------------------------------------------------------- TOML writer
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        out = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{out}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def write_toml(d: dict[str, Any], _prefix: str = "") -> str:
    """Serialise a nested dict of simple types (bool/int/float/str/lists, sub-dicts) as TOML."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    for k, v in d.items():
        if isinstance(v, dict):
            name = f"{_prefix}{_toml_key(k)}"
            lines += ["", f"[{name}]", write_toml(v, name + ".").rstrip("\n")]
    return "\n".join(line for line in lines) + "\n"


def check_applicable_flags(flags: dict, operator: str, data: str | None) -> None:
    """A flag that does not apply to ``operator`` (or to the data) is an error, never silently ignored
    and written into ``config.toml``: ``--corruption`` and ``--image-size`` shape synthetic corruption
    of clean image sets, ``--acceleration`` undersamples fully sampled MRI files."""
    if "corruption" in flags and operator != "mask":
        raise ValueError(f"--corruption applies to --operator mask (synthetic masks of clean images), "
                         f"not to --operator {operator}; drop it")
    if "image_size" in flags and operator == "mri":
        raise ValueError("--image-size applies to --operator mask, noise or interferometry (image sets), not to "
                         "--operator mri (k-space keeps its matrix); drop it")
    if "clean_data" in flags and operator == "interferometry":
        raise ValueError("--clean-data applies to --operator mri, mask or noise (mixed sets), not to --operator "
                         "interferometry; drop it")
    if "acceleration" in flags and operator != "mri":
        raise ValueError(f"--acceleration applies to --operator mri, not to --operator {operator}; drop it")
    if "acceleration" in flags and data:
        from .mix import undersampled_acceleration

        r = undersampled_acceleration(Path(data))
        if r is not None:
            raise ValueError(f"--acceleration {flags['acceleration']}: the files of --data are undersampled already "
                             f"(R = {r:.2f}, with their own masks); it applies to fully sampled files only; drop it")
