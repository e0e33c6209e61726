"""DINO self-distillation pretraining (Caron et al. 2021), as used by sparsam (Nielsen et al. 2023).

The whole algorithm lives in this file, in the spirit of facebookresearch/dino's ``main_dino.py``:
projection head, multi-crop wrapper, loss with centring, schedules, EMA teacher and the training
loop with atomic checkpoints and exact resume.

Deliberate differences from sparsam (see REFERENCE.md section 5); each is the intended method:
  * the teacher starts as an exact copy of the student, projection head included;
  * the teacher momentum rises from ``momentum_teacher`` towards ``momentum_teacher_end`` (1.0);
  * all schedules apply from the very first step (the lr warm-up starts at 0 at step 0);
  * the centre starts at 0 and is an EMA of raw teacher logits, all-reduced across ranks.
Sparsam-specific choices that are not bugs (AGC clipping, per-iteration teacher-temperature warm-up,
head depth, ...) are config keys, so either recipe is one config away.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import timm
import timm.utils
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils.parametrizations import weight_norm
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from medssl import runtime

__all__ = [
    "DinoConfig",
    "DINOHead",
    "MultiCropWrapper",
    "DINOLoss",
    "sinkhorn_knopp",
    "koleo_loss",
    "Schedules",
    "cosine_schedule",
    "teacher_temp_schedule",
    "param_groups",
    "clip_gradients",
    "cancel_last_layer_grads",
    "ema_update",
    "build_backbone",
    "feature_dim",
    "build_student_teacher",
    "load_backbone",
    "resolve_device",
    "autocast_dtype",
    "train_step",
    "train_dino",
    "run_pretraining",
    "launch_pretraining",
    "distributed_command",
    "main",
]

CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.csv"
TEACHER_BACKBONE = "teacher_backbone.pt"
LOG_COLUMNS = ["epoch", "loss", "lr", "wd", "teacher_temp", "momentum", "teacher_entropy",
               "kl_teacher_student", "center_norm", "seconds", "images_per_s"]
# Config keys that change how fast a run goes but not what it computes; they may differ on resume.
_OPERATIONAL_KEYS = {"num_workers", "device", "compile", "checkpoint_every_epochs",
                     "fused_adamw", "grad_checkpointing"}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class DinoConfig:
    """Every DINO hyperparameter; defaults are the reference DINO ones (REFERENCE 2.7)."""

    epochs: int = 100
    batch_size: int = 64  # global batch, split across ranks under DDP
    lr: float = 5e-4  # for batch 256; the lr used is lr * batch_size / 256
    min_lr: float = 1e-6
    warmup_epochs: float = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = 0.996
    momentum_teacher_end: float = 1.0
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9
    centering: str = "ema"  # "ema" (DINO's centre) | "sinkhorn" (DINOv2's Sinkhorn-Knopp teacher)
    sinkhorn_iterations: int = 3
    koleo_weight: float = 0.0  # DINOv2's KoLeo regulariser on the student's global-crop features (0.1 there)
    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    head_layers: int = 3
    norm_last_layer: bool = True
    freeze_last_layer_epochs: float = 1
    clip_mode: str = "norm"  # "norm" (DINO per-parameter L2) | "agc" (timm, sparsam) | "none"
    clip_value: float = 3.0  # 3.0 for norm; 0.32 for agc
    drop_path_rate: float = 0.1  # student only; the teacher is built with 0
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU | "bf16" | "fp32"
    fused_adamw: bool = True  # only used where supported (CUDA)
    grad_checkpointing: bool = False
    compile: bool = False
    checkpoint_every_epochs: int = 1  # 0 = only at the end
    num_workers: int = -1  # -1 = derived from the available CPU threads
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        choices = {"clip_mode": ("norm", "agc", "none"), "centering": ("ema", "sinkhorn"),
                   "precision": ("auto", "bf16", "fp32"),
                   "device": ("auto", "cpu", "cuda")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"DinoConfig.{key}={getattr(self, key)!r}; expected one of {allowed}")
        for key in ("epochs", "batch_size", "out_dim", "hidden_dim", "bottleneck_dim", "head_layers",
                    "sinkhorn_iterations"):
            if getattr(self, key) < 1:
                raise ValueError(f"DinoConfig.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"DinoConfig.warmup_epochs={self.warmup_epochs} must lie in [0, epochs={self.epochs}]")
        if self.koleo_weight < 0:
            raise ValueError(f"DinoConfig.koleo_weight must be >= 0, got {self.koleo_weight}")
        if self.checkpoint_every_epochs < 0:
            raise ValueError("DinoConfig.checkpoint_every_epochs must be >= 0")

    @classmethod
    def from_dict(cls, d: dict) -> "DinoConfig":
        """Build from a (YAML) mapping; unknown keys raise, numbers given as strings are converted.

        PyYAML reads ``5e-4`` as a string, so float fields accept strings.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown DINO config key(s): {', '.join(unknown)}")
        kwargs = {}
        for key, value in d.items():
            kind = fields[key].type
            if kind == "float" and not isinstance(value, bool):
                value = float(value)
            elif kind == "int" and not isinstance(value, bool) and float(value) == int(float(value)):
                value = int(float(value))
            elif kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"DINO config key {key} must be true/false, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
