"""Geometry of a view, one resampling.

Perspective and rotation, random-resized-crop, horizontal and
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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from medssl.augment.config import C_ANGLE, C_HFLIP, C_PERSP, C_RATIO, C_SCALE, C_VFLIP, C_X, C_Y, MultiCropConfig


def crop_boxes(u: torch.Tensor, height: int, width: int, scale, ratio) -> tuple[torch.Tensor, torch.Tensor]:
    """Random-resized-crop boxes from uniform draws ``u[:, 0:4]``.

    Returns centre ``[B, 2]`` and half-size ``[B, 2]`` (x, y) in normalised input coordinates
    (``align_corners=False``: the image spans [-1, 1] edge to edge).
    """
    area = float(height * width) * (scale[0] + (scale[1] - scale[0]) * u[:, C_SCALE])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(log_lo + (log_hi - log_lo) * u[:, C_RATIO])
    w = torch.sqrt(area * r).clamp(max=float(width))
    h = torch.sqrt(area / r).clamp(max=float(height))
    x0 = u[:, C_X] * (width - w)
    y0 = u[:, C_Y] * (height - h)
    center = torch.stack([2.0 * (x0 + 0.5 * w) / width - 1.0, 2.0 * (y0 + 0.5 * h) / height - 1.0], dim=1)
    half = torch.stack([w / width, h / height], dim=1)
    return center, half


def homographies(dst: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
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
    apply = (u[:, C_PERSP] < persp_p).to(torch.float64)
    if not bool(apply.any()):
        return None
    b = u.shape[0]
    start = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    inward = -start  # direction towards the centre
    disp = cfg.perspective_distortion * u[:, 8:16].to(torch.float64).view(b, 4, 2) * apply.view(b, 1, 1)
    end = start + inward * disp
    return homographies(end, start.expand(b, 4, 2))


def _rotation_angles(u: torch.Tensor, cfg: MultiCropConfig) -> torch.Tensor:
    return torch.deg2rad((2.0 * u[:, C_ANGLE].to(torch.float64) - 1.0) * cfg.rotation_degrees)


def flip_maps(u: torch.Tensor, cfg: MultiCropConfig) -> torch.Tensor:
    sx = 1.0 - 2.0 * (u[:, C_HFLIP] < cfg.hflip_p).to(torch.float64)
    sy = 1.0 - 2.0 * (u[:, C_VFLIP] < cfg.vflip_p).to(torch.float64)
    return torch.diag_embed(torch.stack([sx, sy, torch.ones_like(sx)], dim=1))


def crop_space_maps(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float) -> tuple[torch.Tensor, bool]:
    """``crop_first``: 3x3 maps output (normalised) -> crop (normalised): perspective, then
    rotation, then flips. Returns the maps (float32, CPU) and whether any of them is projective.
    """
    b = u.shape[0]
    m = _perspective_maps(u, cfg, persp_p)
    projective = m is not None
    if m is None:
        m = torch.eye(3, dtype=torch.float64).repeat(b, 1, 1)
    if cfg.rotation_degrees > 0:
        m = rotation_matrices(_rotation_angles(u, cfg)) @ m
    return (m @ flip_maps(u, cfg)).to(torch.float32), projective


def image_space_maps(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float, height: int,
                      width: int) -> tuple[torch.Tensor | None, bool]:
    """``image_first``: 3x3 maps from the perspective-then-rotated image to the source image
    (normalised coordinates, float32, CPU), or None when neither transform is on."""
    m = _perspective_maps(u, cfg, persp_p)
    projective = m is not None
    if cfg.rotation_degrees > 0:
        # rotate in pixel units about the centre: normalised -> half-pixel units -> rotate -> back
        to_px = torch.diag(torch.tensor([width / 2.0, height / 2.0, 1.0], dtype=torch.float64))
        to_norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height, 1.0], dtype=torch.float64))
        rot = to_norm @ rotation_matrices(_rotation_angles(u, cfg)) @ to_px
        m = rot if m is None else m @ rot  # rotation is the outer (later) transform: applied first here
    return (None if m is None else m.to(torch.float32)), projective


def rotation_matrices(angle_rad: torch.Tensor) -> torch.Tensor:
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


# One grid_sample for the whole chain, against the libraries' resamplings with the same parameters, in
# benchmarks/augment_ops.py's CPU ms per batch of views (demo / paper scale, as in colour.py):
#   crop + horizontal flip (the demo's views): 3.8 / 458 ms here; torchvision v2 resized_crop + horizontal_flip
#     per image 10.3 / 230 ms (integer boxes: another distribution); torchvision.ops.roi_align on the same
#     boxes 3.0 / 334 ms, values within 5e-5, not the same bits;
#   paper geometry (rotation +-180, perspective 0.5): 7.7 / 724 ms (image_first), 7.0 / 720 ms (crop_first)
#     here; v2 perspective + rotate + resized_crop + flips per image 114 / 2920 and 110 / 1467 ms; kornia's
#     homography_warp of the same composed map 5.4 / 659 ms, not the same bits (and zero padding at the image
#     border, not the crop's, for crop_first).
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


class ViewGeometry(NamedTuple):
    """The per-sample maps of one view (CPU tensors, see :func:`resample`)."""

    center: torch.Tensor
    half: torch.Tensor
    maps: torch.Tensor
    image_maps: torch.Tensor | None
    projective: bool
    fill_mask: bool

    def rows(self, i: int, j: int) -> "ViewGeometry":
        """The samples ``i:j``."""
        return self._replace(center=self.center[i:j], half=self.half[i:j], maps=self.maps[i:j],
                             image_maps=None if self.image_maps is None else self.image_maps[i:j])

    def resample(self, x: torch.Tensor, size: int) -> torch.Tensor:
        return resample(x, size, self.center, self.half, self.maps, projective=self.projective,
                        fill_mask=self.fill_mask, image_maps=self.image_maps)


def view_geometry(u: torch.Tensor, cfg: MultiCropConfig, persp_p: float, scale, height: int,
                  width: int) -> ViewGeometry:
    """The geometry of a view from its draws ``u`` [B, N_DRAWS]: crop boxes (area fraction in ``scale``),
    flips, rotation and (with probability ``persp_p``) perspective, in ``cfg.geometry_order``."""
    center, half = crop_boxes(u, height, width, scale, cfg.ratio)
    image_maps = None
    if cfg.geometry_order == "crop_first":
        maps, projective = crop_space_maps(u, cfg, persp_p)
    else:
        maps = flip_maps(u, cfg).to(torch.float32)
        image_maps, projective = image_space_maps(u, cfg, persp_p, height, width)
    return ViewGeometry(center, half, maps, image_maps, projective, projective or cfg.rotation_degrees > 0)
