"""Training diffusion priors from corrupted measurements: losses, the trainer, checkpoints, priors.

Main entry points:

* :class:`TrainConfig` — the run settings (TOML/YAML + CLI flags);
* :func:`train` — build data, network and loss from a config and train
  (what ``ambient-imaging train`` runs; :mod:`.assembly`); :class:`Trainer` (the loop,
  :mod:`.trainer`) for custom pieces;
* :func:`load_prior` — the trained denoiser and its metadata from a run directory;
* the losses (:mod:`.losses`, objects in the registry ``LOSSES``), the operator families
  (:mod:`.families`) and the noise-level distribution (:mod:`.sigma`).
"""

import importlib
from typing import Any

#: public name → the submodule that defines it. Imported on first use (PEP 562), so that
#: ``from ambient_imaging.training.config import ...`` (the CLI's parser) does not import the
#: trainer, the networks and the losses: a command-line start-up cost of several seconds.
_EXPORTS = {
    "build_loss": "assembly",
    "build_network": "assembly",
    "train": "assembly",
    "CheckpointError": "checkpoint",
    "latest_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "ResumableBatchSampler": "data",
    "TrainingData": "data",
    "build_training_data": "data",
    "DistContext": "distributed",
    "init_distributed": "distributed",
    "LOSSES": "losses",
    "AmbientLoss": "losses",
    "AmbientTweedieLoss": "losses",
    "ConsistencyLoss": "losses",
    "Loss": "losses",
    "LossOutput": "losses",
    "MixtureLoss": "losses",
    "NaiveLoss": "losses",
    "OracleLoss": "losses",
    "Prior": "prior",
    "load_prior": "prior",
    "LogNormalSigma": "sigma",
    "edm_weight": "sigma",
    "floor_weight": "sigma",
    "sample_sigma": "sigma",
    "estimate_sigma_data": "statistics",
    "mask_in_training_range": "statistics",
    "measurement_summary": "statistics",
    "NonFiniteLossError": "trainer",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "seed_everything": "trainer",
}

__all__ = [
    "AmbientLoss",
    "AmbientTweedieLoss",
    "ConsistencyLoss",
    "OracleLoss",
    "NaiveLoss",
    "MixtureLoss",
    "Loss",
    "LossOutput",
    "LOSSES",
    "LogNormalSigma",
    "edm_weight",
    "floor_weight",
    "estimate_sigma_data",
    "measurement_summary",
    "mask_in_training_range",
    "sample_sigma",
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "NonFiniteLossError",
    "train",
    "build_network",
    "build_loss",
    "seed_everything",
    "load_prior",
    "Prior",
    "CheckpointError",
    "latest_checkpoint",
    "load_checkpoint",
    "ResumableBatchSampler",
    "TrainingData",
    "build_training_data",
    "DistContext",
    "init_distributed",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