class DINOHead(nn.Module):
    """MLP → bottleneck → L2-normalise → weight-normed prototypes (REFERENCE 2.2, no BN option)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 n_layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        n_layers = max(n_layers, 1)
        if n_layers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(n_layers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        # Created after apply(): like DINO, the prototype directions keep nn.Linear's default init.
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        if norm_last_layer:
            magnitude.requires_grad = False

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """Runs the backbone once per run of consecutive same-resolution crops, then the head once."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[torch.Tensor] | torch.Tensor, return_features: bool = False):
        """Head outputs of all crops; with ``return_features`` also the backbone features [N, D]."""
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        features, start = [], 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            out = self.backbone(torch.cat(crops[start:end]))
            features.append(out[0] if isinstance(out, tuple) else out)
            start = end
        features = torch.cat(features)
        out = self.head(features)
        return (out, features) if return_features else out


def build_backbone(name: str, pretrained: bool = False, drop_path_rate: float = 0.0, **kwargs) -> nn.Module:
    """A timm model returning its pooled feature [B, D] (classifier removed with num_classes=0)."""
    if drop_path_rate > 0:  # not every timm model accepts the argument
        kwargs["drop_path_rate"] = drop_path_rate
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)


def feature_dim(backbone: nn.Module) -> int:
    """Width of ``backbone(x)``; timm's head_hidden_size differs from num_features only with pre-logits."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def load_backbone(backbone_spec: dict, weights: Path | None) -> nn.Module:
    """Backbone for embedding: ``weights`` (a teacher_backbone.pt) loaded strictly, or the spec's init."""
    kwargs = dict(backbone_spec.get("kwargs") or {})
    if weights is None:
        return build_backbone(backbone_spec["name"], bool(backbone_spec.get("pretrained", False)), **kwargs)
    backbone = build_backbone(backbone_spec["name"], pretrained=False, **kwargs)
    backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return backbone


