"""The heads that several methods share, and the two-view model they sit on."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medssl.ssl.backbone import PerViewWrapper, backbone_from_spec, feature_dim


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear → BatchNorm → ReLU → Linear, the head shape every SmallDataSSL projector has."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, out_dim))


class NormalizedProjector(nn.Module):
    """SmallDataSSL's SimCLR/DCLW projector; the output is L2-normalised."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)


def two_view_model(cfg, backbone_spec: dict, head_fn) -> PerViewWrapper:
    """The backbone (with the config's drop-path) and ``head_fn(feature width)``, run once per view."""
    backbone = backbone_from_spec(backbone_spec, cfg.drop_path_rate)
    return PerViewWrapper(backbone, head_fn(feature_dim(backbone)))
