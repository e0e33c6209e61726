"""Backbones: any timm model by name, its feature width, and the weights a stage loads into it.

Shared by SSL pretraining, embedding, the baselines and the weight downloads."""

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


def pooled(out):
    """The pooled feature of a backbone's output (XCiT returns a tuple)."""
    return out[0] if isinstance(out, tuple) else out
