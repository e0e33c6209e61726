"""Batched multi-crop augmentation for DINO pretraining.

Applies to a whole batch of uint8 images ``[B, C, H, W]`` at once, on whatever device the
batch lives on. Every random number comes from one explicit CPU ``torch.Generator``: the
parameters of a view are drawn with it on the CPU as one ``[B, 25]`` uniform block (the same
number of draws whatever the configuration), then moved to the images' device, so a seed gives
the same views on CPU and GPU up to float error.

Per view, in this fixed order (the order of the DINO / sparsam ``Compose``):

1. **Geometry, one resampling.** Perspective and rotation, random-resized-crop, horizontal and
   vertical flip are composed into one per-sample map from output pixel to input coordinates
   and applied with a single ``F.grid_sample(bilinear, align_corners=False)``. The order is a
   key, ``geometry_order``:

   * ``"image_first"`` (default; sparsam's ``Compose``: ``RandomPerspective`` ->
     ``RandomRotation`` -> ``RandomResizedCrop`` -> flips): perspective, then rotation, act on
     the whole image (zero fill where they leave it, as torchvision's fill 0), the crop box is
     then drawn in the transformed image, the flips act on the resized crop. The zero-filled
     share of a view is what the crop happens to catch of the transformed image's empty corners
     (white image, paper settings: about 7 % of a local and 16-24 % of a global view).
   * ``"crop_first"``: crop, then flips, rotation and perspective
     inside the resized crop, zero filled there; every rotated view loses its corners (about
     28 % of a local and 29-37 % of a global view in the same measurement).

   * Crop: area fraction ``U(scale)``, aspect ratio log-uniform in ``ratio`` (as torchvision
     ``RandomResizedCrop``). Differences: torchvision retries up to 10 times and falls back to a
     centre crop when the box does not fit; here the side lengths are clamped to the image (so
     the area can come out smaller than drawn for extreme ratios) and position/size are
     continuous rather than integer pixels. The resize is bilinear *without* antialiasing
     (torchvision's PIL/antialias path low-pass filters when shrinking a crop).
   * Flips: as ``RandomHorizontalFlip`` / ``RandomVerticalFlip``, applied after the resize.
   * Rotation: angle ``U[-d, d]`` degrees, counter-clockwise positive like torchvision
     ``rotate``, about the image centre (``image_first``, in pixel units, so non-square images
     rotate rigidly) or the centre of the resized crop (``crop_first``), zero fill (sparsam's
     ``RandomRotation``, fill 0). Zero fill is a coverage mask (the bilinear weight of the
     image's own pixels, as if it were zero padded; for ``crop_first`` those of the resized
     crop); the image itself is sampled with ``padding_mode="border"`` so a crop that touches
     the image edge behaves like ``F.interpolate`` (edge clamping) instead of darkening its
     border. torchvision's ``RandomRotation`` defaults to nearest interpolation; here it is
     bilinear.
   * Perspective (sparsam ``RandomPerspective``): each output corner (of the image, or of the
     crop with ``crop_first``) is displaced inwards by ``U[0, distortion]`` of the half-size in
     x and y (torchvision draws integer pixels), the 3x3 homography output -> input is solved
     per sample (batched ``torch.linalg.solve``, float64), zero fill as for rotation. Applied
     with probability ``perspective_p`` per view kind (global 1, global 2, locals).

2. **Colour jitter**, with probability ``jitter_p`` as one block (DINO/sparsam
   ``RandomApply([ColorJitter], p)``): brightness factor ``U[max(0,1-b), 1+b]`` (scale),
   contrast ``U[max(0,1-c), 1+c]`` (blend with the per-image mean of the grey image),
   saturation ``U[max(0,1-s), 1+s]`` (blend with the grey image), hue shift ``U[-h, h]``
   (batched RGB -> HSV -> RGB, same result as torchvision's tensor ``adjust_hue`` to ~1e-6; not a
   YIQ rotation), each clamped to
   [0, 1] like torchvision. Difference: torchvision ``ColorJitter`` applies the four ops in a
   random order per call; here the order is fixed: brightness, contrast, saturation, hue.
3. **Grayscale** with probability ``grayscale_p``: ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B,
   three channels kept (``RandomGrayscale``).
4. **Gaussian blur** with probability ``blur_p`` per view kind, sigma ``U(blur_sigma)`` per
   sample, separable with reflect padding, same weights as torchvision ``GaussianBlur``
   (sparsam used kernel 11); views up to 64 px apply it as two batched matmuls with the
   reflect-padded 1-D blur folded into a per-sample [S, S] matrix, larger views as two depthwise
   convolutions with per-sample kernels. With ``blur_kernel == 0`` the kernel is
   ``2 * ceil(3 * sigma_max) + 1`` (DINO used PIL's ``GaussianBlur(radius=sigma)``, whose
   support is not truncated the same way). The kernel is capped so the padding stays smaller
   than the view. ``blur_reference_size`` N > 0 gives sigma and kernel for an N-px view and scales
   both to each view's size (``size / N``), so a 224-px recipe blurs a 32-px view to the same share
   of the view; 0 (default) takes them in pixels of every view, as torchvision.
5. **Solarize** with probability ``solarize_p`` per view kind: ``x -> 1 - x`` where
   ``x >= 0.5`` (PIL ``solarize`` threshold 128 on uint8, DINO global view 2).
6. **Normalise**: ``"imagenet"`` (torchvision ``Normalize`` with ImageNet mean/std, DINO) or
   ``"minus_one_one"`` (``x * 2 - 1``, the paper's code).

One-channel input is treated as grey: saturation, hue and grayscale are no-ops, brightness and
contrast act on the single channel; ImageNet normalisation then uses the mean of the three
channel means/stds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "MultiCropConfig",
    "MultiCropAugment",
    "PAPER_PRESET",
    "DINO_PRESET",
    "normalize",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_GREY_WEIGHTS = (0.299, 0.587, 0.114)
_NORMALIZE_MODES = ("imagenet", "minus_one_one")
_GEOMETRY_ORDERS = ("image_first", "crop_first")

# Column layout of the per-view uniform draw block [B, _N_DRAWS].
_C_SCALE, _C_RATIO, _C_X, _C_Y = 0, 1, 2, 3
_C_HFLIP, _C_VFLIP, _C_ANGLE = 4, 5, 6
_C_PERSP = 7  # 8..15: corner displacements
_C_JITTER, _C_B, _C_C, _C_S, _C_H = 16, 17, 18, 19, 20
_C_GRAY, _C_BLUR, _C_SIGMA, _C_SOLAR = 21, 22, 23, 24
_N_DRAWS = 25


@dataclass(frozen=True)
class MultiCropConfig:
    global_size: int = 224
    local_size: int = 96
    n_global: int = 2
    n_local: int = 8
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_p: float = 0.5
    vflip_p: float = 0.0
    rotation_degrees: float = 0.0
    perspective_distortion: float = 0.0
    perspective_p: tuple[float, float, float] = (0.0, 0.0, 0.0)
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 0
    # 0: blur_sigma (and blur_kernel) in pixels of every view; N > 0: given for a view of N px and scaled to
    # each view's size, so a recipe written for 224-px views blurs a 32-px view as much relative to its size
    blur_reference_size: int = 0
    solarize_p: tuple[float, float, float] = (0.0, 0.2, 0.0)
    normalize: str = "imagenet"
    geometry_order: str = "image_first"

    def __post_init__(self) -> None:
        tuple_lengths = {
            "global_scale": 2, "local_scale": 2, "ratio": 2, "blur_sigma": 2,
            "perspective_p": 3, "blur_p": 3, "solarize_p": 3,
        }
        for name, n in tuple_lengths.items():
            value = getattr(self, name)
            try:
                value = tuple(float(v) for v in value)
            except TypeError as exc:
                raise ValueError(f"{name} must be a sequence of {n} numbers, got {value!r}") from exc
            if len(value) != n:
                raise ValueError(f"{name} must have {n} values, got {len(value)}")
            object.__setattr__(self, name, value)
        if self.n_global != 2:
            raise ValueError(f"n_global must be 2 (DINO compares the two global views), got {self.n_global}")
        if self.n_local < 0:
            raise ValueError(f"n_local must be >= 0, got {self.n_local}")
        for name in ("global_size", "local_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("global_scale", "local_scale"):
            lo, hi = getattr(self, name)
            if not (0.0 < lo <= hi <= 1.0):
                raise ValueError(f"{name} must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")
        lo, hi = self.ratio
        if not (0.0 < lo <= hi):
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {(lo, hi)}")
        probs = [("hflip_p", self.hflip_p), ("vflip_p", self.vflip_p), ("jitter_p", self.jitter_p),
                 ("grayscale_p", self.grayscale_p)]
        probs += [(f"perspective_p[{i}]", p) for i, p in enumerate(self.perspective_p)]
        probs += [(f"blur_p[{i}]", p) for i, p in enumerate(self.blur_p)]
        probs += [(f"solarize_p[{i}]", p) for i, p in enumerate(self.solarize_p)]
        for name, p in probs:
            if not (0.0 <= p <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        for name in ("rotation_degrees", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (0.0 <= self.hue <= 0.5):
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        if not (0.0 <= self.perspective_distortion <= 1.0):
            raise ValueError(f"perspective_distortion must be in [0, 1], got {self.perspective_distortion}")
        lo, hi = self.blur_sigma
        if not (0.0 < lo <= hi):
            raise ValueError(f"blur_sigma must satisfy 0 < lo <= hi, got {(lo, hi)}")
        if self.blur_kernel < 0 or (self.blur_kernel > 0 and self.blur_kernel % 2 == 0):
            raise ValueError(f"blur_kernel must be 0 (derived) or a positive odd integer, got {self.blur_kernel}")
        if self.blur_reference_size < 0:
            raise ValueError(f"blur_reference_size must be 0 (sigma in view pixels) or a view size in px, "
                             f"got {self.blur_reference_size}")
        if self.normalize not in _NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {self.normalize!r}")
        if self.geometry_order not in _GEOMETRY_ORDERS:
            raise ValueError(f"geometry_order must be one of {_GEOMETRY_ORDERS}, got {self.geometry_order!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "MultiCropConfig":
        """Build from a plain mapping (e.g. YAML); lists become tuples, unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ValueError(f"unknown MultiCropConfig key(s): {', '.join(map(str, unknown))}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kwargs)


PAPER_PRESET: dict = {
    "global_size": 256,
    "local_size": 96,
    "n_global": 2,
    "n_local": 5,
    "global_scale": (0.5, 1.0),
    "local_scale": (0.1, 0.5),
    "ratio": (3 / 4, 4 / 3),
    "hflip_p": 0.5,
    "vflip_p": 0.5,
    "rotation_degrees": 180.0,
    "perspective_distortion": 0.5,
    "perspective_p": (0.75, 0.5, 0.5),
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": (1.0, 0.1, 0.5),
    "blur_sigma": (0.1, 5.0),
    "blur_kernel": 11,
    "solarize_p": (0.0, 0.2, 0.0),
    "normalize": "minus_one_one",
    "geometry_order": "image_first",
}

DINO_PRESET: dict = {
    "global_size": 224,
    "local_size": 96,
    "n_global": 2,
    "n_local": 8,
    "global_scale": (0.4, 1.0),
    "local_scale": (0.05, 0.4),
    "ratio": (3 / 4, 4 / 3),
    "hflip_p": 0.5,
    "vflip_p": 0.0,
    "rotation_degrees": 0.0,
    "perspective_distortion": 0.0,
    "perspective_p": (0.0, 0.0, 0.0),
    "jitter_p": 0.8,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "grayscale_p": 0.2,
    "blur_p": (1.0, 0.1, 0.5),
    "blur_sigma": (0.1, 2.0),
    "blur_kernel": 0,
    "solarize_p": (0.0, 0.2, 0.0),
    "normalize": "imagenet",
    "geometry_order": "image_first",
}


# --------------------------------------------------------------------------- normalisation
def _to_unit_float(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"images must be uint8 (or float in [0, 1]), got {images.dtype}")


def _normalize_unit_(x: torch.Tensor, mode: str) -> torch.Tensor:
    """In-place normalisation of float images in [0, 1] (``[..., C, H, W]``)."""
    if mode == "minus_one_one":
        return x.mul_(2.0).sub_(1.0)
    if mode == "imagenet":
        c = x.shape[-3]
        if c == 3:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        elif c == 1:
            mean, std = (sum(IMAGENET_MEAN) / 3,), (sum(IMAGENET_STD) / 3,)
        else:
            raise ValueError(f"imagenet normalisation needs 1 or 3 channels, got {c}")
        m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(c, 1, 1)
        s = torch.tensor(std, dtype=x.dtype, device=x.device).view(c, 1, 1)
        return x.sub_(m).div_(s)
    raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {mode!r}")


def normalize(images_uint8: torch.Tensor, mode: str) -> torch.Tensor:
    """Evaluation transform (no augmentation): uint8 ``[..., C, H, W]`` -> normalised float32."""
    x = _to_unit_float(images_uint8)
    if x.data_ptr() == images_uint8.data_ptr():  # float32 input: do not normalise the caller's tensor
        x = x.clone()
    return _normalize_unit_(x, mode)


# --------------------------------------------------------------------------- geometry
def _crop_boxes(u: torch.Tensor, height: int, width: int, scale, ratio) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-resized-crop boxes from uniform draws ``u[:, 0:4]``.

    Returns centre ``[B, 2]`` and half-size ``[B, 2]`` (x, y) in normalised input coordinates
    (``align_corners=False``: the image spans [-1, 1] edge to edge).
    """
    area = float(height * width) * (scale[0] + (scale[1] - scale[0]) * u[:, _C_SCALE])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(log_lo + (log_hi - log_lo) * u[:, _C_RATIO])
    w = torch.sqrt(area * r).clamp(max=float(width))
    h = torch.sqrt(area / r).clamp(max=float(height))
    x0 = u[:, _C_X] * (width - w)
    y0 = u[:, _C_Y] * (height - h)
    center = torch.stack([2.0 * (x0 + 0.5 * w) / width - 1.0, 2.0 * (y0 + 0.5 * h) / height - 1.0], dim=1)
    half = torch.stack([w / width, h / height], dim=1)
    return center, half


def _homographies(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """Per-sample 3x3 homographies mapping ``dst`` corners to ``src`` corners (``[B, 4, 2]``)."""
    b = dst.shape[0]
    x, y = dst[..., 0], dst[..., 1]
    X, Y = src[..., 0], src[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_x = torch.stack([x, y, ones, zeros, zeros, zeros, -x * X, -y * X], dim=-1)
    rows_y = torch.stack([zeros, zeros, zeros, x, y, ones, -x * Y, -y * Y], dim=-1)
    a = torch.cat([rows_x, rows_y], dim=1)  # [B, 8, 8]
    rhs = torch.cat([X, Y], dim=1)  # [B, 8]
    h = torch.linalg.solve(a, rhs)
    return torch.cat([h, torch.ones(b, 1, dtype=h.dtype)], dim=1).view(b, 3, 3)


def _perspective_maps(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float) -> torch.Tensor | None:
    """Per-sample homographies output -> input (normalised, float64) of ``RandomPerspective``;
    identity where the view's draw skips it; None when no sample of the batch applies it."""
    if not (cfg.perspective_distortion > 0 and persp_p > 0):
        return None
    apply = (u[:, _C_PERSP] < persp_p).to(torch.float64)
    if not bool(apply.any()):
        return None
    b = u.shape[0]
    start = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    inward = -start  # direction towards the centre
    disp = cfg.perspective_distortion * u[:, 8:16].to(torch.float64).view(b, 4, 2) * apply.view(b, 1, 1)
    end = start + inward * disp
    return _homographies(end, start.expand(b, 4, 2))


def _rotation_angles(u: torch.Tensor, cfg: MultiCropConfig) -> torch.Tensor:
    return torch.deg2rad((2.0 * u[:, _C_ANGLE].to(torch.float64) - 1.0) * cfg.rotation_degrees)


def _flip_maps(u: torch.Tensor, cfg: MultiCropConfig) -> torch.Tensor:
    sx = 1.0 - 2.0 * (u[:, _C_HFLIP] < cfg.hflip_p).to(torch.float64)
    sy = 1.0 - 2.0 * (u[:, _C_VFLIP] < cfg.vflip_p).to(torch.float64)
    return torch.diag_embed(torch.stack([sx, sy, torch.ones_like(sx)], dim=1))


def _crop_space_maps(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float) -> tuple[torch.Tensor, bool]:
    """``crop_first``: 3x3 maps output (normalised) -> crop (normalised): perspective, then
    rotation, then flips. Returns the maps (float32, CPU) and whether any of them is projective.
    """
    b = u.shape[0]
    m = _perspective_maps(u, cfg, persp_p)
    projective = m is not None
    if m is None:
        m = torch.eye(3, dtype=torch.float64).repeat(b, 1, 1)
    if cfg.rotation_degrees > 0:
        m = _rotation_matrices(_rotation_angles(u, cfg)) @ m
    return (m @ _flip_maps(u, cfg)).to(torch.float32), projective


def _image_space_maps(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float, height: int,
                      width: int) -> tuple[torch.Tensor | None, bool]:
    """``image_first``: 3x3 maps from the perspective-then-rotated image to the source image
    (normalised coordinates, float32, CPU), or None when neither transform is on."""
    m = _perspective_maps(u, cfg, persp_p)
    projective = m is not None
    if cfg.rotation_degrees > 0:
        # rotate in pixel units about the centre: normalised -> half-pixel units -> rotate -> back
        to_px = torch.diag(torch.tensor([width / 2.0, height / 2.0, 1.0], dtype=torch.float64))
        to_norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height, 1.0], dtype=torch.float64))
        rot = to_norm @ _rotation_matrices(_rotation_angles(u, cfg)) @ to_px
        m = rot if m is None else m @ rot  # rotation is the outer (later) transform: applied first here
    return (None if m is None else m.to(torch.float32)), projective


