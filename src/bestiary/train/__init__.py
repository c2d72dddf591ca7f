"""Training engine: a small explicit :class:`Trainer`, schedules, checkpoints, evaluation.

from bestiary.train import Trainer, TimeLimit, ShuffledBatches, adamw, muon_with_adamw, warmup_cosine, evaluate, accuracy
"""

from bestiary.train.batches import ShuffledBatches, shard_batch, to_device
from bestiary.train.callbacks import Callback, ScheduleOnTime, StopAtTarget, TimeLimit
from bestiary.train.checkpoint import (
    Checkpoint,
    CheckpointMismatchError,
    StagedCheckpoint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    stage_checkpoint,
)
from bestiary.train.metrics import accuracy, evaluate
from bestiary.train.optim import (
    Muon,
    OptimizerChain,
    adamw,
    decay_groups,
    muon_with_adamw,
    newton_schulz_orthogonalize,
)
from bestiary.train.schedules import constant, warmup_cosine
from bestiary.train.trainer import Trainer

__all__ = [
    "Callback",
    "Checkpoint",
    "CheckpointMismatchError",
    "Muon",
    "OptimizerChain",
    "ScheduleOnTime",
    "ShuffledBatches",
    "StagedCheckpoint",
    "StopAtTarget",
    "TimeLimit",
    "Trainer",
    "accuracy",
    "adamw",
    "constant",
    "decay_groups",
    "evaluate",
    "latest_checkpoint",
    "load_checkpoint",
    "muon_with_adamw",
    "newton_schulz_orthogonalize",
    "save_checkpoint",
    "shard_batch",
    "stage_checkpoint",
    "to_device",
    "warmup_cosine",
]
