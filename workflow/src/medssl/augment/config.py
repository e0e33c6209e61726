"""The keys of the augmentation (:class:`MultiCropConfig`), their checks, the DINO and paper presets,
and the column layout of the uniform draws of a view."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

NORMALIZE_MODES = ("imagenet", "minus_one_one")
GEOMETRY_ORDERS = ("image_first", "crop_first")

# Column layout of the per-view uniform draw block [B, N_DRAWS].
C_SCALE, C_RATIO, C_X, C_Y = 0, 1, 2, 3
C_HFLIP, C_VFLIP, C_ANGLE = 4, 5, 6
C_PERSP = 7  # 8..15: corner displacements
C_JITTER, C_B, C_C, C_S, C_H = 16, 17, 18, 19, 20
C_GRAY, C_BLUR, C_SIGMA, C_SOLAR = 21, 22, 23, 24
N_DRAWS = 25


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
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")
        if self.geometry_order not in GEOMETRY_ORDERS:
            raise ValueError(f"geometry_order must be one of {GEOMETRY_ORDERS}, got {self.geometry_order!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "MultiCropConfig":
        """Build from a plain mapping (e.g. YAML); lists become tuples, unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ValueError(f"unknown MultiCropConfig key(s): {', '.join(map(str, unknown))}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kwargs)


# reference DINO's views (docs/papers.md#dino-views): the defaults of MultiCropConfig
DINO_PRESET: dict = {field.name: field.default for field in dataclasses.fields(MultiCropConfig)}

# the paper's (sparsam's) views, docs/papers.md#sparsam-views: DINO's with these changes
PAPER_PRESET: dict = {
    **DINO_PRESET,
    "global_size": 256,
    "n_local": 5,
    "global_scale": (0.5, 1.0),
    "local_scale": (0.1, 0.5),
    "vflip_p": 0.5,
    "rotation_degrees": 180.0,
    "perspective_distortion": 0.5,
    "perspective_p": (0.75, 0.5, 0.5),
    "blur_sigma": (0.1, 5.0),
    "blur_kernel": 11,
    "normalize": "minus_one_one",
}