def _rotation_matrices(angle_rad: torch.Tensor) -> torch.Tensor:
    """Output -> source maps of a counter-clockwise rotation (torchvision ``rotate`` sign, y down)."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    zeros, ones = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, zeros, s, c, zeros, zeros, zeros, ones], dim=-1).view(-1, 3, 3)


_BASE_GRIDS: dict = {}


def _base_grid(size: int, device: torch.device) -> torch.Tensor:
    key = (size, str(device))
    grid = _BASE_GRIDS.get(key)
    if grid is None:
        lin = (torch.arange(size, dtype=torch.float32, device=device) * 2 + 1) / size - 1
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        grid = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).view(1, size * size, 3)
        _BASE_GRIDS[key] = grid
    return grid


def _coverage(q: torch.Tensor, size: int, size_y: int | None = None) -> torch.Tensor:
    """Bilinear weight of a zero-padded ``size`` x ``size_y`` (default square) image at normalised
    coordinates ``q`` [..., 2] (x, y)."""
    sizes = torch.tensor([float(size), float(size if size_y is None else size_y)], dtype=q.dtype, device=q.device)
    p = ((q + 1.0) * sizes - 1.0) * 0.5
    cov = torch.minimum(p + 1.0, sizes - p).clamp_(0.0, 1.0)
    return cov[..., 0] * cov[..., 1]


def resample(
    x: torch.Tensor,
    size: int,
    center: torch.Tensor,
    half: torch.Tensor,
    maps: torch.Tensor,
    projective: bool = False,
    fill_mask: bool = True,
    image_maps: torch.Tensor | None = None,
) -> torch.Tensor:
    """One bilinear resampling of float images ``x`` [B, C, H, W] to ``size`` x ``size``.

    ``maps`` [B, 3, 3] takes normalised output coordinates to normalised crop coordinates
    (flips, and with ``crop_first`` rotation/perspective), the crop box (``center``, ``half``
    [B, 2], normalised input coordinates) takes crop to image coordinates, and ``image_maps``
    [B, 3, 3] (``image_first``), if given, takes those through the inverse rotation/perspective
    of the whole image to source coordinates. With ``fill_mask`` points that fall outside the
    crop (``crop_first``) or the source image (``image_maps``) are zero (torchvision's fill=0).
    ``projective`` says whether ``maps`` or ``image_maps`` has a perspective part.
    """
    b, c, h, w = x.shape
    dev = x.device
    maps = maps.to(dev, torch.float32)
    center = center.to(dev, torch.float32)
    half = half.to(dev, torch.float32)
    if image_maps is not None:
        box = torch.zeros(b, 3, 3, device=dev)
        box[:, 0, 0], box[:, 1, 1], box[:, 2, 2] = half[:, 0], half[:, 1], 1.0
        box[:, :2, 2] = center
        full = image_maps.to(dev, torch.float32) @ box @ maps  # output -> source
        if projective:
            qh = _base_grid(size, dev) @ full.transpose(1, 2)  # [B, S*S, 3]
            grid = (qh[..., :2] / qh[..., 2:]).view(b, size, size, 2)
        else:
            grid = F.affine_grid(full[:, :2, :], [b, c, size, size], align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if fill_mask:
            out.mul_(_coverage(grid, w, h).unsqueeze(1))
        return out
    if not fill_mask and not projective:
        theta = maps[:, :2, :] * half.unsqueeze(-1)
        theta[:, :, 2] += center
        grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if projective:
        qh = _base_grid(size, dev) @ maps.transpose(1, 2)  # [B, S*S, 3]
        q = (qh[..., :2] / qh[..., 2:]).view(b, size, size, 2)
    else:
        q = F.affine_grid(maps[:, :2, :], [b, c, size, size], align_corners=False)
    mask = _coverage(q, size) if fill_mask else None
    grid = torch.addcmul(center.view(b, 1, 1, 2), q, half.view(b, 1, 1, 2))
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if mask is not None:
        out.mul_(mask.unsqueeze(1))
    return out


# --------------------------------------------------------------------------- colour
def _grey(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] ITU-R 601 luma; one channel passes through."""
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.add(r * _GREY_WEIGHTS[0], g, alpha=_GREY_WEIGHTS[1]).add_(b, alpha=_GREY_WEIGHTS[2])


def _adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_brightness``: ``clamp(f * x)``, per-sample ``f`` [N]."""
    return (x * f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def _adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_contrast``: blend with the mean of the grey image."""
    f = f.view(-1, 1, 1, 1)
    ch_mean = x.mean(dim=(2, 3), keepdim=True)  # mean of the grey image = grey of the channel means
    mean = _grey(ch_mean)
    return torch.lerp(mean, x, f).clamp_(0.0, 1.0)


def _adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision ``adjust_saturation``: blend with the grey image."""
    if x.shape[1] == 1:
        return x
    return torch.lerp(_grey(x), x, f.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def _adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
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


_REFLECT_INDEX: dict = {}


def _gaussian_kernels(sigma: torch.Tensor, kernel: int, dtype, device) -> torch.Tensor:
    r = kernel // 2
    t = torch.arange(-r, r + 1, dtype=dtype, device=device)
    k1 = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1)) ** 2)
    return k1 / k1.sum(dim=1, keepdim=True)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Per-sample separable Gaussian blur of square [N, C, S, S], reflect padding (torchvision GaussianBlur).

    Small views: the 1-D blur with reflect padding folded in is an [S, S] matrix per sample,
    applied as ``M @ x @ M^T`` (two batched matmuls). Larger views: reflect pad then two
    depthwise convolutions with per-sample kernels (groups = N * C).
    """
    n, c, h, w = x.shape
    kernel = min(kernel, 2 * (min(h, w) - 1) + 1)
    if kernel <= 1 or n == 0:
        return x
    r = kernel // 2
    k1 = _gaussian_kernels(sigma.to(x.device, x.dtype), kernel, x.dtype, x.device)  # [N, k]
    if h == w and h <= 64:
        key = (h, kernel, str(x.device))
        idx = _REFLECT_INDEX.get(key)
        if idx is None:
            idx = torch.arange(h, device=x.device).view(-1, 1) + torch.arange(-r, r + 1, device=x.device).view(1, -1)
            idx = torch.where(idx < 0, -idx, idx)
            idx = torch.where(idx > h - 1, 2 * (h - 1) - idx, idx)
            _REFLECT_INDEX[key] = idx
        m = torch.zeros(n, h, h, dtype=x.dtype, device=x.device)
        m.scatter_add_(2, idx.expand(n, h, kernel), k1.view(n, 1, kernel).expand(n, h, kernel))
        m = m.unsqueeze(1)
        return torch.matmul(torch.matmul(m, x), m.transpose(-1, -2))
    wts = k1.repeat_interleave(c, dim=0)  # [N*C, k]
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, wts.view(n * c, 1, kernel, 1), groups=n * c)
    y = F.conv2d(y, wts.view(n * c, 1, 1, kernel), groups=n * c)
    return y.view(n, c, h, w)


