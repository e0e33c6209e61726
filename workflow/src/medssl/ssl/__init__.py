"""Self-supervised pretraining: one shared trainer (trainer.py) and one module per method.

Methods by config ``kind``: ``dino`` (dino.py), ``simclr`` (simclr.py), ``dclw`` (dclw.py), ``simsiam``
(simsiam.py), ``vicreg`` (vicreg.py). Each method module holds its config keys and
defaults, augmentation defaults, head(s), loss and whether it has an EMA teacher; the trainer
holds the epoch loop, mixed precision, DDP, schedules, checkpoints, logs and collapse signals.
``python -m medssl.ssl --config run.json`` is one training process (launch.py).
"""

from medssl.ssl.backbone import MultiCropWrapper, PerViewWrapper, build_backbone, feature_dim, load_backbone
from medssl.ssl.base import METHODS, Method, get_method, register
from medssl.ssl.collapse import CollapseConfig, CollapseError
from medssl.ssl.config import SmallDataConfig, TrainConfig
from medssl.ssl.dino import (TEACHER_BACKBONE, DINO, DINOHead, DINOLoss, DinoConfig, build_student_teacher,
                             cancel_last_layer_grads, train_dino, train_step)
from medssl.ssl.dclw import DCLW, DCLWConfig, DCLWLoss
from medssl.ssl.distributed import unwrap as _unwrap
from medssl.ssl.launch import (RUN_SPEC, distributed_command, env_from_slurm as _env_from_slurm,
                               launch_pretraining, main, parse_spec, run_pretraining)
from medssl.ssl.optim import clip_gradients, ema_update, param_groups
from medssl.ssl.schedules import Schedules, cosine_schedule, teacher_temp_schedule
from medssl.ssl.simclr import NTXentLoss, SimCLR, SimCLRConfig
from medssl.ssl.simsiam import SimSiam, SimSiamConfig, SimSiamLoss
from medssl.ssl.vicreg import VICReg, VICRegConfig, VICRegLoss
from medssl.ssl.trainer import (CHECKPOINT, HEALTH, TRAIN_LOG, log_columns, resolve_device, save_checkpoint, train,
                                training_step)

LOG_COLUMNS = log_columns(DINO)

__all__ = [
    "TrainConfig", "SmallDataConfig", "DinoConfig", "DINOHead", "MultiCropWrapper", "PerViewWrapper", "DINOLoss",
    "DINO", "Method", "METHODS", "register", "get_method", "Schedules", "cosine_schedule",
    "teacher_temp_schedule", "param_groups", "clip_gradients", "cancel_last_layer_grads", "ema_update",
    "build_backbone", "feature_dim", "build_student_teacher", "load_backbone", "resolve_device",
    "train_step", "training_step", "train", "train_dino", "run_pretraining",
    "launch_pretraining", "parse_spec", "distributed_command", "main", "CollapseConfig", "CollapseError",
    "SimCLR", "SimCLRConfig", "NTXentLoss", "DCLW", "DCLWConfig", "DCLWLoss", "SimSiam", "SimSiamConfig",
    "SimSiamLoss", "VICReg", "VICRegConfig", "VICRegLoss",
    "CHECKPOINT", "TRAIN_LOG", "HEALTH", "TEACHER_BACKBONE", "RUN_SPEC", "LOG_COLUMNS", "save_checkpoint",
]