def build_student_teacher(cfg: DinoConfig, backbone_spec: dict) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Student (with drop-path) and a teacher that is an exact copy of it, head included."""
    kwargs = dict(backbone_spec.get("kwargs") or {})

    def make(drop_path: float, pretrained: bool) -> MultiCropWrapper:
        backbone = build_backbone(backbone_spec["name"], pretrained, drop_path, **kwargs)
        head = DINOHead(feature_dim(backbone), cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim,
                        cfg.head_layers, cfg.norm_last_layer)
        return MultiCropWrapper(backbone, head)

    student = make(cfg.drop_path_rate, bool(backbone_spec.get("pretrained", False)))
    # A second instance (no drop-path) loaded with the student's state: deepcopy would copy drop-path.
    teacher = make(0.0, False)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    return student, teacher


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------
class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student (REFERENCE 2.1).

    The teacher temperature is passed per call (schedules live in the training loop).
    After each call ``last_stats`` holds detached collapse signals: the mean entropy of the
    teacher distribution and KL(teacher || student) averaged over the same pairs as the loss.
    """

    def __init__(self, out_dim: int, n_crops: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "ema", sinkhorn_iterations: int = 3):
        super().__init__()
        self.n_crops = n_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.centering = centering
        self.sinkhorn_iterations = sinkhorn_iterations
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.last_stats: dict[str, torch.Tensor] = {}

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        student_logp = F.log_softmax(student_out.float() / self.student_temp, dim=-1).chunk(self.n_crops)
        if self.centering == "sinkhorn":
            teacher_q = sinkhorn_knopp(teacher_out.float().detach() / teacher_temp, self.sinkhorn_iterations)
            teacher_logq = teacher_q.clamp_min(1e-12).log()
        else:
            teacher_logq = F.log_softmax((teacher_out.float().detach() - self.center) / teacher_temp, dim=-1)
            teacher_q = teacher_logq.exp()
        n_global = teacher_out.shape[0] // student_logp[0].shape[0]

        total, n_terms = 0.0, 0
        for iq, q in enumerate(teacher_q.chunk(n_global)):
            for v, logp in enumerate(student_logp):
                if v == iq:  # a view is never compared with itself
                    continue
                total = total + torch.sum(-q * logp, dim=-1).mean()
                n_terms += 1
        loss = total / n_terms

        with torch.no_grad():
            # Every teacher crop appears in the same number of pairs, so pair-mean entropy = crop-mean.
            entropy = -(teacher_q * teacher_logq).sum(-1).mean()
            self.last_stats = {"teacher_entropy": entropy, "kl_teacher_student": loss.detach() - entropy}
        if self.centering == "ema":  # Sinkhorn-Knopp needs no centre; it stays at 0
            self.update_center(teacher_out)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = teacher_out.float().sum(dim=0, keepdim=True)
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            world = dist.get_world_size()
        batch_center = batch_center / (teacher_out.shape[0] * world)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, iterations: int = 3) -> torch.Tensor:
    """DINOv2's teacher assignment: rows of ``softmax(scores)`` rescaled so that every prototype gets
    the same share of the (global, all-reduced) batch; [B, K] -> [B, K], each row sums to 1.

    Equal prototype usage rules out both collapses (one prototype for all, or uniform rows). Done in
    the log domain: a sharp teacher (scores / 0.04) underflows exp() in float32.
    """
    distributed = dist.is_available() and dist.is_initialized()
    log_q = scores.double().t()  # K x B
    n_samples = log_q.shape[1] * (dist.get_world_size() if distributed else 1)
    n_protos = log_q.shape[0]

    def logsumexp_over_samples(x: torch.Tensor) -> torch.Tensor:
        top = x.max(dim=1, keepdim=True).values
        if distributed:
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
        total = (x - top).exp().sum(dim=1, keepdim=True)
        if distributed:
            dist.all_reduce(total)
        return top + total.log()

    for _ in range(iterations):
        log_q = log_q - logsumexp_over_samples(log_q) - math.log(n_protos)  # each prototype: 1/K of the mass
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(n_samples)  # each sample: 1/B
    return (log_q + math.log(n_samples)).exp().t().to(scores.dtype)


def koleo_loss(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko-Leonenko entropy estimator (DINOv2): -mean log distance of each L2-normalised
    feature to its nearest neighbour in the batch; spreads the features over the sphere."""
    x = F.normalize(features.float(), p=2, dim=-1, eps=eps)
    with torch.no_grad():
        dots = x @ x.t()
        dots.fill_diagonal_(-2.0)
        nearest = dots.argmax(dim=1)
    return -torch.log(F.pairwise_distance(x, x[nearest], eps=eps) + eps).mean()


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------
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
    """Every per-iteration value of a run; rebuilt identically on resume from (cfg, loader length)."""

    lr: np.ndarray
    wd: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    freeze_last_layer_iters: int
    iters_per_epoch: int

    @classmethod
    def from_config(cls, cfg: DinoConfig, iters_per_epoch: int, global_batch: int) -> "Schedules":
        ipe = iters_per_epoch
        return cls(
            lr=cosine_schedule(cfg.lr * global_batch / 256, cfg.min_lr, cfg.epochs, ipe, cfg.warmup_epochs),
            wd=cosine_schedule(cfg.weight_decay, cfg.weight_decay_end, cfg.epochs, ipe),
            momentum=cosine_schedule(cfg.momentum_teacher, cfg.momentum_teacher_end, cfg.epochs, ipe),
            teacher_temp=teacher_temp_schedule(cfg.warmup_teacher_temp, cfg.teacher_temp,
                                               cfg.warmup_teacher_temp_epochs, cfg.epochs, ipe),
            freeze_last_layer_iters=int(round(cfg.freeze_last_layer_epochs * ipe)),
            iters_per_epoch=ipe,
        )


# --------------------------------------------------------------------------------------------
# Optimisation utilities
# --------------------------------------------------------------------------------------------
def param_groups(model: nn.Module) -> list[dict]:
    """[decayed, not decayed]: biases and 1-D parameters (norms) get no weight decay."""
    regularized, not_regularized = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (not_regularized if name.endswith(".bias") or p.ndim == 1 else regularized).append(p)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


@torch.no_grad()
def clip_gradients(model: nn.Module, mode: str, value: float) -> list[torch.Tensor] | None:
    """"norm": DINO's per-parameter clip, g ← g·min(1, value/(‖g‖+1e-6)); returns the norms.
    "agc": timm adaptive gradient clipping (unit-wise, clip factor ``value``, eps 1e-3), as sparsam.
    "none": nothing."""
    params = [p for p in model.parameters() if p.grad is not None]
    if mode == "none" or not params:
        return None
    if mode == "agc":
        timm.utils.adaptive_clip_grad(params, clip_factor=value, eps=1e-3, norm_type=2.0)
        return None
    if mode != "norm":
        raise ValueError(f"unknown clip mode {mode!r}")
    grads = [p.grad for p in params]
    norms = torch.stack(torch._foreach_norm(grads, 2))
    # Vectorised (no host sync per parameter); multiplying by exactly 1.0 leaves a grad unchanged.
    factors = torch.clamp(value / (norms + 1e-6), max=1.0).to(grads[0].dtype)
    torch._foreach_mul_(grads, list(factors.unbind()))
    return list(norms.unbind())


def cancel_last_layer_grads(model: nn.Module, it: int, freeze_iters: int) -> None:
    """Drop the prototype layer's gradients while ``it < freeze_iters`` (stabilises the start)."""
    if it >= freeze_iters:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, m: float) -> None:
    """teacher ← m·teacher + (1 − m)·student for parameters only (BN running stats are the teacher's own)."""
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameter lists")
    torch._foreach_mul_(t_params, m)
    torch._foreach_add_(t_params, s_params, alpha=1 - m)


