"""Per-iteration schedules (DINO's ``utils.cosine_scheduler`` and the teacher-temperature warm-up)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def cosine_schedule(base: float, final: float, epochs: int, iters_per_epoch: int,
                    warmup_epochs: float = 0, start_warmup_value: float = 0) -> np.ndarray:
    """Per-iteration values: linear warm-up start→base (both ends included), then cosine base→final.

    DINO's ``utils.cosine_scheduler``; fractional warm-up epochs are rounded to whole iterations.
    The cosine part never reaches ``final`` exactly.
    """
    total = epochs * iters_per_epoch
    warmup_iters = int(round(warmup_epochs * iters_per_epoch))
    if warmup_iters > total:
        raise ValueError(f"warm-up ({warmup_iters} iterations) longer than training ({total})")
    warmup = np.linspace(start_warmup_value, base, warmup_iters)
    i = np.arange(total - warmup_iters)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * i / len(i))) if len(i) else i.astype(float)
    schedule = np.concatenate((warmup, cosine))
    assert len(schedule) == total
    return schedule


def teacher_temp_schedule(warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: float,
                          epochs: int, iters_per_epoch: int) -> np.ndarray:
    """Per-iteration teacher temperature (sparsam's form): linear over W = warmup_epochs·iters
    iterations, τ(k) = warmup + (final − warmup)·k/W for k ≤ W, then constant.

    Reference DINO indexes a linspace of length warmup_epochs by *epoch* instead.
    """
    total = epochs * iters_per_epoch
    warmup_iters = int(round(warmup_epochs * iters_per_epoch))
    k = np.arange(total, dtype=float)
    if warmup_iters == 0:
        return np.full(total, float(teacher_temp))
    frac = np.minimum(k / warmup_iters, 1.0)
    return warmup_teacher_temp + (teacher_temp - warmup_teacher_temp) * frac


@dataclass
class Schedules:
    """Every per-iteration value of a run; rebuilt identically on resume from (cfg, loader length).

    ``lr`` and ``wd`` are the trainer's; the rest belong to methods that use them (DINO: teacher
    momentum and temperature, last-layer freeze) and are filled by the config's ``schedules()``.
    """

    lr: np.ndarray
    wd: np.ndarray
    iters_per_epoch: int
    momentum: np.ndarray | None = None
    teacher_temp: np.ndarray | None = None
    freeze_last_layer_iters: int = 0
    base_lr: float = 0.0  # the peak lr (after batch scaling): parameter groups marked fixed_lr use it

    @classmethod
    def from_config(cls, cfg, iters_per_epoch: int, global_batch: int) -> "Schedules":
        ipe = iters_per_epoch
        total = cfg.epochs * ipe
        base_lr = cfg.base_lr(global_batch)
        if cfg.lr_schedule == "constant":
            lr = cosine_schedule(base_lr, base_lr, cfg.epochs, ipe, cfg.warmup_epochs)
        else:
            lr = cosine_schedule(base_lr, cfg.min_lr, cfg.epochs, ipe, cfg.warmup_epochs)
        wd = cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, cfg.epochs, ipe)
        extra = cfg.schedules(ipe) if hasattr(cfg, "schedules") else {}
        assert len(lr) == len(wd) == total
        return cls(lr=lr, wd=wd, iters_per_epoch=ipe, base_lr=float(base_lr), **extra)
