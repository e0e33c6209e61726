"""The heads that several methods share, and the wrappers that run a backbone and head on a list of views."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from medssl.backbone import backbone_from_spec, feature_dim, pooled


class MultiCropWrapper(nn.Module):
    """Runs the backbone once per run of consecutive same-resolution crops, then the head once
    (DINO's ``utils.MultiCropWrapper``): the output is [sum of batch sizes, out_dim] in view order."""

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
            features.append(pooled(self.backbone(torch.cat(crops[start:end]))))
            start = end
        features = torch.cat(features)
        out = self.head(features)
        return (out, features) if return_features else out


class PerViewWrapper(nn.Module):
    """Backbone + head applied to each view in its own forward pass, as SmallDataSSL's
    ``z1 = model(x1); z2 = model(x2)`` (BatchNorm statistics are per view). One call of this module
    covers all views, so DistributedDataParallel sees a single forward per step.

    Returns a list with, per view, the head's output (a tensor or a tuple of tensors)."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> list:
        return [self.head(pooled(self.backbone(v))) for v in views]


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
