"""DINO self-distillation (Caron et al. 2021), as used by sparsam (Nielsen et al. 2023).

Deliberate differences from sparsam (docs/differences.md#sparsam-code); each is the intended method:
  * the teacher starts as an exact copy of the student, projection head included;
  * the teacher momentum rises from ``momentum_teacher`` towards ``momentum_teacher_end`` (1.0);
  * all schedules apply from the very first step (the lr warm-up starts at 0 at step 0);
  * the centre starts at 0 and is an EMA of raw teacher logits, all-reduced across ranks.
Sparsam-specific choices that are not bugs (AGC clipping, per-iteration teacher-temperature warm-up,
head depth, ...) are config keys, so either recipe is one config away. New anti-collapse options
(e.g. another centring) are a DinoConfig field plus a branch in DINOLoss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

from medssl.backbone import backbone_from_spec, feature_dim
from medssl.ssl.base import Method
from medssl.ssl.config import TrainConfig
from medssl.ssl.heads import MultiCropWrapper
from medssl.ssl.optim import ema_update
from medssl.ssl.schedules import cosine_schedule

TEACHER_BACKBONE = "teacher_backbone.pt"


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
class DinoConfig(TrainConfig):
    """Every DINO hyperparameter; defaults are the reference DINO ones (docs/papers.md#dino-defaults)."""

    drop_path_rate: float = 0.1  # student only; the teacher is built with 0
    momentum_teacher: float = 0.996
    momentum_teacher_end: float = 1.0
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 0
    student_temp: float = 0.1
    center_momentum: float = 0.9
    centering: str = "ema"  # "ema" (DINO's centre) | "sinkhorn" (DINOv2's Sinkhorn-Knopp teacher)
    sinkhorn_iterations: int = 3
    koleo_weight: float = 0.0  # DINOv2's KoLeo regulariser on the student's global-view features (0.1 there)
    out_dim: int = 65536
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    head_layers: int = 3
    norm_last_layer: bool = True
    freeze_last_layer_epochs: float = 1

    label = "DINO"
    epoch_keys = ("warmup_epochs", "warmup_teacher_temp_epochs", "freeze_last_layer_epochs")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("out_dim", "hidden_dim", "bottleneck_dim", "head_layers", "sinkhorn_iterations"):
            if getattr(self, key) < 1:
                raise ValueError(f"DinoConfig.{key} must be >= 1, got {getattr(self, key)}")
        if self.centering not in ("ema", "sinkhorn"):
            raise ValueError(f"DinoConfig.centering={self.centering!r}; expected one of ('ema', 'sinkhorn')")
        if self.koleo_weight < 0:
            raise ValueError(f"DinoConfig.koleo_weight must be >= 0, got {self.koleo_weight}")

    def schedules(self, ipe: int) -> dict:
        return {
            "momentum": cosine_schedule(self.momentum_teacher, self.momentum_teacher_end, self.epochs, ipe),
            "teacher_temp": teacher_temp_schedule(self.warmup_teacher_temp, self.teacher_temp,
                                                  self.warmup_teacher_temp_epochs, self.epochs, ipe),
            "freeze_last_layer_iters": int(round(self.freeze_last_layer_epochs * ipe)),
        }


class DINOHead(nn.Module):
    """MLP → bottleneck → L2-normalise → weight-normed prototypes, without the BN option
    (docs/papers.md#dino-head-and-multi-crop-wrapper)."""

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


def build_student_teacher(cfg: DinoConfig, backbone_spec: dict) -> tuple[MultiCropWrapper, MultiCropWrapper]:
    """Student (with drop-path) and a teacher that is an exact copy of it, head included."""

    def make(drop_path: float, pretrained: bool | None) -> MultiCropWrapper:
        backbone = backbone_from_spec(backbone_spec, drop_path, pretrained)
        head = DINOHead(feature_dim(backbone), cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim,
                        cfg.head_layers, cfg.norm_last_layer)
        return MultiCropWrapper(backbone, head)

    student = make(cfg.drop_path_rate, None)
    # A second instance (no drop-path) loaded with the student's state: deepcopy would copy drop-path.
    teacher = make(0.0, False)
    teacher.load_state_dict(student.state_dict())
    teacher.requires_grad_(False)
    return student, teacher


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student (docs/papers.md#dino-loss).

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


def cancel_last_layer_grads(model: nn.Module, it: int, freeze_iters: int) -> None:
    """Drop the prototype layer's gradients while ``it < freeze_iters`` (stabilises the start)."""
    if it >= freeze_iters:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


class DINO(Method):
    kind = "dino"
    Config = DinoConfig
    stat_names = ("teacher_entropy", "kl_teacher_student")
    log_columns = ("teacher_temp", "momentum", "teacher_entropy", "kl_teacher_student", "center_norm")
    min_views = 2  # the 2 global views (the teacher's), then any local views
    local_views = True
    export_file = TEACHER_BACKBONE

    @classmethod
    def view_defaults(cls, image_size: int) -> dict:
        return {**super().view_defaults(image_size), "local_size": max(8, image_size // 2)}

    @classmethod
    def build(cls, cfg: DinoConfig, backbone_spec: dict, n_views: int) -> "DINO":
        student, teacher = build_student_teacher(cfg, backbone_spec)
        return cls(cfg, student, DINOLoss(cfg.out_dim, n_views, cfg.student_temp, cfg.center_momentum,
                                          cfg.centering, cfg.sinkhorn_iterations), teacher)

    def loss(self, model, views, it, sched):
        with torch.no_grad():
            teacher_out = self.teacher(views[:2])  # only the 2 global views go through the teacher
        student_out, features = model(views, return_features=True)
        loss = self.criterion(student_out, teacher_out, float(sched.method["teacher_temp"][it]))
        if self.cfg.koleo_weight > 0:  # per global view, as DINOv2
            n = views[0].shape[0]
            loss = loss + self.cfg.koleo_weight * sum(koleo_loss(features[i * n:(i + 1) * n]) for i in range(2))
        return loss, self.criterion.last_stats

    def edit_gradients(self, model, it, sched):
        cancel_last_layer_grads(model, it, sched.method["freeze_last_layer_iters"])

    def after_step(self, model, it, sched):
        ema_update(self.teacher, model, float(sched.method["momentum"][it]))

    def epoch_row(self, sched, last_it, stats):
        own = sched.method
        return {"teacher_temp": float(own["teacher_temp"][last_it]), "momentum": float(own["momentum"][last_it]),
                **stats, "center_norm": self.criterion.center.norm().item()}

    def describe(self, row):
        return (f"teacher entropy {row['teacher_entropy']:.3f} (uniform {math.log(self.cfg.out_dim):.3f}), "
                f"KL(t||s) {row['kl_teacher_student']:.4f}, teacher temp {row['teacher_temp']:.3g}, "
                f"momentum {row['momentum']:.5f}")

    def signals(self, row):
        ratio = row["teacher_entropy"] / math.log(self.cfg.out_dim)
        # Sinkhorn-Knopp spreads every batch evenly over the prototypes, so the EMA centre's uniform
        # collapse cannot happen and a high per-image entropy only means an unsure teacher (digits: 0.94
        # with features 0.04-0.13 above random_init); it is reported under another name, not checked.
        key = "sinkhorn_teacher_entropy_ratio" if self.cfg.centering == "sinkhorn" else "teacher_entropy_ratio"
        return {key: ratio, "kl_teacher_student": row["kl_teacher_student"]}

    def modules(self):
        return {"student": self.model, "teacher": self.teacher, "loss": self.criterion}

