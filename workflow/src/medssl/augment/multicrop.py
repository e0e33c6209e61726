"""The views of a batch: one block of uniform draws per view, then the ops of the package in order."""

from __future__ import annotations

import math

import torch

from medssl.augment.blur import gaussian_blur
from medssl.augment.colour import (adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, grayscale,
                                   normalize_unit_, solarize, to_unit_float)
from medssl.augment.config import (C_B, C_BLUR, C_C, C_GRAY, C_H, C_JITTER, C_S, C_SIGMA, C_SOLAR, N_DRAWS,
                                   MultiCropConfig)
from medssl.augment.geometry import view_geometry


def _apply(x: torch.Tensor, mask: torch.Tensor, fn, *args: torch.Tensor) -> torch.Tensor:
    """Apply ``fn(x[sel], *args[sel])`` to the samples where the CPU bool ``mask`` is set."""
    n = int(mask.sum())
    if n == 0:
        return x
    dev = x.device
    if n == mask.numel():
        return fn(x, *[a.to(dev, non_blocking=True) for a in args])
    idx = torch.nonzero(mask).flatten()
    idx_d = idx.to(dev, non_blocking=True)
    sub = fn(x.index_select(0, idx_d), *[a[idx].to(dev, non_blocking=True) for a in args])
    return x.index_copy_(0, idx_d, sub)


class MultiCropAugment:
    """DINO multi-crop views of a uint8 batch; see the package docstring (medssl.augment) for each op.

    On the CPU each view is processed in chunks of samples (about ``cpu_chunk_pixels`` output
    pixels per chunk) so that the chain of element-wise ops stays in cache; on other devices
    the whole batch is one chunk. Chunking does not change the result.
    """

    cpu_chunk_pixels = 1 << 17

    def __init__(self, cfg: MultiCropConfig):
        if not isinstance(cfg, MultiCropConfig):
            raise TypeError(f"cfg must be a MultiCropConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def blur_for(self, size: int) -> tuple[float, float, int]:
        """(sigma_lo, sigma_hi, kernel) of the blur of a ``size``-px view, in that view's pixels."""
        cfg = self.cfg
        f = size / cfg.blur_reference_size if cfg.blur_reference_size else 1.0
        lo, hi = cfg.blur_sigma[0] * f, cfg.blur_sigma[1] * f
        if cfg.blur_kernel > 0:
            kernel = max(1, round(cfg.blur_kernel * f)) | 1  # odd
        else:
            kernel = 2 * math.ceil(3.0 * hi) + 1
        return lo, hi, kernel

    @property
    def n_views(self) -> int:
        return self.cfg.n_global + self.cfg.n_local

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        if images.dim() != 4:
            raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {images.shape[1]}")
        x = to_unit_float(images)
        cfg = self.cfg
        views = []
        for v in range(self.n_views):
            kind = min(v, 2)  # 0: global 1, 1: global 2, 2: locals
            is_global = v < cfg.n_global
            views.append(self._view(
                x, generator, kind,
                size=cfg.global_size if is_global else cfg.local_size,
                scale=cfg.global_scale if is_global else cfg.local_scale,
            ))
        return views

    def photometric_ops(self, u: torch.Tensor, channels: int, kind: int, size: int) -> list:
        """The colour, blur and solarisation ops of a view from its draws ``u`` [B, N_DRAWS], in order:
        (per-sample CPU bool mask, fn, per-sample args); ``fn(y[mask], *args[mask])`` applies one."""
        cfg = self.cfg

        def factor(col: int, amount: float) -> torch.Tensor:
            lo = max(0.0, 1.0 - amount)
            return lo + (1.0 + amount - lo) * u[:, col]

        jitter = u[:, C_JITTER] < cfg.jitter_p
        ops = []
        if cfg.brightness > 0:
            ops.append((jitter, adjust_brightness, (factor(C_B, cfg.brightness),)))
        if cfg.contrast > 0:
            ops.append((jitter, adjust_contrast, (factor(C_C, cfg.contrast),)))
        if channels == 3 and cfg.saturation > 0:
            ops.append((jitter, adjust_saturation, (factor(C_S, cfg.saturation),)))
        if channels == 3 and cfg.hue > 0:
            ops.append((jitter, adjust_hue, ((2.0 * u[:, C_H] - 1.0) * cfg.hue,)))
        if channels == 3 and cfg.grayscale_p > 0:
            ops.append((u[:, C_GRAY] < cfg.grayscale_p, grayscale, ()))
        if cfg.blur_p[kind] > 0:
            lo, hi, kernel = self.blur_for(size)
            ops.append((u[:, C_BLUR] < cfg.blur_p[kind], lambda y, s: gaussian_blur(y, s, kernel),
                        (lo + (hi - lo) * u[:, C_SIGMA],)))
        if cfg.solarize_p[kind] > 0:
            ops.append((u[:, C_SOLAR] < cfg.solarize_p[kind], solarize, ()))
        return ops

    def _view(self, x: torch.Tensor, g: torch.Generator, kind: int, size: int, scale) -> torch.Tensor:
        cfg = self.cfg
        b, c, h, w = x.shape
        u = torch.rand(b, N_DRAWS, generator=g, dtype=torch.float32)
        geom = view_geometry(u, cfg, cfg.perspective_p[kind], scale, h, w)  # CPU
        ops = self.photometric_ops(u, c, kind, size)  # CPU

        if x.device.type == "cpu":
            chunk = max(1, self.cpu_chunk_pixels // (size * size))
        else:
            chunk = b
        out = torch.empty(b, c, size, size, dtype=torch.float32, device=x.device) if chunk < b else None
        for i in range(0, b, chunk):
            j = min(b, i + chunk)
            y = geom.rows(i, j).resample(x[i:j], size)
            for mask, fn, args in ops:
                y = _apply(y, mask[i:j], fn, *[a[i:j] for a in args])
            y = normalize_unit_(y, cfg.normalize)
            if out is None:
                return y
            out[i:j] = y
        return out
