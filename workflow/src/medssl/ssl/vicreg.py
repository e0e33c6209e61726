"""VICReg (Bardes et al. 2022) with SmallDataSSL's projector 2048→4096 (BN, ReLU)→4096 and
λ = 25, μ = 25, ν = 1. The variance term is the official one (mean of the two branches);
SmallDataSSL's code sums the branches, i.e. the official formula with std_coeff (μ) = 50
(config/presets/smalldatassl_paper.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from medssl.ssl.base import Method
from medssl.ssl.config import SMALLDATA_AUGMENTATION, SmallDataConfig
from medssl.ssl.distributed import gather_rows
from medssl.ssl.heads import mlp, two_view_model


@dataclass
class VICRegConfig(SmallDataConfig):
    sim_coeff: float = 25.0  # λ, invariance
    std_coeff: float = 25.0  # μ, variance (50 = SmallDataSSL's un-halved term)
    cov_coeff: float = 1.0  # ν, covariance
    proj_hidden_dim: int = 4096
    proj_dim: int = 4096

    label = "VICReg"


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m.masked_select(~torch.eye(len(m), dtype=torch.bool, device=m.device))


class VICRegLoss(nn.Module):
    """λ·MSE(z1, z2) + μ·(v(z1) + v(z2))/2 + ν·(c(z1) + c(z2)), with v(z) = mean_d relu(1 − sqrt(Var_d z + 1e-4))
    (unbiased variance) and c(z) = Σ_{i≠j} C_ij² / D, C = z_cᵀ z_c / (N − 1). ``last_terms`` holds the
    three unweighted terms of the last call.

    Under DDP, N is the global batch: the variance and covariance are those of every rank's rows
    (distributed.gather_rows, the same value on every rank), the invariance is this rank's own rows'
    (per sample); the mean over ranks is the global loss."""

    def __init__(self, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0):
        super().__init__()
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z1, z2 = z1.float(), z2.float()
        invariance = F.mse_loss(z1, z2)
        (z1, z2), _ = gather_rows(z1, z2)
        n, d = z1.shape
        z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)
        variance = sum(F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() for z in (z1, z2)) / 2
        covariance = sum(_off_diagonal(z.T @ z / (n - 1)).pow(2).sum() / d for z in (z1, z2))
        self.last_terms = {"invariance": invariance.detach(), "variance": variance.detach(),
                           "covariance": covariance.detach()}
        return self.sim_coeff * invariance + self.std_coeff * variance + self.cov_coeff * covariance


class VICReg(Method):
    kind = "vicreg"
    Config = VICRegConfig
    augmentation_defaults = SMALLDATA_AUGMENTATION
    stat_names = ("invariance", "variance", "covariance")
    log_columns = stat_names

    @classmethod
    def build(cls, cfg: VICRegConfig, backbone_spec: dict, n_views: int) -> "VICReg":
        model = two_view_model(cfg, backbone_spec, lambda d: mlp(d, cfg.proj_hidden_dim, cfg.proj_dim))
        return cls(cfg, model, VICRegLoss(cfg.sim_coeff, cfg.std_coeff, cfg.cov_coeff))

    def loss(self, model, views, it, sched):
        z1, z2 = model(views[:2])
        return self.criterion(z1, z2), self.criterion.last_terms
