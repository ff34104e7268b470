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

from .assembly import build_loss, build_network, train
from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from .config import TrainConfig
from .data import ResumableBatchSampler, TrainingData, build_training_data
from .distributed import DistContext, init_distributed
from .losses import (
    LOSSES,
    AmbientLoss,
    AmbientTweedieLoss,
    ConsistencyLoss,
    Loss,
    LossOutput,
    MixtureLoss,
    NaiveLoss,
    OracleLoss,
)
from .prior import Prior, load_prior
from .sigma import LogNormalSigma, edm_weight, floor_weight, sample_sigma
from .statistics import estimate_sigma_data, mask_in_training_range, measurement_summary
from .trainer import NonFiniteLossError, Trainer, TrainResult, seed_everything

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
