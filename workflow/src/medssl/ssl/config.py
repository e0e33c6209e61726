"""Training settings shared by every SSL method (a method's config subclasses :class:`TrainConfig`).

Each method adds its own keys and may change the defaults (DINO keeps the reference DINO values,
the SmallDataSSL methods the paper's). Keys are the config's ``methods.<name>.params``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import ClassVar

from medssl.settings import Settings

# Keys that change how fast a run goes but not what it computes; they may differ on resume.
OPERATIONAL_KEYS = frozenset({"num_workers", "device", "compile", "checkpoint_every_epochs",
                              "fused_adamw", "grad_checkpointing"})


@dataclass
class TrainConfig(Settings):
    """The trainer's keys; defaults are the reference DINO ones (docs/papers.md#dino-defaults).

    ``from_dict`` (:class:`medssl.settings.Settings`) builds it from the config's mapping."""

    epochs: int = 100
    # Floor on the optimiser steps: on a pool too small for `epochs` to reach it, the epochs are raised
    # to ceil(min_steps / iterations per epoch) and every schedule given in epochs is stretched with them.
    min_steps: int = 0
    batch_size: int = 64  # global batch, split across ranks under DDP
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 5e-4  # with lr_reference_batch > 0 the lr used is lr * batch_size / lr_reference_batch
    lr_reference_batch: int = 256  # 0: lr is used as given
    lr_schedule: str = "cosine"  # cosine (warm-up, then cosine to min_lr) | constant
    min_lr: float = 1e-6
    warmup_epochs: float = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    sgd_momentum: float = 0.0  # only for optimizer sgd
    clip_mode: str = "norm"  # "norm" (DINO per-parameter L2) | "agc" (timm, sparsam) | "none"
    clip_value: float = 3.0  # 3.0 for norm; 0.32 for agc
    drop_path_rate: float = 0.0  # backbone stochastic depth (trained network only)
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU | bf16 | fp16 (GradScaler) | fp32
    fused_adamw: bool = True  # only used where supported (CUDA)
    grad_checkpointing: bool = False
    compile: bool = False
    checkpoint_every_epochs: int = 1  # 0 = only at the end
    num_workers: int = -1  # -1 = derived from the available CPU threads
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda

    label: ClassVar[str] = "SSL"  # the method's name in error messages
    #: keys counted in epochs: stretched with the epochs when min_steps raises them (see sized_to)
    epoch_keys: ClassVar[tuple[str, ...]] = ("warmup_epochs",)

    def __post_init__(self) -> None:
        choices = {"clip_mode": ("norm", "agc", "none"), "precision": ("auto", "bf16", "fp16", "fp32"),
                   "device": ("auto", "cpu", "cuda"), "optimizer": ("adamw", "sgd"),
                   "lr_schedule": ("cosine", "constant")}
        self.check_choices(choices)
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{type(self).__name__}.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"{type(self).__name__}.warmup_epochs={self.warmup_epochs} must lie in "
                             f"[0, epochs={self.epochs}]")
        for key in ("checkpoint_every_epochs", "lr_reference_batch", "min_steps"):
            if getattr(self, key) < 0:
                raise ValueError(f"{type(self).__name__}.{key} must be >= 0")

    def sized_to(self, iters_per_epoch: int) -> "TrainConfig":
        """This config for a pool of ``iters_per_epoch`` optimiser steps per epoch: unchanged when
        ``epochs`` reach ``min_steps``, else with the epochs raised to reach it and every key of
        ``epoch_keys`` (warm-ups, DINO's last-layer freeze) scaled by the same factor, so that each
        schedule keeps its share of training."""
        if self.epochs * iters_per_epoch >= self.min_steps:
            return self
        epochs = math.ceil(self.min_steps / iters_per_epoch)
        factor = epochs / self.epochs
        return dataclasses.replace(self, epochs=epochs,
                                   **{k: getattr(self, k) * factor for k in self.epoch_keys})

    def schedules(self, iters_per_epoch: int) -> dict:
        """The method's own per-iteration values (Schedules.method), beside the trainer's lr and wd."""
        return {}

    def base_lr(self, global_batch: int) -> float:
        return self.lr * global_batch / self.lr_reference_batch if self.lr_reference_batch else self.lr

    def identity(self) -> dict:
        """The keys that decide what a run computes (a checkpoint belongs to one identity)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in OPERATIONAL_KEYS}


@dataclass
class SmallDataConfig(TrainConfig):
    """SmallDataSSL's optimisation (docs/papers.md#smalldatassl-optimisation): SGD lr 1e-2, no momentum,
    no weight decay, batch 64, 250 epochs, a constant lr, no clipping."""

    epochs: int = 250
    optimizer: str = "sgd"
    lr: float = 1e-2
    lr_reference_batch: int = 0
    lr_schedule: str = "constant"
    warmup_epochs: float = 0
    weight_decay: float = 0.0
    weight_decay_end: float = 0.0
    clip_mode: str = "none"


def config_hash(*parts) -> str:
    """A short stable hash of JSON-able parts (a run's identity)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# SmallDataSSL's two views (docs/papers.md#smalldatassl-data-and-views) as medssl.augment.MultiCropConfig
# keys: RandomResizedCrop to the dataset's image_size (the paper resizes every image to 224 and crops 224 px
# views; the launcher fills it in),
# horizontal flip 0.5, ColorJitter(0.4, 0.4, 0.2, 0.1) always applied, grayscale 0.2, Gaussian blur
# (kernel 23, sigma 0.1-2) with p 0.5 and solarisation with p 0.1 on both views, ImageNet normalisation.
# The crop scale is (0.08, 1.0), the intended one; the paper's code has (0.08, 0.1), which
# config/presets/smalldatassl_paper.yaml keeps.
SMALLDATA_AUGMENTATION: dict = {
    "n_local": 0, "global_scale": (0.08, 1.0), "hflip_p": 0.5, "vflip_p": 0.0,
    "rotation_degrees": 0.0, "jitter_p": 1.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1,
    "grayscale_p": 0.2, "blur_p": (0.5, 0.5, 0.5), "blur_sigma": (0.1, 2.0), "blur_kernel": 23,
    "solarize_p": (0.1, 0.1, 0.1), "normalize": "imagenet",
}
