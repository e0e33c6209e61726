"""Backbones (any timm model) and the wrappers that run them on a list of views."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
import torch.nn as nn


def build_backbone(name: str, pretrained: bool = False, drop_path_rate: float = 0.0, **kwargs) -> nn.Module:
    """A timm model returning its pooled feature [B, D] (classifier removed with num_classes=0)."""
    if drop_path_rate > 0:  # not every timm model accepts the argument
        kwargs["drop_path_rate"] = drop_path_rate
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)


def feature_dim(backbone: nn.Module) -> int:
    """Width of ``backbone(x)``; timm's head_hidden_size differs from num_features only with pre-logits."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


def backbone_from_spec(spec: dict, drop_path_rate: float = 0.0, pretrained: bool | None = None) -> nn.Module:
    """``spec`` is the config's ``backbone`` entry: {name, pretrained, kwargs}."""
    if pretrained is None:
        pretrained = bool(spec.get("pretrained", False))
    return build_backbone(spec["name"], pretrained, drop_path_rate, **dict(spec.get("kwargs") or {}))


def load_backbone(backbone_spec: dict, weights: Path | None) -> nn.Module:
    """Backbone for embedding: ``weights`` (a backbone.pt state_dict) loaded strictly, or the spec's init."""
    if weights is None:
        return backbone_from_spec(backbone_spec)
    backbone = backbone_from_spec(backbone_spec, pretrained=False)
    backbone.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return backbone


def _pooled(out):
    return out[0] if isinstance(out, tuple) else out  # XCiT returns a tuple


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
            features.append(_pooled(self.backbone(torch.cat(crops[start:end]))))
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
        return [self.head(_pooled(self.backbone(v))) for v in views]
