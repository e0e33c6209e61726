"""Per-iteration schedules: the trainer's lr and weight decay, and the method's own (its config's ``schedules()``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def cosine_schedule(base: float, final: float, epochs: int, iters_per_epoch: int,
                    warmup_epochs: float = 0, start_warmup_value: float = 0) -> np.ndarray:
    """Per-iteration values: linear warm-up start→base (both ends included), then cosine base→final.

    The reference code's ``utils.cosine_scheduler`` (docs/papers.md, the reference schedules); fractional warm-up epochs are rounded
    to whole iterations. The cosine part never reaches ``final`` exactly.
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


@dataclass
class Schedules:
    """Every per-iteration value of a run; rebuilt identically on resume from (cfg, loader length).

    ``lr`` and ``wd`` are the trainer's; ``method`` holds the method's own by name, as its config's
    ``schedules()`` returns them.
    """

    lr: np.ndarray
    wd: np.ndarray
    iters_per_epoch: int
    base_lr: float = 0.0  # the peak lr (after batch scaling): parameter groups marked fixed_lr use it
    method: dict = field(default_factory=dict)

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
        assert len(lr) == len(wd) == total
        return cls(lr=lr, wd=wd, iters_per_epoch=ipe, base_lr=float(base_lr), method=cfg.schedules(ipe))