def _solarize(x: torch.Tensor) -> torch.Tensor:
    """PIL ``solarize(threshold=128)`` on [0, 1]: ``1 - x`` where ``x >= 0.5``, i.e. ``min(x, 1 - x)``."""
    return torch.minimum(x, 1.0 - x)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    return _grey(x).expand_as(x).contiguous()


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


# --------------------------------------------------------------------------- multi-crop
class MultiCropAugment:
    """DINO multi-crop views of a uint8 batch; see the module docstring for each op.

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
        x = _to_unit_float(images)
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

    def _view(self, x: torch.Tensor, g: torch.Generator, kind: int, size: int, scale) -> torch.Tensor:
        cfg = self.cfg
        b, c, h, w = x.shape
        u = torch.rand(b, _N_DRAWS, generator=g, dtype=torch.float32)

        # geometry parameters (CPU)
        center, half = _crop_boxes(u, h, w, scale, cfg.ratio)
        image_maps = None
        if cfg.geometry_order == "crop_first":
            maps, projective = _crop_space_maps(u, cfg, cfg.perspective_p[kind])
        else:
            maps = _flip_maps(u, cfg).to(torch.float32)
            image_maps, projective = _image_space_maps(u, cfg, cfg.perspective_p[kind], h, w)
        fill_mask = projective or cfg.rotation_degrees > 0

        # photometric parameters (CPU)
        def factor(col: int, amount: float) -> torch.Tensor:
            lo = max(0.0, 1.0 - amount)
            return lo + (1.0 + amount - lo) * u[:, col]

        jitter = u[:, _C_JITTER] < cfg.jitter_p
        ops = []  # (per-sample bool mask, fn, per-sample args)
        if cfg.brightness > 0:
            ops.append((jitter, _adjust_brightness, (factor(_C_B, cfg.brightness),)))
        if cfg.contrast > 0:
            ops.append((jitter, _adjust_contrast, (factor(_C_C, cfg.contrast),)))
        if c == 3 and cfg.saturation > 0:
            ops.append((jitter, _adjust_saturation, (factor(_C_S, cfg.saturation),)))
        if c == 3 and cfg.hue > 0:
            ops.append((jitter, _adjust_hue, ((2.0 * u[:, _C_H] - 1.0) * cfg.hue,)))
        if c == 3 and cfg.grayscale_p > 0:
            ops.append((u[:, _C_GRAY] < cfg.grayscale_p, _grayscale, ()))
        if cfg.blur_p[kind] > 0:
            lo, hi, kernel = self.blur_for(size)
            ops.append((u[:, _C_BLUR] < cfg.blur_p[kind], lambda y, s: _gaussian_blur(y, s, kernel),
                        (lo + (hi - lo) * u[:, _C_SIGMA],)))
        if cfg.solarize_p[kind] > 0:
            ops.append((u[:, _C_SOLAR] < cfg.solarize_p[kind], _solarize, ()))

        if x.device.type == "cpu":
            chunk = max(1, self.cpu_chunk_pixels // (size * size))
        else:
            chunk = b
        out = torch.empty(b, c, size, size, dtype=torch.float32, device=x.device) if chunk < b else None
        for i in range(0, b, chunk):
            j = min(b, i + chunk)
            y = resample(x[i:j], size, center[i:j], half[i:j], maps[i:j], projective=projective,
                         fill_mask=fill_mask, image_maps=None if image_maps is None else image_maps[i:j])
            for mask, fn, args in ops:
                y = _apply(y, mask[i:j], fn, *[a[i:j] for a in args])
            y = _normalize_unit_(y, cfg.normalize)
            if out is None:
                return y
            out[i:j] = y
        return out
