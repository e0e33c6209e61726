"""Photometric ops on float views in [0, 1] ``[N, C, S, S]``, with per-sample parameters.

* **Colour jitter**, with probability ``jitter_p`` as one block (DINO/sparsam
  ``RandomApply([ColorJitter], p)``): brightness factor ``U[max(0,1-b), 1+b]`` (scale), contrast
  ``U[max(0,1-c), 1+c]`` (blend with the per-image mean of the grey image), saturation
  ``U[max(0,1-s), 1+s]`` (blend with the grey image), hue shift ``U[-h, h]`` (batched RGB -> HSV -> RGB,
  same result as torchvision's tensor ``adjust_hue`` to ~1e-6; not a YIQ rotation), each clamped to [0, 1]
  like torchvision. Difference: torchvision ``ColorJitter`` applies the four ops in a random order per call;
  here the order is fixed: brightness, contrast, saturation, hue.
* **Grayscale** with probability ``grayscale_p``: ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B, three channels
  kept (``RandomGrayscale``).
* **Solarize** with probability ``solarize_p`` per view kind: ``x -> 1 - x`` where ``x >= 0.5`` (PIL
  ``solarize`` threshold 128 on uint8, DINO global view 2).
* **Normalise**: ``"imagenet"`` (torchvision ``Normalize`` with ImageNet mean/std, DINO; torchvision's own
  kernel) or ``"minus_one_one"`` (``x * 2 - 1``, the paper's code).

One-channel input is treated as grey: saturation, hue and grayscale are no-ops, brightness and contrast act on
the single channel; ImageNet normalisation then uses the mean of the three channel means/stds.

The ops written here are those the libraries do not give with per-sample parameters at the same speed and to
the same bit (a torchvision v2 op takes one parameter set per call, so per-sample draws need a loop over the
images). The comments give benchmarks/augment_ops.py's CPU ms per batch of views, demo / paper scale (batch
32: 2 x 32 px + 2 x 16 px views / batch 64: 2 x 224 px + 8 x 96 px), 1 thread on 2 shared, loaded AMD EPYC
cores; the table is in docs/performance.md#augmentation-ops.
"""

from __future__ import annotations

import torch

from medssl.augment.config import NORMALIZE_MODES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"images must be uint8 (or float in [0, 1]), got {images.dtype}")


def normalize_unit_(x: torch.Tensor, mode: str) -> torch.Tensor:
    """In-place normalisation of float images in [0, 1] (``[..., C, H, W]``)."""
    if mode == "minus_one_one":
        # torchvision v2 normalize(mean 0.5, std 0.5): the same bits, 0.22 / 20 ms against 0.12 / 15 ms here
        return x.mul_(2.0).sub_(1.0)
    if mode == "imagenet":
        # torchvision v2 normalize: the same bits as sub_(mean).div_(std), 0.23 / 20 ms against 0.22 / 19 ms;
        # imported here, not with the package (1.4 s unless timm has loaded torchvision already)
        from torchvision.transforms.v2.functional import normalize as tv_normalize

        c = x.shape[-3]
        if c == 3:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        elif c == 1:
            mean, std = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
        else:
            raise ValueError(f"imagenet normalisation needs 1 or 3 channels, got {c}")
        return tv_normalize(x, list(mean), list(std), inplace=True)
    raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")


def normalize(images_uint8: torch.Tensor, mode: str) -> torch.Tensor:
    """Evaluation transform (no augmentation): uint8 ``[..., C, H, W]`` -> normalised float32."""
    x = to_unit_float(images_uint8)
    if x.data_ptr() == images_uint8.data_ptr():  # float32 input: do not normalise the caller's tensor
        x = x.clone()
    return normalize_unit_(x, mode)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] ITU-R 601 luma; one channel passes through."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.add(r * GREY_WEIGHTS[0], g, alpha=GREY_WEIGHTS[1]).add_(b, alpha=GREY_WEIGHTS[2])


# torchvision v2 adjust_brightness per image: the same bits, 3.0 / 46 ms against 0.14 / 20 ms here; kornia's
# adjust_brightness_accumulative (per-sample factors): the same bits, 1.6x / 1.4x the time
def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_brightness``: ``clamp(f * x)``, per-sample ``f`` [N]."""
    return (x * f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


# torchvision v2 adjust_contrast per image: 8.8 / 87 ms against 0.54 / 53 ms here, values within 2e-5 (the mean
# of the grey image summed in another order); kornia's adjust_contrast_with_mean_subtraction: 1.5x / 1.2x
def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_contrast``: blend with the mean of the grey image."""
    f = f.view(-1, 1, 1, 1)
    ch_mean = x.mean(dim=(2, 3), keepdim=True)  # mean of the grey image = grey of the channel means
    mean = _grey(ch_mean)
    return torch.lerp(mean, x, f).clamp_(0.0, 1.0)


# torchvision v2 adjust_saturation per image: 6.8 / 77 ms against 0.35 / 35 ms here, values within 2e-5
# (f * x + (1 - f) * grey, R weight 0.2989); kornia's adjust_saturation_with_gray_subtraction: 2.2x / 1.9x
def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_saturation``: blend with the grey image."""
    if x.shape[1] == 1:
        return x
    return torch.lerp(_grey(x), x, f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


# torchvision v2 adjust_hue per image: 49 / 942 ms against 2.4 / 271 ms here, values within 2e-6; kornia's
# adjust_hue (per-sample shifts): 3.3x / 3.4x
def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_hue`` (RGB -> HSV, hue + shift mod 1, HSV -> RGB), per-sample shift [N].

    Written without materialising S and V: with ``d = max - min`` (= v * s), torchvision's
    HSV -> RGB gives channel n (5, 3, 1 for R, G, B) as ``v - d * clamp(min(k, 4 - k), 0, 1)``
    with ``k = (n + 6 h) mod 6``, i.e. ``min + d * clamp(|k - 2| - 1, 0, 1)``.
    """
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    d = maxc - minc
    # hue in sextants (6 h) before the mod, with torchvision's tie order (R, then G, then B)
    num = torch.where(
        maxc == r,
        g - b,
        torch.where(maxc == g, torch.add(b - r, d, alpha=2.0), torch.add(r - g, d, alpha=4.0)),
    )
    h6 = torch.addcmul((6.0 * shift).view(-1, 1, 1), num, d.clamp_min_(1e-12).reciprocal_())
    del num
    d = maxc.sub_(minc)  # recompute d (the clamped copy above was consumed)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(h6.unsqueeze(1) + n, 6.0)
    k.sub_(2.0).abs_().sub_(1.0).clamp_(0.0, 1.0)
    return k.mul_(d.unsqueeze(1)).add_(minc.unsqueeze(1))


# torchvision v2 solarize (one call for the batch): the same bits, 1.3 / 183 ms against 0.18 / 28 ms here
def solarize(x: torch.Tensor) -> torch.Tensor:
    """PIL ``solarize(threshold=128)`` on [0, 1]: ``1 - x`` where ``x >= 0.5``, i.e. ``min(x, 1 - x)``."""
    return torch.minimum(x, 1.0 - x)


# torchvision v2 rgb_to_grayscale (one call for the batch): 0.29 / 30 ms against 0.28 / 27 ms here, but with
# R weight 0.2989 (values differ by 1e-4); kornia's rgb_to_grayscale: the same bits, 1.6x / 1.3x
def grayscale(x: torch.Tensor) -> torch.Tensor:
    return _grey(x).expand_as(x).contiguous()