# --------------------------------------------------------------------------------------------
# Device, precision, distributed helpers
# --------------------------------------------------------------------------------------------
def resolve_device(device: str, log: logging.Logger | None = None) -> torch.device:
    return runtime.resolve_device(device, "methods.<name>.params.device", "training", log)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 needs no loss scaling, so there is no GradScaler."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _dist() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from (seed, epoch[, rank]): each epoch's data order and views are
    fixed by the config alone, so a resumed run reproduces them."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             # the key array as a list keeps the checkpoint loadable with weights_only=True
             "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state((state["numpy"][0], np.asarray(state["numpy"][1], dtype=np.uint32), *state["numpy"][2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _gather_rng_states(world: int) -> list[dict]:
    """RNG states of all ranks, indexed by rank."""
    if world == 1:
        return [_rng_state()]
    states: list = [None] * world
    dist.all_gather_object(states, _rng_state())
    return states


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_log_csv(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def save_checkpoint(path: Path, state: dict) -> None:
    _atomic_torch_save(state, path)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train_step(student: nn.Module, teacher: nn.Module, dino_loss: DINOLoss, optimizer: torch.optim.Optimizer,
               crops: list[torch.Tensor], it: int, sched: Schedules, cfg: DinoConfig,
               amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """One DINO iteration at global iteration ``it``; returns loss and collapse signals."""
    for i, group in enumerate(optimizer.param_groups):  # schedules apply from the very first step
        group["lr"] = float(sched.lr[it])
        if i == 0:
            group["weight_decay"] = float(sched.wd[it])

    device_type = crops[0].device.type
    with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        with torch.no_grad():
            teacher_out = teacher(crops[:2])  # only the 2 global views go through the teacher
        student_out, features = student(crops, return_features=True)
        loss = dino_loss(student_out, teacher_out, float(sched.teacher_temp[it]))
        if cfg.koleo_weight > 0:  # per global view, as DINOv2
            n = crops[0].shape[0]
            loss = loss + cfg.koleo_weight * sum(koleo_loss(features[i * n:(i + 1) * n]) for i in range(2))

    # One host sync per step: the loss (checked before it can reach the weights) and the signals.
    loss_value, entropy, kl = torch.stack([loss.detach().float(), dino_loss.last_stats["teacher_entropy"],
                                           dino_loss.last_stats["kl_teacher_student"]]).tolist()
    if not math.isfinite(loss_value):
        epoch, step = divmod(it, sched.iters_per_epoch)
        raise RuntimeError(f"DINO loss is {loss_value} at epoch {epoch}, step {step} "
                           f"(global step {it}); stopping training")

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    module = _unwrap(student)
    clip_gradients(module, cfg.clip_mode, cfg.clip_value)
    cancel_last_layer_grads(module, it, sched.freeze_last_layer_iters)
    optimizer.step()
    ema_update(teacher, module, float(sched.momentum[it]))

    return {"loss": loss_value, "teacher_entropy": entropy, "kl_teacher_student": kl}


def _make_loader(cfg: DinoConfig, dataset: Dataset, device: torch.device, log: logging.Logger,
                 rank: int, world: int) -> tuple[DataLoader, torch.Generator, int]:
    global_batch = cfg.batch_size
    if len(dataset) < global_batch:
        log.warning("dataset has %d images, fewer than batch_size %d: using batch size %d",
                    len(dataset), global_batch, len(dataset))
        global_batch = len(dataset)
    per_rank = global_batch // world
    if per_rank < 1:
        raise ValueError(f"global batch {global_batch} cannot be split over {world} ranks")
    num_workers = runtime.default_num_workers() if cfg.num_workers < 0 else cfg.num_workers
    generator = torch.Generator()
    sampler = None
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=per_rank, shuffle=sampler is None, sampler=sampler,
                        generator=generator, drop_last=True, num_workers=num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=num_workers > 0)
    if len(loader) == 0:
        raise ValueError("the DINO data loader yields no batch")
    return loader, generator, per_rank * world


def _train_one_epoch(student, teacher, dino_loss, optimizer, loader, loader_gen, augment, epoch: int,
                     sched: Schedules, cfg: DinoConfig, amp_dtype, device: torch.device, rank: int, world: int,
                     global_batch: int, is_main: bool) -> dict:
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    loader_gen.manual_seed(_epoch_seed(cfg.seed, epoch))
    aug_gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, rank))  # CPU: see train_dino
    sums = torch.zeros(3, dtype=torch.float64)  # loss, teacher entropy, KL
    start = time.perf_counter()
    bar = tqdm(loader, total=sched.iters_per_epoch, desc=f"DINO epoch {epoch}", disable=not is_main)
    for i, (images, _) in enumerate(bar):
        it = epoch * sched.iters_per_epoch + i
        images = images.to(device, non_blocking=True)
        crops = augment(images, aug_gen)
        stats = train_step(student, teacher, dino_loss, optimizer, crops, it, sched, cfg, amp_dtype)
        sums += torch.tensor([stats["loss"], stats["teacher_entropy"], stats["kl_teacher_student"]],
                             dtype=torch.float64)
        bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{sched.lr[it]:.2e}",
                        t_temp=f"{sched.teacher_temp[it]:.4f}", m=f"{sched.momentum[it]:.5f}", refresh=False)
    bar.close()
    if world > 1:
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu() / world
    seconds = time.perf_counter() - start
    loss, entropy, kl = (sums / sched.iters_per_epoch).tolist()
    last = (epoch + 1) * sched.iters_per_epoch - 1
    return {"epoch": epoch, "loss": loss, "lr": float(sched.lr[last]), "wd": float(sched.wd[last]),
            "teacher_temp": float(sched.teacher_temp[last]), "momentum": float(sched.momentum[last]),
            "teacher_entropy": entropy, "kl_teacher_student": kl,
            "center_norm": dino_loss.center.norm().item(), "seconds": seconds,
            "images_per_s": sched.iters_per_epoch * global_batch / seconds}


