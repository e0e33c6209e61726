"""The paper's "SSL + LL" arm: a linear classifier trained on images through the frozen SSL backbone.

As sparsam's `--trainings_mode linear` (docs/papers.md#linear-layer-arm): of the whole network only the parameters
whose dotted name has a component ``head`` or ``norm`` train -- a new linear head and the backbone's
final LayerNorm -- with the DL baseline's loop (`medssl.evaluate.supervised.train_model`: AdamW lr 1e-4,
wd 0.05, class-weighted cross-entropy on the DINO multi-crop views with labels repeated per view,
early stopping on 30 % of the budget). Unlike the original, whose backbone was a fresh ImageNet
model (docs/differences.md#sparsam-code), the backbone carries the SSL method's weights, and it runs in eval mode (a
frozen backbone keeps its BatchNorm statistics; the original's train mode updated them).

The fast alternative on stored embeddings is the classifier `medssl.evaluate.estimators.LinearProbe`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from medssl.settings import LinearLayerConfig

log = logging.getLogger(__name__)

CLASSIFIER = "linear_layer"  # the arm's name in results/fits/ and metrics.csv
TRAINABLE = ("head", "norm")


def frozen_backbone_classifier(backbone_spec: Mapping[str, Any], weights: str | Path | None,
                               n_classes: int) -> torch.nn.Module:
    """The backbone (``weights`` loaded strictly) with a new ``n_classes`` linear head; every
    parameter frozen except those with a dotted-name component in ``TRAINABLE``."""
    from medssl.backbone import load_backbone

    model = load_backbone(dict(backbone_spec), Path(weights) if weights else None)
    model.reset_classifier(n_classes)
    names = []
    for name, param in model.named_parameters():
        param.requires_grad = bool(set(name.split(".")) & set(TRAINABLE))
        if param.requires_grad:
            names.append(name)
    if not any(n.split(".")[0] != "head" for n in names):
        log.warning("%s has no parameter named 'norm': only the linear head trains", backbone_spec["name"])
    log.info("trainable: %s (%d parameters)", names,
             sum(p.numel() for p in model.parameters() if p.requires_grad))
    return model


def settings_for_method(settings: LinearLayerConfig, augmentation: Mapping[str, Any],
                        kind: str | None = None) -> LinearLayerConfig:
    """The arm's training settings for one method: ``multicrop`` and ``normalize``, where unset, those the
    method's backbone was pretrained with (:func:`medssl.ssl.kinds.pretraining_views`)."""
    from medssl.ssl.kinds import pretraining_normalize, pretraining_views

    views = pretraining_views(kind, augmentation)
    multicrop = views if settings.multicrop is None else settings.multicrop
    normalize = pretraining_normalize(views) if settings.normalize is None else settings.normalize
    return dataclasses.replace(settings, multicrop=multicrop, normalize=normalize)
