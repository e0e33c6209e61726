"""SimSiam (Chen & He 2021). SmallDataSSL's code has no predictor: the symmetric stop-gradient
cosine is applied to the projector outputs (docs/papers.md#smalldatassl-losses; prone to collapse). ``predictor:
true`` adds the real SimSiam predictor proj_dim → predictor_hidden_dim (BN, ReLU) → proj_dim
(2048 → 512 → 2048 with proj_dim 2048, method simsiam_predictor of config/presets/smalldatassl_canonical.yaml).

Two keys of the SimSiam paper that SmallDataSSL's code lacks: ``proj_output_bn`` ends the projector
with BatchNorm (no affine), and ``predictor_lr: fixed`` keeps the predictor at the base lr, with no
warm-up or decay (the paper's ``fix_pred_lr``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from medssl.ssl.base import Method
from medssl.ssl.config import SMALLDATA_AUGMENTATION, SmallDataConfig
from medssl.ssl.heads import mlp, two_view_model


@dataclass
class SimSiamConfig(SmallDataConfig):
    proj_hidden_dim: int = 2048
    proj_dim: int = 512
    predictor: bool = False
    predictor_hidden_dim: int = 512
    proj_output_bn: bool = False
    predictor_lr: str = "scheduled"  # scheduled (as the rest) | fixed (the base lr throughout)

    label = "SimSiam"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.predictor_lr not in ("scheduled", "fixed"):
            raise ValueError(f"SimSiamConfig.predictor_lr={self.predictor_lr!r}; expected scheduled or fixed")
        if self.predictor_lr == "fixed" and not self.predictor:
            raise ValueError("SimSiamConfig.predictor_lr=fixed needs predictor: true")


class SimSiamHead(nn.Module):
    """Projector, and the predictor when there is one: returns (z, p), p = z without a predictor."""

    def __init__(self, in_dim: int, cfg: SimSiamConfig):
        super().__init__()
        self.projector = mlp(in_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        if cfg.proj_output_bn:
            self.projector.append(nn.BatchNorm1d(cfg.proj_dim, affine=False))
        self.predictor = mlp(cfg.proj_dim, cfg.predictor_hidden_dim, cfg.proj_dim) if cfg.predictor else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(x)
        return z, (self.predictor(z) if self.predictor is not None else z)


class SimSiamLoss(nn.Module):
    """0.5·(−cos(p1, sg(z2))) + 0.5·(−cos(p2, sg(z1))), averaged over the batch.

    Per sample, so it needs no collective under DDP: DDP's average of the ranks' gradients (equal
    per-rank batches) is the gradient of the global batch's mean. What couples the samples is the
    heads' BatchNorm, and the trainer makes it SyncBatchNorm (statistics of the global batch)."""

    def forward(self, p1, z1, p2, z2) -> torch.Tensor:
        def d(p, z):
            return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()

        return 0.5 * d(p1, z2) + 0.5 * d(p2, z1)


class SimSiam(Method):
    kind = "simsiam"
    Config = SimSiamConfig
    augmentation_defaults = SMALLDATA_AUGMENTATION

    @classmethod
    def build(cls, cfg: SimSiamConfig, backbone_spec: dict, n_views: int) -> "SimSiam":
        return cls(cfg, two_view_model(cfg, backbone_spec, lambda d: SimSiamHead(d, cfg)), SimSiamLoss())

    def fixed_lr_prefixes(self) -> tuple[str, ...]:
        return ("head.predictor.",) if self.cfg.predictor_lr == "fixed" else ()

    def loss(self, model, views, it, sched):
        (z1, p1), (z2, p2) = model(views[:2])
        return self.criterion(p1, z1, p2, z2), {}