def _check_resumable(ckpt: dict, cfg: DinoConfig, backbone_spec: dict, iters_per_epoch: int) -> None:
    old = ckpt["cfg"]
    new = dataclasses.asdict(cfg)
    changed = sorted(k for k in new if k not in _OPERATIONAL_KEYS and old.get(k) != new[k])
    if changed:
        raise ValueError("checkpoint was written with a different DINO config (" +
                         ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed) +
                         "); delete it or use a new output directory")
    if ckpt["backbone_spec"] != backbone_spec:
        raise ValueError(f"checkpoint backbone {ckpt['backbone_spec']} differs from {backbone_spec}")
    if ckpt["global_step"] != ckpt["epoch"] * iters_per_epoch:
        raise ValueError("checkpoint step count does not match the current data loader length; "
                         "the data set changed since the checkpoint was written")


def train_dino(cfg: DinoConfig, backbone_spec: dict, dataset: Dataset,
               augment: Callable[[torch.Tensor, torch.Generator], list[torch.Tensor]],
               out_dir: Path, log: logging.Logger | None = None) -> Path:
    """Pretrain with DINO; returns ``out_dir/teacher_backbone.pt`` (the teacher backbone's state_dict).

    ``dataset`` yields (uint8 image [C,S,S], label). ``augment(images, generator)`` receives the
    uint8 batch [B,C,S,S] on the training device and a CPU generator (seeded from (seed, epoch, rank),
    so views are reproducible on any device), and returns the crops: 2 global views first, then
    the local views. Resumes from ``out_dir/checkpoint.pt``.
    """
    log = log or logging.getLogger(__name__)
    out_dir = Path(out_dir)
    rank, world = _dist()
    is_main = rank == 0
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device, log if is_main else None)
    amp_dtype = autocast_dtype(cfg.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # few distinct crop shapes: autotuning pays off

    loader, loader_gen, global_batch = _make_loader(cfg, dataset, device, log, rank, world)
    sched = Schedules.from_config(cfg, len(loader), global_batch)

    # The number of crops the augmentation makes sizes the loss; probe it with a throwaway generator.
    probe_gen = torch.Generator().manual_seed(0)
    probe = torch.stack([dataset[i][0] for i in range(min(2, len(dataset)))]).to(device)
    n_crops = len(augment(probe, probe_gen))
    if n_crops < 2:
        raise ValueError(f"augment returned {n_crops} crop(s); DINO needs at least the 2 global crops")

    _seed_everything(cfg.seed)  # identical initial weights on every rank
    student, teacher = build_student_teacher(cfg, backbone_spec)
    if cfg.grad_checkpointing:
        student.backbone.set_grad_checkpointing(True)
    if world > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in student.modules()):
        student = nn.SyncBatchNorm.convert_sync_batchnorm(student)
        teacher = nn.SyncBatchNorm.convert_sync_batchnorm(teacher)
    student.to(device)
    teacher.to(device)
    dino_loss = DINOLoss(cfg.out_dim, n_crops, cfg.student_temp, cfg.center_momentum, cfg.centering,
                         cfg.sinkhorn_iterations).to(device)
    optimizer = torch.optim.AdamW(param_groups(student),
                                  fused=bool(cfg.fused_adamw and device.type == "cuda"))
    _seed_everything(cfg.seed + rank)  # ranks draw different drop-path masks

    start_epoch, history = 0, []
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        _check_resumable(ckpt, cfg, backbone_spec, sched.iters_per_epoch)
        student.load_state_dict(ckpt["student"])
        teacher.load_state_dict(ckpt["teacher"])
        optimizer.load_state_dict(ckpt["optimizer"])
        dino_loss.load_state_dict(ckpt["loss"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        if rank < len(ckpt["rng"]):
            _set_rng_state(ckpt["rng"][rank])
        else:
            log.warning("checkpoint has no RNG state for rank %d (world size changed)", rank)
        if is_main:
            log.info("resuming from epoch %d (%d of %d epochs done, global step %d) from %s",
                     start_epoch, start_epoch, cfg.epochs, ckpt["global_step"], ckpt_path)
        del ckpt

    if cfg.compile:  # in place, so state_dict keys stay those of the timm model
        student.backbone.compile()
        teacher.backbone.compile()
    if world > 1:
        # static_graph: gradient checkpointing re-runs forwards inside backward
        student = DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None,
                                          static_graph=cfg.grad_checkpointing)
    student.train()
    teacher.train()  # as in DINO: BN layers (e.g. XCiT's patch embedding) use batch statistics
    if is_main:
        n_params = sum(p.numel() for p in _unwrap(student).parameters())
        log.info("DINO: %s (%.3gM params incl. head), %d crops, global batch %d (%d process(es) x %d) "
                 "x %d iterations/epoch, %d epochs, device %s, autocast %s", backbone_spec["name"],
                 n_params / 1e6, n_crops, global_batch, world, global_batch // world, sched.iters_per_epoch,
                 cfg.epochs, device, amp_dtype or "off")

    for epoch in range(start_epoch, cfg.epochs):
        row = _train_one_epoch(student, teacher, dino_loss, optimizer, loader, loader_gen, augment,
                               epoch, sched, cfg, amp_dtype, device, rank, world, global_batch, is_main)
        history.append(row)
        done = epoch + 1
        every = cfg.checkpoint_every_epochs
        checkpoint_now = done == cfg.epochs or (every > 0 and done % every == 0)
        rng = _gather_rng_states(world) if checkpoint_now else None  # a collective: all ranks call it
        if not is_main:
            continue
        log.info("epoch %d/%d: loss %.4f, teacher entropy %.3f (uniform %.3f), KL(t||s) %.4f, "
                 "lr %.3g, teacher temp %.3g, momentum %.5f, %.0f img/s",
                 epoch, cfg.epochs, row["loss"], row["teacher_entropy"], math.log(cfg.out_dim),
                 row["kl_teacher_student"], row["lr"], row["teacher_temp"], row["momentum"], row["images_per_s"])
        _write_log_csv(history, out_dir / TRAIN_LOG)
        if checkpoint_now:
            save_checkpoint(ckpt_path, {
                "student": _unwrap(student).state_dict(), "teacher": teacher.state_dict(),
                "optimizer": optimizer.state_dict(), "loss": dino_loss.state_dict(),
                "epoch": done, "global_step": done * sched.iters_per_epoch, "rng": rng,
                "cfg": dataclasses.asdict(cfg), "backbone_spec": backbone_spec, "history": history,
            })

    out_path = out_dir / TEACHER_BACKBONE
    if is_main:
        _atomic_torch_save(teacher.backbone.state_dict(), out_path)
        log.info("wrote teacher backbone to %s", out_path)
    if world > 1:
        dist.barrier()
    return out_path


# --------------------------------------------------------------------------------------------
# A pretraining job: in this process, or one process per GPU (torchrun on one node, srun on several)
# --------------------------------------------------------------------------------------------
RUN_SPEC = "run.json"


def run_pretraining(spec: dict, log: logging.Logger | None = None) -> Path:
    """Train from a JSON-able job description, as resolved by the Snakemake rule:

    ``{"splits": {"labeled_train": csv, "unlabeled_train": csv}, "image_root", "image_size",
    "channels", "dino": {DinoConfig keys}, "augmentation": {MultiCropConfig keys},
    "backbone": {name, pretrained, kwargs}, "work_dir", "output"}``.

    Every rank builds the same pool (the split files are read, not shipped); rank 0 moves the
    teacher backbone to ``output``.
    """
    from medssl.augment import MultiCropAugment, MultiCropConfig  # keep `import medssl.ssl` light
    from medssl.data import ImageDataset, read_split, ssl_pool
    import pandas as pd

    log = log or logging.getLogger(__name__)
    rank, _ = _dist()
    paths = spec["splits"]
    splits = {name: read_split(Path(paths[name]), labeled=name != "unlabeled_train")
              for name in ("labeled_train", "unlabeled_train") if paths.get(name)}
    # Datasets without unlabeled images (e.g. bone marrow) pretrain on labeled_train alone.
    splits.setdefault("unlabeled_train", pd.DataFrame({"image": pd.Series([], dtype=str)}))
    pool = ssl_pool(splits)
    if rank == 0:
        log.info("SSL pool: %d images (labeled_train %d + unlabeled_train %d)", len(pool),
                 len(splits["labeled_train"]), len(splits["unlabeled_train"]))
    dataset = ImageDataset(pool["image"].tolist(), Path(spec["image_root"]), int(spec["image_size"]),
                           channels=int(spec.get("channels", 3)))
    cfg = DinoConfig.from_dict(spec.get("dino") or {})
    augment = MultiCropAugment(MultiCropConfig.from_dict(spec.get("augmentation") or {}))
    teacher = train_dino(cfg, spec["backbone"], dataset, augment, Path(spec["work_dir"]), log)
    output = Path(spec["output"]) if spec.get("output") else teacher
    if rank == 0 and output != teacher:
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(teacher, output)
    return output


def distributed_command(spec_path: Path, procs_per_node: int, nodes: int = 1, mpi: str | None = None) -> list[str]:
    """The command that starts ``procs_per_node x nodes`` training processes.

    One node: ``python -m torch.distributed.run --standalone`` (torchrun). Several nodes: the
    job's ``mpi`` launcher (``srun``) starts one task per GPU on every node; each task derives
    its rank from SLURM's variables (see :func:`_env_from_slurm`).
    """
    entry = [sys.executable, "-m", "medssl.ssl", "--config", str(spec_path)]
    if nodes <= 1 and not mpi:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                f"--nproc-per-node={procs_per_node}", "--max-restarts=0", "-m", "medssl.ssl",
                "--config", str(spec_path)]
    if not mpi:
        raise ValueError(f"{nodes} nodes need a task launcher: give the rule the resources "
                         f"mpi='srun' and tasks_per_node=<GPUs per node> (see profiles/slurm)")
    return [*shlex.split(mpi), f"--nodes={nodes}", f"--ntasks-per-node={procs_per_node}",
            "--kill-on-bad-exit=1", *entry]


