"""SimCLR (Chen et al. 2020) as SmallDataSSL's code: NT-Xent with τ = 0.5 on L2-normalised
projections of the two views, projector 2048→512 (BN, ReLU)→128
(docs/papers.md#smalldatassl-losses)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from medssl.ssl.base import Method
from medssl.ssl.config import SMALLDATA_AUGMENTATION, SmallDataConfig
from medssl.ssl.distributed import gather_rows
from medssl.ssl.heads import NormalizedProjector, two_view_model


@dataclass
class SimCLRConfig(SmallDataConfig):
    temperature: float = 0.5
    proj_hidden_dim: int = 512
    proj_dim: int = 128

    label = "SimCLR"


def self_mask(n_rows: int, columns: int, offset: int, device: torch.device) -> torch.Tensor:
    """[n_rows, columns], True where row i meets itself: column offset + i (the identity at offset 0)."""
    return torch.arange(columns, device=device) == (torch.arange(n_rows, device=device) + offset)[:, None]


class NTXentLoss(nn.Module):
    """Mean over the 2B anchors of −log(exp(s_pos/τ) / Σ_{k≠i} exp(s_ik/τ)), Z = [z1; z2] unit rows;
    the denominator holds the positive and the 2B − 2 negatives.

    Under DDP, B is the global batch: each rank's anchors are its own rows, against the rows of every
    rank as negatives (distributed.gather_rows); the mean over ranks is the global loss."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z = torch.cat([z1, z2]).float()
        (columns,), offset = gather_rows(z)
        sim = z @ columns.T / self.temperature
        sim = sim.masked_fill(self_mask(len(z), len(columns), offset, z.device), float("-inf"))
        pos = (z1.float() * z2.float()).sum(-1) / self.temperature
        return (torch.logsumexp(sim, dim=1) - pos.repeat(2)).mean()


class SimCLR(Method):
    kind = "simclr"
    Config = SimCLRConfig
    augmentation_defaults = SMALLDATA_AUGMENTATION

    @classmethod
    def build(cls, cfg: SimCLRConfig, backbone_spec: dict, n_views: int) -> "SimCLR":
        model = two_view_model(cfg, backbone_spec,
                               lambda d: NormalizedProjector(d, cfg.proj_hidden_dim, cfg.proj_dim))
        return cls(cfg, model, cls.criterion_for(cfg))

    @staticmethod
    def criterion_for(cfg: SimCLRConfig) -> nn.Module:
        return NTXentLoss(cfg.temperature)

    def loss(self, model, views, it, sched):
        z1, z2 = model(views[:2])
        return self.criterion(z1, z2), {}
