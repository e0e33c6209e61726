"""Weighted decoupled contrastive learning (DCLW, Yeh et al. 2022) as SmallDataSSL's code: τ = 0.1,
σ = 0.5, the SimCLR projector, weights not detached, z1 as the only anchor
(docs/papers.md#smalldatassl-losses).
``symmetric: true`` is the DCL authors' trainer: l(z1, z2) + l(z2, z1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from medssl.ssl.distributed import gather_rows
from medssl.ssl.simclr import SimCLR, SimCLRConfig, self_mask

_MASK = math.log(1e-45)  # the DCL code's additive mask of the j = i entries


@dataclass
class DCLWConfig(SimCLRConfig):
    temperature: float = 0.1
    sigma: float = 0.5
    symmetric: bool = False

    label = "DCLW"


class DCLWLoss(nn.Module):
    """mean_i [ −w_i·⟨z1_i, z2_i⟩/τ + logsumexp_{j≠i}([⟨z1_i, z1_j⟩/τ, ⟨z1_i, z2_j⟩/τ]) ],
    w_i = 2 − B·softmax_i(⟨z1_i, z2_i⟩/σ) over the batch; the positive is not in the denominator.

    Under DDP, B is the global batch: each rank's anchors are its own rows, the j its rows and every
    other rank's, the softmax of w runs over the global batch; the mean over ranks is the global loss."""

    def __init__(self, temperature: float = 0.1, sigma: float = 0.5, symmetric: bool = False):
        super().__init__()
        self.temperature, self.sigma, self.symmetric = temperature, sigma, symmetric

    def one_direction(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1, z2 = z1.float(), z2.float()
        (all1, all2), offset = gather_rows(z1, z2)
        b, n = len(z1), len(all1)
        cross = z1 @ all2.T
        pos = cross.diagonal(offset)
        (all_pos,), _ = gather_rows(pos)
        weight = (2 - n * torch.softmax(all_pos / self.sigma, dim=0))[offset:offset + b]
        mask = self_mask(b, n, offset, z1.device).float() * _MASK
        neg = torch.cat([z1 @ all1.T / self.temperature + mask, cross / self.temperature + mask], dim=1)
        return (-weight * pos / self.temperature + torch.logsumexp(neg, dim=1)).mean()

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        loss = self.one_direction(z1, z2)
        return loss + self.one_direction(z2, z1) if self.symmetric else loss


class DCLW(SimCLR):
    """SimCLR's networks and views with the DCLW loss."""

    kind = "dclw"
    Config = DCLWConfig

    @staticmethod
    def criterion_for(cfg: DCLWConfig) -> nn.Module:
        return DCLWLoss(cfg.temperature, cfg.sigma, cfg.symmetric)