def launch_pretraining(spec: dict, gpus: int = 1, nodes: int = 1, mpi: str | None = None,
                       threads: int | None = None, log: logging.Logger | None = None) -> Path:
    """Run :func:`run_pretraining` in this process (``gpus`` <= 1), else one process per GPU.

    ``gpus`` counts the GPUs of the whole job (Snakemake's ``gpu`` resource, sbatch ``--gpus``),
    spread evenly over ``nodes``. Without CUDA the processes train on the CPU (gloo), which is
    how the distributed path is tested. The child processes' output goes to this process's
    stderr (the rule's log file). Only rank 0 writes files.
    """
    log = log or logging.getLogger(__name__)
    gpus, nodes = max(1, int(gpus or 1)), max(1, int(nodes or 1))
    if gpus % nodes:
        raise ValueError(f"{gpus} GPUs cannot be spread evenly over {nodes} nodes")
    per_node = gpus // nodes
    cfg = DinoConfig.from_dict(spec.get("dino") or {})
    if cfg.device == "cuda":
        resolve_device(cfg.device, log)  # fails here, before any process is started, if CUDA is absent
    if per_node * nodes == 1:
        if threads:
            torch.set_num_threads(max(1, int(threads)))
        return run_pretraining(spec, log)

    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if use_cuda and torch.cuda.device_count() < per_node:
        raise RuntimeError(f"{per_node} training processes per node need as many GPUs, but only "
                           f"{torch.cuda.device_count()} are visible (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    work_dir = Path(spec["work_dir"])
    work_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "threads": max(1, int(threads or os.cpu_count() or 1) // per_node)}
    spec_path = work_dir / RUN_SPEC
    tmp = spec_path.with_name(spec_path.name + ".tmp")
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, spec_path)
    cmd = distributed_command(spec_path, per_node, nodes, mpi)
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    if nodes > 1 or mpi:
        env.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
    log.info("distributed DINO: %d node(s) x %d process(es) on %s (%s), %d CPU thread(s) each: %s",
             nodes, per_node, "CUDA" if use_cuda else "the CPU", "nccl" if use_cuda else "gloo",
             spec["threads"], shlex.join(cmd))
    out = _child_stream()
    proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out is not None else None)
    if proc.returncode != 0:
        raise RuntimeError(f"distributed DINO training failed (exit status {proc.returncode}); "
                           f"each rank's error is in the log above")
    output = Path(spec["output"]) if spec.get("output") else work_dir / TEACHER_BACKBONE
    if not output.exists():
        raise RuntimeError(f"distributed DINO training ended without writing {output}")
    return output


