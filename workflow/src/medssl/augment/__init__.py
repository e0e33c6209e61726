"""Batched multi-crop augmentation for DINO and the two-view methods.

Applies to a whole batch of uint8 images ``[B, C, H, W]`` at once, on whatever device the
batch lives on. Every random number comes from one explicit CPU ``torch.Generator``: the
parameters of a view are drawn with it on the CPU as one ``[B, 25]`` uniform block (the same
number of draws whatever the configuration; columns in config.py), then moved to the images'
device, so a seed gives the same views on CPU and GPU up to float error.

Per view, in this fixed order (the order of the DINO / sparsam ``Compose``); each module's
docstring says how its ops follow torchvision and where they differ:

1. **Geometry, one resampling** (geometry.py): perspective, rotation, random-resized-crop and
   flips composed into one per-sample map, in the order ``geometry_order`` names.
2. **Colour jitter**, 3. **grayscale** (colour.py).
4. **Gaussian blur** with a per-sample sigma (blur.py).
5. **Solarize**, 6. **normalise** (colour.py).

multicrop.py draws the parameters and runs the chain; config.py holds the keys, their checks
and the DINO / paper presets. benchmarks/augment_ops.py times each op against torchvision's and
kornia's, with the same parameters.
"""

from medssl.augment.colour import IMAGENET_MEAN, IMAGENET_STD, normalize
from medssl.augment.config import DINO_PRESET, PAPER_PRESET, MultiCropConfig
from medssl.augment.multicrop import MultiCropAugment

__all__ = [
    "MultiCropConfig",
    "MultiCropAugment",
    "PAPER_PRESET",
    "DINO_PRESET",
    "normalize",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]
