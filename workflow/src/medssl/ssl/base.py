"""What the trainer needs from an SSL method.

A method module (dino.py, simclr.py, ...) defines a config dataclass (a :class:`TrainConfig`
subclass with its own keys, defaults and schedules), and a :class:`Method` subclass: its views,
networks, loss, per-step hooks and exported backbone; kinds.py names it by config ``kind``. The
trainer (trainer.py) owns everything else.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn as nn

from medssl.ssl.config import TrainConfig
from medssl.ssl.distributed import convert_sync_batchnorm, unwrap

class Method:
    """One SSL method's networks, loss and per-step hooks.

    ``model`` is the trained network (backbone + head(s)); the trainer may wrap it in
    DistributedDataParallel and passes the (possibly wrapped) module back to :meth:`loss`.
    ``teacher`` is an EMA copy for methods that have one (else None); ``criterion`` is the loss
    module, whose buffers (e.g. a centre of the teacher's outputs) are checkpointed.
    """

    kind: ClassVar[str]  # its key in kinds.KINDS
    Config: ClassVar[type[TrainConfig]]
    #: augmentation defaults (medssl.augment.MultiCropConfig keys) under the user's keys
    augmentation_defaults: ClassVar[dict] = {}
    #: per-step scalars returned by loss() besides the loss, averaged over each epoch
    stat_names: ClassVar[tuple[str, ...]] = ()
    #: the method's columns of train_log.csv (stat_names included), after epoch, loss, lr, wd
    log_columns: ClassVar[tuple[str, ...]] = ()
    #: the views the method needs at least (2 global views for every method here)
    min_views: ClassVar[int] = 2
    #: whether the method takes local views besides the 2 global ones (augmentation.n_local)
    local_views: ClassVar[bool] = False
    #: the exported backbone's file in the run folder
    export_file: ClassVar[str] = "backbone_trained.pt"

    def __init__(self, cfg: TrainConfig, model: nn.Module, criterion: nn.Module,
                 teacher: nn.Module | None = None):
        self.cfg = cfg
        self.model = model
        self.criterion = criterion
        self.teacher = teacher

    @classmethod
    def view_defaults(cls, image_size: int) -> dict:
        """Augmentation keys that follow the dataset's image size unless the user sets them."""
        return {"global_size": image_size}

    @classmethod
    def build(cls, cfg: TrainConfig, backbone_spec: dict, n_views: int) -> "Method":
        raise NotImplementedError

    def fixed_lr_prefixes(self) -> tuple[str, ...]:
        """Names (prefixes in ``model``) of parameters trained at the base lr throughout, outside
        the lr schedule (e.g. SimSiam's predictor with ``predictor_lr: fixed``)."""
        return ()

    # ------------------------------------------------------------------ per step
    def loss(self, model: nn.Module, views: list[torch.Tensor], it: int, sched) -> tuple[torch.Tensor, dict]:
        """The loss of one batch of views (under autocast) and the stat_names scalars (0-d tensors)."""
        raise NotImplementedError

    def edit_gradients(self, model: nn.Module, it: int, sched) -> None:
        """After clipping, before the optimiser step (e.g. freezing a layer for the first steps)."""

    def after_step(self, model: nn.Module, it: int, sched) -> None:
        """After the optimiser step (e.g. the EMA teacher update)."""

    # ------------------------------------------------------------------ per epoch / export
    def epoch_row(self, sched, last_it: int, stats: dict[str, float]) -> dict:
        """The log_columns values of an epoch; ``stats`` holds the epoch means of stat_names."""
        return dict(stats)

    def describe(self, row: dict) -> str:
        """The method's part of the per-epoch log line."""
        return ", ".join(f"{k} {row[k]:.4g}" for k in self.log_columns)

    def export_backbone(self) -> nn.Module:
        """The backbone the embedding stage uses (the EMA teacher's where there is one)."""
        return (self.teacher if self.teacher is not None else unwrap(self.model)).backbone

    def signals(self, row: dict) -> dict[str, float]:
        """Method-specific collapse signals of a train_log row (see collapse.py)."""
        return {}

    # ------------------------------------------------------------------ plumbing
    def modules(self) -> dict[str, nn.Module]:
        """Checkpointed modules by name."""
        out = {"model": self.model, "loss": self.criterion}
        if self.teacher is not None:
            out["teacher"] = self.teacher
        return out

    def to(self, device: torch.device) -> "Method":
        self.model.to(device)
        self.criterion.to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    def convert_sync_batchnorm(self, device: torch.device) -> None:
        """BatchNorm over the global batch under DDP (see distributed.convert_sync_batchnorm)."""
        self.model = convert_sync_batchnorm(self.model, device)
        if self.teacher is not None:
            self.teacher = convert_sync_batchnorm(self.teacher, device)

    def train_mode(self) -> None:
        self.model.train()
        if self.teacher is not None:
            self.teacher.train()  # its BatchNorm layers use batch statistics, as the model's

