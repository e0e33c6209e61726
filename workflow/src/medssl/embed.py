"""Frozen-backbone embeddings: one .npz per dataset x method x split with the features,
the image ids and the labels, so every downstream fit can be traced to its inputs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from medssl.augment import normalize
from medssl.data.dataset import ImageDataset
from medssl.evaluate.budgets import Embeddings
from medssl.runtime import MixedPrecision, resolve_device

log = logging.getLogger(__name__)


@torch.inference_mode()
def extract_features(backbone: torch.nn.Module, dataset: torch.utils.data.Dataset,
                     normalize_mode: str | Callable[[torch.Tensor], torch.Tensor],
                     batch_size: int = 256, device: torch.device | None = None,
                     num_workers: int = 0, precision: str = "auto") -> np.ndarray:
    """Pooled features (for ViT/XCiT the CLS token after the final norm) without augmentation.
    ``normalize_mode``: a mode of `medssl.augment.normalize`, or a callable on the uint8 batch (a
    pretrained model's own mean / std: `medssl.download.pretrained.preprocessing`).
    ``precision``: autocast of `medssl.runtime.MixedPrecision` (fp16 = the paper's)."""
    device = device or resolve_device("auto", "embedding device", "extracting embeddings")
    backbone = backbone.to(device).eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, pin_memory=device.type == "cuda")
    chunks = []
    amp = MixedPrecision(precision, device, "evaluation.embedding_precision", log)
    transform = normalize_mode if callable(normalize_mode) else lambda x: normalize(x, normalize_mode)
    for images, _ in loader:
        with amp.autocast():
            feats = backbone(transform(images.to(device, non_blocking=True)))
        chunks.append(feats.float().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)


def embed_split(backbone: torch.nn.Module, split: pd.DataFrame, root: str | Path, classes: Sequence[str],
                image_size: int, channels: int, normalize_mode: str | Callable, resample=None,
                **kwargs) -> Embeddings:
    """``resample``: the PIL interpolation of the resize to ``image_size`` (default bilinear)."""
    extra = {} if resample is None else {"resample": resample}
    dataset = ImageDataset(split["image"].tolist(), Path(root), image_size,
                           labels=split["label"].tolist(), class_names=list(classes), channels=channels, **extra)
    features = extract_features(backbone, dataset, normalize_mode, **kwargs)
    labels = np.asarray([list(classes).index(label) for label in split["label"]], dtype=np.int64)
    return Embeddings(features.astype(np.float32), np.asarray(split["image"], dtype=str), labels, list(classes))

