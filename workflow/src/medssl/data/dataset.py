"""The torch dataset of a split's images (:class:`ImageDataset`, :func:`load_all`): the only module of
:mod:`medssl.data` that imports torch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from medssl.data.errors import DatasetError
from medssl.data.images import load_image


class ImageDataset(torch.utils.data.Dataset):
    """Images as uint8 tensors ``[C, S, S]`` with label indices (-1 = unlabeled).

    No augmentation here.  If ``labels`` are given without ``class_names`` the
    classes are the sorted distinct non-empty labels.  Empty / missing labels
    map to -1; a label not in ``class_names`` raises :class:`DatasetError`.
    """

    def __init__(
        self,
        images: Sequence[str],
        root: Path,
        image_size: int,
        labels: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        channels: int = 3,
        resample: Image.Resampling = Image.Resampling.BILINEAR,
    ):
        self.images = [str(p) for p in images]
        self.resample = resample
        self.root = Path(root)
        self.image_size = int(image_size)
        self.channels = int(channels)
        if self.channels not in (1, 3):
            raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
        if labels is not None:
            labels = ["" if lab is None or (isinstance(lab, float) and math.isnan(lab)) else str(lab)
                      for lab in labels]
            if len(labels) != len(self.images):
                raise DatasetError(
                    f"ImageDataset: {len(self.images)} images but {len(labels)} labels"
                )
        if class_names is None:
            class_names = sorted({lab for lab in (labels or []) if lab})
        self.class_names = list(class_names)
        index = {c: k for k, c in enumerate(self.class_names)}
        if labels is None:
            self.targets = [-1] * len(self.images)
        else:
            unknown = sorted({lab for lab in labels if lab and lab not in index})
            if unknown:
                raise DatasetError(
                    f"ImageDataset: unknown label(s) {unknown} not in class_names {self.class_names}"
                )
            self.targets = [index[lab] if lab else -1 for lab in labels]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = load_image(self.root / self.images[i], self.image_size, self.channels, self.resample)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), self.targets[i]


def load_all(dataset: ImageDataset, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack a whole dataset: uint8 ``[N, C, S, S]`` and int64 labels ``[N]``."""
    n = len(dataset)
    if n == 0:
        s, c = dataset.image_size, dataset.channels
        return torch.empty((0, c, s, s), dtype=torch.uint8), torch.empty((0,), dtype=torch.int64)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=256, shuffle=False, num_workers=num_workers
    )
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)