def _child_stream():
    """This process's stderr as a file the children can inherit (the rule's log), flushed."""
    for handler in logging.getLogger().handlers + logging.getLogger("medssl").handlers:
        handler.flush()
    try:
        sys.stderr.flush()
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):  # e.g. pytest's capture
        return None


def _env_from_slurm(env: dict | None = None) -> None:
    """Under ``srun`` (one task per GPU) derive torch.distributed's variables from SLURM's."""
    env = os.environ if env is None else env
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return
    env["RANK"] = env["SLURM_PROCID"]
    env["WORLD_SIZE"] = env["SLURM_NTASKS"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0].split(",")[0]
    env["LOCAL_WORLD_SIZE"] = per_node or "1"
    if "MASTER_ADDR" not in env:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "")
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                               text=True, check=True).stdout.split()
        env["MASTER_ADDR"] = hosts[0]
    env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))


def main(argv: list[str] | None = None) -> int:
    """``python -m medssl.ssl --config run.json``: one training process (started by torchrun or srun)."""
    parser = argparse.ArgumentParser(prog="python -m medssl.ssl", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path, help="job description written by the rule")
    args = parser.parse_args(argv)
    spec = json.loads(args.config.read_text())
    _env_from_slurm()
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format=f"%(asctime)s rank {rank}/{world} %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger("medssl")
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = (spec.get("dino") or {}).get("device", "auto")
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if world > 1:
        dist.init_process_group("nccl" if use_cuda else "gloo")
        log.info("joined the process group (backend %s, local rank %d, %s); rank 0 writes all files",
                 dist.get_backend(), local_rank, f"cuda:{local_rank}" if use_cuda else "cpu")
    try:
        run_pretraining(spec, log)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from medssl.ssl import main as _main  # the package module, not a second copy named __main__

    sys.exit(_main())
