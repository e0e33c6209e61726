"""Datasets, image checks, splits and image loading.

This module also contains a *synthetic* bone-marrow cytology generator
(:func:`generate_synthetic_marrow`).  The images are not real patient data:
they are procedurally drawn single white-blood-cell crops (Beer-Lambert
composition of stain densities on a pale pink background) whose classes differ
by morphology -- cell size, nucleus size/shape/position, cytoplasm colour,
granules and chromatin texture -- with realistic nuisance (rotation, scale,
stain shifts, blur, noise, debris, red cells, neighbouring cells).  It exists
so the whole pipeline (DINO pretraining, frozen embeddings, few-label
classifiers) can be run, tested and demonstrated without downloading a
medical dataset.  Results on it say nothing about clinical performance.

Conventions used throughout:

* an image is identified by its path relative to a dataset root, in POSIX form;
* tables have columns ``image`` and ``label``; "no label" is the empty string
  ``""`` (never NaN), and unlabeled split files carry only ``image``;
* every bad-input error is a :class:`DatasetError` naming the file, the config
  key or the class concerned.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import unicodedata
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter

from medssl import images
from medssl.errors import DatasetError
from medssl.files import skipped, walk

__all__ = [
    "DatasetError",
    "SYNTHETIC_MARROW_CLASSES",
    "SYNTHETIC_MARROW_DEFAULT_COUNTS",
    "generate_synthetic_marrow",
    "index_folder",
    "index_unlabeled",
    "read_manifest",
    "read_groups",
    "read_split",
    "write_split",
    "check_images",
    "make_splits",
    "ssl_pool",
    "load_image",
    "index_npz",
    "index_split_folders",
    "official_splits",
    "ImageDataset",
    "load_all",
]

SPLIT_NAMES = ("labeled_train", "unlabeled_train", "test")
DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")


# --------------------------------------------------------------------------------------
# Synthetic bone-marrow cytology
# --------------------------------------------------------------------------------------

SYNTHETIC_MARROW_CLASSES: list[str] = [
    "segmented_neutrophil",
    "lymphocyte",
    "myeloblast",
    "band_neutrophil",
    "monocyte",
    "plasma_cell",
    "eosinophil",
    "basophil",
]

# Long-tailed, roughly like real marrow differential counts (600 / 25 = 24x).
SYNTHETIC_MARROW_DEFAULT_COUNTS: dict[str, int] = {
    "segmented_neutrophil": 600,
    "lymphocyte": 400,
    "myeloblast": 250,
    "band_neutrophil": 150,
    "monocyte": 100,
    "plasma_cell": 60,
    "eosinophil": 40,
    "basophil": 25,
}

_GENERATOR_VERSION = 1
_UNLABELED_STREAM = 1_000_003  # rng stream id for the unlabeled pool (never a class index)


def _od(rgb: Sequence[float]) -> np.ndarray:
    """Optical density (Beer-Lambert absorbance) of a transmitted RGB colour."""
    return -np.log(np.clip(np.asarray(rgb, dtype=np.float32), 1.0, 255.0) / 255.0)


# Stain "colours" as optical-density vectors (May-Gruenwald-Giemsa-like palette).
_STAINS: dict[str, np.ndarray] = {
    "background": _od((242, 230, 232)),  # pale pinkish plasma/glass
    "rbc": _od((228, 160, 168)),  # red cells
    "nucleus": _od((95, 45, 135)),  # purple chromatin
    "cyto_pink": _od((236, 205, 212)),  # neutrophil: pale lilac-pink
    "cyto_paleblue": _od((190, 208, 236)),  # lymphocyte: pale blue
    "cyto_greyblue": _od((178, 180, 208)),  # monocyte: grey-blue
    "cyto_blue": _od((140, 160, 215)),  # blast: basophilic blue
    "cyto_deepblue": _od((90, 110, 190)),  # plasma cell: deep blue
    "eos_granule": _od((235, 125, 80)),  # orange-pink granules
    "baso_granule": _od((55, 25, 85)),  # coarse dark purple granules
    "debris": _od((120, 70, 140)),
}

_CYTO_STAINS = ("cyto_pink", "cyto_paleblue", "cyto_greyblue", "cyto_blue", "cyto_deepblue")

# Per-class morphology. Ranges are (low, high) of uniform draws; some ranges
# overlap on purpose (blast vs lymphocyte size, band vs 2-lobed segmented...).
_MORPH: dict[str, dict] = {
    "segmented_neutrophil": dict(
        cell_r=(0.56, 0.68), nuc="lobes", lobes=(2, 5), nuc_frac=(0.40, 0.52),
        cyto="cyto_pink", cyto_d=(0.9, 1.3), nuc_d=(0.95, 1.25), chromatin="coarse",
        fine_granules=0.25,
    ),
    "band_neutrophil": dict(
        cell_r=(0.56, 0.68), nuc="band", nuc_frac=(0.42, 0.55),
        cyto="cyto_pink", cyto_d=(0.9, 1.3), nuc_d=(0.9, 1.2), chromatin="coarse",
        fine_granules=0.25,
    ),
    "lymphocyte": dict(
        cell_r=(0.38, 0.50), nuc="round", nuc_frac=(0.74, 0.88), nuc_offset=(0.0, 0.12),
        cyto="cyto_paleblue", cyto_d=(0.9, 1.4), nuc_d=(1.15, 1.45), chromatin="coarse",
    ),
    "myeloblast": dict(
        cell_r=(0.47, 0.66), nuc="round", nuc_frac=(0.70, 0.84), nuc_offset=(0.0, 0.12),
        cyto="cyto_blue", cyto_d=(0.8, 1.2), nuc_d=(0.7, 0.95), chromatin="fine",
        nucleoli=(1, 3),
    ),
    "monocyte": dict(
        cell_r=(0.60, 0.76), nuc="kidney", nuc_frac=(0.50, 0.64), nuc_offset=(0.0, 0.15),
        cyto="cyto_greyblue", cyto_d=(0.9, 1.3), nuc_d=(0.75, 1.0), chromatin="lacy",
        vacuoles=(0, 5),
    ),
    "plasma_cell": dict(
        cell_r=(0.48, 0.60), nuc="round", nuc_frac=(0.42, 0.55), nuc_offset=(0.36, 0.50),
        cyto="cyto_deepblue", cyto_d=(0.9, 1.3), nuc_d=(1.05, 1.35), chromatin="clock",
        golgi=True,
    ),
    "eosinophil": dict(
        cell_r=(0.58, 0.70), nuc="lobes", lobes=(2, 3), nuc_frac=(0.38, 0.48),
        cyto="cyto_pink", cyto_d=(0.7, 1.0), nuc_d=(0.95, 1.2), chromatin="coarse",
        granules=("eos_granule", (45, 80), (0.030, 0.045), (0.9, 1.3), False),
    ),
    "basophil": dict(
        cell_r=(0.48, 0.60), nuc="lobes", lobes=(2, 3), nuc_frac=(0.45, 0.58),
        cyto="cyto_pink", cyto_d=(0.7, 1.0), nuc_d=(0.6, 0.85), chromatin="fine",
        granules=("baso_granule", (14, 30), (0.045, 0.075), (0.7, 1.2), True),
    ),
}


def _soft(sd: np.ndarray, width: float) -> np.ndarray:
    """Coverage in [0, 1] of a signed-distance field (negative inside)."""
    return np.clip(0.5 - sd / width, 0.0, 1.0)


def _noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Smooth zero-mean unit-ish noise field of shape (n, n) with `cells` features per side."""
    base = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(
        Image.fromarray(base, mode="F").resize((n, n), Image.Resampling.BICUBIC), dtype=np.float32
    )


def _seg_dist(px, py, ax, ay, bx, by):
    """Distance from points (px, py) to segment a-b."""
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    return np.hypot(px - ax - t * dx, py - ay - t * dy)


def _nucleus_sd(kind: str, u, v, rc: float, frac: float, rng: np.random.Generator, m: dict):
    """Signed distance of the nucleus in cell-local coordinates (u, v)."""
    rn = rc * frac
    if kind == "round":
        ecc = rng.uniform(0.85, 1.0)
        a, b = rn, rn * ecc
        return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b
    if kind == "kidney":
        a, b = rn * rng.uniform(1.05, 1.2), rn * rng.uniform(0.8, 0.92)
        ell = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * b
        notch_r = rn * rng.uniform(0.45, 0.65)
        notch = np.hypot(u, v - b * rng.uniform(0.95, 1.25)) - notch_r
        return np.maximum(ell, -notch)
    if kind == "band":
        # horseshoe: thick arc of a circle, roughly constant thickness
        radius = rn * rng.uniform(0.70, 0.85)
        thick = rn * rng.uniform(0.26, 0.36)
        span = rng.uniform(0.55, 0.85) * math.pi  # half opening of the "C"
        cy = -radius * 0.15
        ang = np.arctan2(u, -(v - cy))  # 0 at the bottom of the arc
        rho = np.hypot(u, v - cy)
        d_arc = np.abs(rho - radius)
        ex, ey = radius * math.sin(span), cy - radius * math.cos(span)
        d_end = np.minimum(np.hypot(u - ex, v - ey), np.hypot(u + ex, v - ey))
        d = np.where(np.abs(ang) <= span, d_arc, d_end)
        return d - thick * (1.0 + 0.15 * np.sin(3 * ang + rng.uniform(0, 6.3)))
    if kind == "lobes":
        n = int(rng.integers(m["lobes"][0], m["lobes"][1] + 1))
        lobe_r = rn * rng.uniform(0.42, 0.52) * (1.0 if n <= 3 else 0.85)
        # lobe centres along a bent chain
        arc_r = rn * rng.uniform(0.55, 0.75)
        total = rng.uniform(0.9, 1.5) * math.pi * (n - 1) / max(n - 1, 2)
        angs = np.linspace(-total / 2, total / 2, n) + rng.normal(0, 0.15, n)
        cx = arc_r * np.sin(angs)
        cy = -arc_r * np.cos(angs) + arc_r * 0.45
        sd = np.full(u.shape, np.inf, dtype=np.float32)
        for k in range(n):
            rk = lobe_r * rng.uniform(0.85, 1.15)
            sd = np.minimum(sd, np.hypot(u - cx[k], v - cy[k]) - rk)
        strand = lobe_r * rng.uniform(0.12, 0.30)
        for k in range(n - 1):
            sd = np.minimum(sd, _seg_dist(u, v, cx[k], cy[k], cx[k + 1], cy[k + 1]) - strand)
        return sd
    raise AssertionError(kind)


def _render_cell(cls: str, rng: np.random.Generator, image_size: int) -> np.ndarray:
    """Draw one synthetic cell image; returns uint8 [S, S, 3]."""
    m = _MORPH[cls]
    n = 2 * image_size  # render at 2x, downsample for antialiasing
    px = 2.0 / n  # one render pixel in normalized units
    g = (np.arange(n, dtype=np.float32) + 0.5) * px - 1.0
    X, Y = np.meshgrid(g, g)

    # ---- per-image nuisance: stain shift, pose ------------------------------------
    intensity = rng.uniform(0.75, 1.25)
    chan = np.exp(rng.normal(0.0, 0.15, 3)).astype(np.float32)
    stains = {k: v * chan for k, v in _STAINS.items()}
    # cytoplasm tint overlaps between classes (staining/maturation variability)
    other = _CYTO_STAINS[int(rng.integers(len(_CYTO_STAINS)))]
    w = rng.uniform(0.0, 0.4)
    cyto_stain = (1 - w) * stains[m["cyto"]] + w * stains[other]
    theta = rng.uniform(0, 2 * math.pi)
    scale = rng.uniform(0.85, 1.15)
    cx0, cy0 = rng.normal(0, 0.05, 2)
    ct, st = math.cos(theta), math.sin(theta)
    Xc, Yc = X - cx0, Y - cy0
    u = (ct * Xc + st * Yc) / scale
    v = (-st * Xc + ct * Yc) / scale

    od = np.zeros((n, n, 3), dtype=np.float32)
    bg = 1.0 + 0.15 * _noise(rng, n, 3)
    od += bg[..., None] * stains["background"]

    # ---- cell body -------------------------------------------------------------------
    rc = rng.uniform(*m["cell_r"])
    rho = np.hypot(u, v)
    phi = np.arctan2(v, u)
    wobble = 1.0 + 0.035 * np.sin(2 * phi + rng.uniform(0, 6.3)) + 0.025 * np.sin(
        3 * phi + rng.uniform(0, 6.3)
    )
    cell = _soft(rho - rc * wobble, 1.5 * px)
    cell_region = _soft(rho - rc * wobble - 0.02, 3 * px)  # keeps RBCs off the cell

    # ---- red cells, neighbouring cell, debris (behind / around the cell) ----------
    for _ in range(int(rng.integers(0, 4))):
        ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0.65, 1.2)
        r = rng.uniform(0.28, 0.42)
        d = np.hypot(X - dist * math.cos(ang), Y - dist * math.sin(ang))
        disc = _soft(d - r, 1.5 * px) * (1.0 - 0.55 * np.exp(-((d / (0.55 * r)) ** 2)))
        od += (disc * (1 - cell_region) * rng.uniform(0.6, 1.0))[..., None] * stains["rbc"]
    if rng.random() < 0.3:  # partial neighbouring leukocyte at the border
        ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(1.05, 1.35)
        d = np.hypot(X - dist * math.cos(ang), Y - dist * math.sin(ang))
        r = rng.uniform(0.35, 0.55)
        nb_cyto = _soft(d - r, 1.5 * px) * (1 - cell_region)
        nb_nuc = _soft(d - 0.7 * r, 1.5 * px) * (1 - cell_region)
        od += (nb_cyto * 0.8)[..., None] * stains["cyto_greyblue"]
        od += (nb_nuc * 0.9)[..., None] * stains["nucleus"]
    for _ in range(int(rng.integers(0, 7))):
        d = np.hypot(X - rng.uniform(-1, 1), Y - rng.uniform(-1, 1))
        dot = _soft(d - rng.uniform(0.012, 0.035), 1.5 * px)
        od += (dot * rng.uniform(0.4, 1.0))[..., None] * stains["debris"]

    # ---- nucleus -------------------------------------------------------------------
    frac = rng.uniform(*m["nuc_frac"])
    nu, nv = u, v
    if "nuc_offset" in m:  # eccentric nucleus (plasma cells), slight for others
        off = rc * rng.uniform(*m["nuc_offset"])
        oa = rng.uniform(0, 2 * math.pi)
        nu, nv = u - off * math.cos(oa), v - off * math.sin(oa)
    nsd = _nucleus_sd(m["nuc"], nu, nv, rc, frac, rng, m)
    nuc = _soft(nsd, 1.5 * px) * cell
    # chromatin texture
    ch = m["chromatin"]
    if ch == "coarse":
        tex = 1.0 + 0.28 * _noise(rng, n, max(4, image_size // 3))
    elif ch == "fine":
        tex = 1.0 + 0.10 * _noise(rng, n, max(6, image_size // 2))
    elif ch == "lacy":
        tex = 1.0 + 0.22 * np.abs(_noise(rng, n, max(5, image_size // 3))) - 0.12
    else:  # clock-face: peripheral chromatin clumps
        ring = np.exp(-((np.hypot(nu, nv) - rc * frac * 0.8) / (rc * frac * 0.25)) ** 2)
        tex = 0.8 + 0.45 * ring * (1 + 0.3 * _noise(rng, n, max(4, image_size // 4)))
    nuc_density = nuc * rng.uniform(*m["nuc_d"]) * np.clip(tex, 0.3, 2.0)
    if "nucleoli" in m:
        for _ in range(int(rng.integers(m["nucleoli"][0], m["nucleoli"][1] + 1))):
            a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.45) * rc * frac
            d = np.hypot(nu - r * math.cos(a), nv - r * math.sin(a))
            nuc_density = nuc_density * (1 - 0.45 * _soft(d - rc * frac * 0.16, 2 * px))

    # ---- cytoplasm -----------------------------------------------------------------
    cyto = cell * (1 - nuc)
    cyto_density = cyto * rng.uniform(*m["cyto_d"]) * (1 + 0.08 * _noise(rng, n, 5))
    if m.get("fine_granules"):
        cyto_density = cyto_density * (
            1 + m["fine_granules"] * np.clip(_noise(rng, n, image_size), -1.5, 1.5)
        )
    if m.get("golgi"):  # pale perinuclear halo on the cell-centre side of the nucleus
        gd = np.hypot(nu - 0.55 * (u - nu), nv - 0.55 * (v - nv))
        halo = np.exp(-((gd / (rc * frac * 0.8)) ** 2))
        cyto_density = cyto_density * (1 - 0.6 * halo)
    if "vacuoles" in m:
        for _ in range(int(rng.integers(m["vacuoles"][0], m["vacuoles"][1] + 1))):
            a, r = rng.uniform(0, 2 * math.pi), rng.uniform(0.55, 0.9) * rc
            d = np.hypot(u - r * math.cos(a), v - r * math.sin(a))
            cyto_density = cyto_density * (1 - 0.7 * _soft(d - rng.uniform(0.03, 0.06), 1.5 * px))

    od += (cyto_density * intensity)[..., None] * cyto_stain
    od += (nuc_density * intensity)[..., None] * stains["nucleus"]

    # ---- granules ------------------------------------------------------------------
    if "granules" in m:
        stain, count, radius, dens, over_nucleus = m["granules"]
        k = int(rng.integers(count[0], count[1] + 1))
        gr = np.sqrt(rng.uniform(0, 1, k)) * rc * 0.95
        ga = rng.uniform(0, 2 * math.pi, k)
        gx, gy = gr * np.cos(ga), gr * np.sin(ga)
        grad = rng.uniform(*radius, k)
        gdens = np.zeros((n, n), dtype=np.float32)
        for j in range(k):  # cheap: each granule touches only a small window
            cxp = (ct * gx[j] - st * gy[j]) * scale + cx0
            cyp = (st * gx[j] + ct * gy[j]) * scale + cy0
            rr = grad[j] * scale
            i0 = max(int((cyp - rr - 2 * px + 1) / px), 0)
            i1 = min(int((cyp + rr + 2 * px + 1) / px) + 1, n)
            j0 = max(int((cxp - rr - 2 * px + 1) / px), 0)
            j1 = min(int((cxp + rr + 2 * px + 1) / px) + 1, n)
            if i0 >= i1 or j0 >= j1:
                continue
            d = np.hypot(X[i0:i1, j0:j1] - cxp, Y[i0:i1, j0:j1] - cyp)
            gdens[i0:i1, j0:j1] = np.maximum(gdens[i0:i1, j0:j1], _soft(d - rr, 1.2 * px))
        mask = cell if over_nucleus else cyto
        od += (gdens * mask * rng.uniform(*dens) * intensity)[..., None] * stains[stain]

    # ---- to RGB, optics, sensor ------------------------------------------------------
    rgb = np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, mode="RGB")
    img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.2, 1.1))))
    img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0.0, rng.uniform(1.5, 5.0), arr.shape).astype(np.float32)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _validate_counts(
    class_counts: Mapping[str, int], n_unlabeled: int, image_size: int, seed: int
) -> None:
    if not class_counts:
        raise DatasetError("class_counts is empty: give at least one class")
    unknown = [c for c in class_counts if c not in SYNTHETIC_MARROW_CLASSES]
    if unknown:
        raise DatasetError(
            f"class_counts: unknown synthetic marrow class(es) {unknown}; "
            f"known: {SYNTHETIC_MARROW_CLASSES}"
        )
    for c, k in class_counts.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise DatasetError(f"class_counts[{c!r}] must be a non-negative integer, got {k!r}")
    if isinstance(n_unlabeled, bool) or not isinstance(n_unlabeled, (int, np.integer)) or n_unlabeled < 0:
        raise DatasetError(f"n_unlabeled must be a non-negative integer, got {n_unlabeled!r}")
    if n_unlabeled > 0 and sum(class_counts.values()) == 0:
        raise DatasetError("n_unlabeled > 0 needs a non-zero class_counts mixture to draw from")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise DatasetError(f"image_size must be an integer >= 8, got {image_size!r}")


def generate_synthetic_marrow(
    root: Path,
    class_counts: Mapping[str, int],
    n_unlabeled: int,
    image_size: int,
    seed: int,
) -> pd.DataFrame:
    """Write a deterministic synthetic bone-marrow cytology dataset under ``root``.

    Layout: ``images/<class>/<class>_<i:05d>.png`` (labeled),
    ``unlabeled/unlabeled_<i:05d>.png`` (pool drawn from the same class mixture,
    label not recorded), ``manifest.csv`` (``image,label``; label empty for the
    pool) and ``generator.json`` (the parameters).

    Each image uses its own generator ``default_rng([seed, class_idx, i])``
    (``class_idx`` = position in :data:`SYNTHETIC_MARROW_CLASSES`), or
    ``default_rng([seed, 1_000_003, i])`` for pool image ``i``, so files do not
    depend on generation order: the same seed gives byte-identical files.

    Atomicity / re-runs: everything is written into a temporary sibling
    directory that is renamed to ``root`` at the end, so a killed run never leaves
    a dataset that looks complete.  If ``root`` already holds a complete dataset
    generated with the same parameters (``generator.json``) and all its images
    present, the call is a **no-op** (the existing manifest is returned; the
    content would be byte-identical anyway).  If it
    holds a dataset made with other parameters, the new one is built aside and
    swapped in (old moved away, new renamed in, old deleted).  An empty ``root``
    is replaced; a non-empty ``root`` that is not a generated dataset raises
    :class:`DatasetError` rather than being deleted.
    """
    root = Path(root)
    _validate_counts(class_counts, n_unlabeled, image_size, seed)
    params = {
        "generator": "synthetic_marrow",
        "version": _GENERATOR_VERSION,
        "class_counts": {str(c): int(k) for c, k in class_counts.items()},
        "n_unlabeled": int(n_unlabeled),
        "image_size": int(image_size),
        "seed": int(seed),
    }

    if root.exists():
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset root exists and is not a directory")
        existing = root / "generator.json"
        if (root / "manifest.csv").is_file() and existing.is_file():
            try:
                old = json.loads(existing.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old == params:
                manifest = read_manifest(root / "manifest.csv")
                if all((root / rel).is_file() for rel in manifest["image"]):
                    return manifest  # complete and identical: no-op
        elif any(root.iterdir()):
            raise DatasetError(
                f"{root}: exists, is not empty and is not a generated synthetic dataset "
                "(no manifest.csv + generator.json); refusing to overwrite it"
            )

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        rows: list[tuple[str, str]] = []
        for cls, count in class_counts.items():
            cidx = SYNTHETIC_MARROW_CLASSES.index(cls)
            if count == 0:
                continue
            (tmp / "images" / cls).mkdir(parents=True)
            for i in range(int(count)):
                rel = f"images/{cls}/{cls}_{i:05d}.png"
                arr = _render_cell(cls, np.random.default_rng([seed, cidx, i]), image_size)
                Image.fromarray(arr, mode="RGB").save(tmp / rel, format="PNG")
                rows.append((rel, cls))
        if n_unlabeled:
            (tmp / "unlabeled").mkdir()
            names = [c for c in SYNTHETIC_MARROW_CLASSES if class_counts.get(c, 0) > 0]
            p = np.array([class_counts[c] for c in names], dtype=np.float64)
            p /= p.sum()
            for i in range(int(n_unlabeled)):
                rng = np.random.default_rng([seed, _UNLABELED_STREAM, i])
                cls = names[int(rng.choice(len(names), p=p))]
                rel = f"unlabeled/unlabeled_{i:05d}.png"
                Image.fromarray(_render_cell(cls, rng, image_size), mode="RGB").save(
                    tmp / rel, format="PNG"
                )
                rows.append((rel, ""))
        manifest = pd.DataFrame(rows, columns=["image", "label"])
        manifest.to_csv(tmp / "manifest.csv", index=False)
        (tmp / "generator.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")

        if root.exists():
            trash = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(root, trash)
            os.replace(tmp, root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_manifest(root / "manifest.csv")


# --------------------------------------------------------------------------------------
# Indexing, manifests, split files
# --------------------------------------------------------------------------------------


def index_folder(
    root: Path,
    class_names: Sequence[str] | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
) -> pd.DataFrame:
    """Index ``root/<class>/**/<image>`` into a DataFrame(image, label).

    ``image`` is the POSIX path relative to ``root``; rows are sorted by
    (label, image).  Files directly in ``root`` and names :func:`medssl.files.skipped` (hidden,
    ``__MACOSX``) are ignored; symlinks are followed (:func:`medssl.files.walk`).  With
    ``class_names``, folders must match exactly (compared in Unicode NFC, as a macOS archive may
    spell them decomposed): missing and extra class folders are both errors, named in the message.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist or is not a directory")
    exts = _extensions(extensions)
    on_disk = {_nfc(p.name): p.name for p in sorted(root.iterdir()) if p.is_dir() and not skipped(p.name)}
    if class_names is None:
        folders = {name: name for name in on_disk.values()}
    else:
        wanted = {_nfc(c): c for c in class_names}
        missing = [c for key, c in wanted.items() if key not in on_disk]
        extra = [name for key, name in on_disk.items() if key not in wanted]
        problems = []
        if missing:
            problems.append(f"missing class folder(s) {missing}")
        if extra:
            problems.append(f"unexpected folder(s) not in class_names {extra}")
        if problems:
            raise DatasetError(f"{root}: " + "; ".join(problems) + ". The class folders must be the dataset's "
                               "`classes`: correct a misspelt name, add the class to `classes`, or move the "
                               "folder out of the dataset root")
        folders = {c: on_disk[key] for key, c in wanted.items()}
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders found")
    found: dict[str, list[str]] = {name: [] for name in folders.values()}
    ignored: dict[str, int] = {}
    for path in walk(*(root / name for name in folders.values())):
        rel = path.relative_to(root)
        kind = rel.suffix.lower()
        if kind in exts:
            found[rel.parts[0]].append(rel.as_posix())
        else:
            ignored[kind or rel.name] = ignored.get(kind or rel.name, 0) + 1
    if ignored:
        warnings.warn(f"{root}: {sum(ignored.values())} file(s) in the class folders are not indexed, their names "
                      f"not ending in {sorted(exts)}: {dict(sorted(ignored.items()))}", stacklevel=2)
    rows = []
    for cls, name in folders.items():
        if not found[name]:
            raise DatasetError(f"{root / name}: class folder {cls!r} contains no images ({sorted(exts)})")
        rows.extend((f, cls) for f in sorted(found[name]))
    return pd.DataFrame(rows, columns=["image", "label"])


def index_unlabeled(folder: Path, root: Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> pd.DataFrame:
    """Every image below ``folder`` (``source.unlabeled_root``) -> DataFrame(image, label ""), the image
    paths relative to the dataset ``root`` (``../unlabeled/x.png`` for a folder beside it)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: source.unlabeled_root does not exist or is not a directory")
    exts = _extensions(extensions)
    found = sorted(Path(os.path.relpath(p, root)).as_posix() for p in walk(folder) if p.suffix.lower() in exts)
    if not found:
        raise DatasetError(f"{folder}: source.unlabeled_root contains no images ({sorted(exts)})")
    return pd.DataFrame({"image": found, "label": ""})


def _extensions(extensions: Sequence[str]) -> set[str]:
    return {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def index_split_folders(root: Path, class_names: Sequence[str]) -> pd.DataFrame:
    """``root/{train,val,test}/<class>/**`` (a dataset shipped with its official split, e.g. the pneumonia
    CXRs) -> DataFrame(image, label) with image ids ``<split>/<class>/...`` for :func:`official_splits`."""
    root = Path(root)
    parts = [p for p in NPZ_SPLITS if (root / p).is_dir()]
    if "train" not in parts or "test" not in parts:
        raise DatasetError(f"{root}: split_folders needs train/ and test/ sub-folders; found {parts}")
    frames = [index_folder(root / p, class_names).assign(image=lambda f, p=p: p + "/" + f["image"]) for p in parts]
    return pd.concat(frames, ignore_index=True)


def _read_csv(csv_path: Path) -> pd.DataFrame:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: file not found")
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DatasetError(f"{csv_path}: cannot parse CSV ({e})") from e
    # the original paper's split files carry pandas' unnamed index column (",image,label")
    first = df.columns[0] if len(df.columns) else None
    if first is not None and (first == "" or str(first).startswith("Unnamed: 0")):
        df = df.drop(columns=[first])
    return df


def _clean_str(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def _check_images_column(df: pd.DataFrame, where: str) -> None:
    empty = int((df["image"] == "").sum())
    if empty:
        raise DatasetError(f"{where}: {empty} row(s) with an empty 'image' entry")
    dup = df["image"][df["image"].duplicated()].unique().tolist()
    if dup:
        raise DatasetError(f"{where}: duplicate image entries, e.g. {dup[:5]} ({len(dup)} in all)")


def read_manifest(csv_path: Path, image_col: str = "image", label_col: str = "label") -> pd.DataFrame:
    """Read a dataset manifest (one row per image) -> DataFrame(image, label).

    Unlabeled rows get ``label == ""``.  Missing columns, empty or duplicate
    image entries raise :class:`DatasetError` naming the file.
    """
    df = _read_csv(csv_path)
    for col, key in ((image_col, "image_col"), (label_col, "label_col")):
        if col not in df.columns:
            raise DatasetError(
                f"{csv_path}: column {col!r} ({key}) not found; columns are {list(df.columns)}"
            )
    out = pd.DataFrame({"image": _clean_str(df[image_col]), "label": _clean_str(df[label_col])})
    _check_images_column(out, str(csv_path))
    return out.reset_index(drop=True)


def read_groups(csv_path: Path, column: str) -> pd.Series:
    """The group-id column (``split.group_column``, e.g. ``lesion_id``) of a manifest, row-aligned."""
    df = _read_csv(csv_path)
    if column not in df.columns:
        raise DatasetError(f"{csv_path}: column {column!r} (split.group_column) not found; columns are "
                           f"{list(df.columns)}")
    return _clean_str(df[column]).reset_index(drop=True)


def read_split(csv_path: Path, labeled: bool = True) -> pd.DataFrame:
    """Read one split file (``labeled_train.csv``, ``unlabeled_train.csv``, ``test.csv``).

    Accepts ``image,label`` and the paper's ``,image,label`` (leading index).
    ``labeled=True``: returns ``image,label`` with every label a non-empty
    string.  ``labeled=False``: returns only ``image`` -- any label column in the
    file is dropped on purpose so the SSL stage can never see labels.
    """
    df = _read_csv(csv_path)
    if "image" not in df.columns:
        raise DatasetError(f"{csv_path}: column 'image' not found; columns are {list(df.columns)}")
    out = pd.DataFrame({"image": _clean_str(df["image"])})
    if labeled:
        if "label" not in df.columns:
            raise DatasetError(f"{csv_path}: column 'label' not found; columns are {list(df.columns)}")
        out["label"] = _clean_str(df["label"])
        empty = out.index[out["label"] == ""].tolist()
        if empty:
            raise DatasetError(
                f"{csv_path}: {len(empty)} row(s) with an empty 'label' in a labeled split "
                f"(first data rows {[i + 2 for i in empty[:10]]} counting the header as line 1)"
            )
    _check_images_column(out, str(csv_path))
    return out.reset_index(drop=True)


def write_split(df: pd.DataFrame, csv_path: Path) -> None:
    """Write a split table without index, atomically (temp file + ``os.replace``)."""
    csv_path = Path(csv_path)
    if "image" not in df.columns:
        raise DatasetError(f"{csv_path}: refusing to write a split without an 'image' column")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{csv_path.name}.", suffix=".tmp", dir=csv_path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, csv_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------
# Image checks and loading
# --------------------------------------------------------------------------------------


def _verify(path: Path) -> str | None:
    """None if the file exists and decodes, else a short reason."""
    member = _npz_member(path)
    if member is not None:
        try:
            _npz_image(*member)
        except DatasetError as e:
            return str(e)
        return None
    return images.problem(path)


def check_images(df: pd.DataFrame, root: Path, class_names: Sequence[str] | None = None) -> None:
    """Check every ``image`` under ``root`` exists and decodes, and labels are known.

    Raises :class:`DatasetError` listing the first 10 bad files (full paths)
    and the total count, or the unknown classes.
    """
    root = Path(root)
    if "image" not in df.columns:
        raise DatasetError("check_images: table has no 'image' column")
    if class_names is not None and "label" in df.columns:
        labels = set(_clean_str(df["label"])) - {""}
        unknown = sorted(labels - set(class_names))
        if unknown:
            raise DatasetError(
                f"{root}: unknown class(es) {unknown} not in class_names {list(class_names)}"
            )
    bad = []
    for rel in df["image"]:
        path = root / str(rel)
        why = _verify(path)
        if why is not None:
            bad.append(f"{path} ({why})")
    if bad:
        raise DatasetError(
            f"{len(bad)} bad image file(s) of {len(df)} under {root}; first {min(10, len(bad))}: "
            + "; ".join(bad[:10])
        )


def load_image(path: Path, image_size: int, channels: int = 3,
               resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """Load an image as uint8 ``[S, S, C]`` (C = 3 RGB or 1 grayscale).

    Resizing uses ``resample`` (BILINEAR; a pretrained model's own interpolation for its frozen
    embedding), which PIL antialiases when downscaling.  The original paper's code used NEAREST
    here -- aliasing that we deliberately do not repeat.
    """
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
    member = _npz_member(Path(path))
    im = Image.fromarray(_npz_image(*member)) if member is not None else images.read(path)
    im = images.convert(im, "L" if channels == 1 else "RGB")
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), resample)
    arr = np.array(im, dtype=np.uint8)  # writable copy (torch.from_numpy needs one)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------
# MedMNIST-format .npz sources (source kind ``npz``)
# --------------------------------------------------------------------------------------
# An image id is "<split>/<row>" inside the archive, and the image root is the .npz file itself,
# so ``root / image`` reads e.g. ``data/medmnist/bloodmnist_64.npz/train/000012``.

NPZ_SPLITS = ("train", "val", "test")
_NPZ_ARRAYS: dict[tuple[str, str], np.ndarray] = {}  # decompressed once per process


def _npz_member(path: Path) -> tuple[Path, str, int] | None:
    text = Path(path).as_posix()
    i = text.rfind(".npz/")
    if i < 0:
        return None
    split, _, row = text[i + 5:].partition("/")
    if split not in NPZ_SPLITS or not row.isdigit():
        raise DatasetError(f"{path}: not an image of the .npz (expected <file>.npz/<{'|'.join(NPZ_SPLITS)}>/<row>)")
    return Path(text[: i + 4]), split, int(row)


def _npz_array(npz: Path, key: str) -> np.ndarray:
    if (str(npz), key) not in _NPZ_ARRAYS:
        if not npz.is_file():
            raise DatasetError(f"{npz}: .npz file not found")
        with np.load(npz) as data:
            if key not in data.files:
                raise DatasetError(f"{npz}: no array {key!r} (it has {sorted(data.files)}); not MedMNIST format")
            _NPZ_ARRAYS[(str(npz), key)] = data[key]
    return _NPZ_ARRAYS[(str(npz), key)]


def _npz_image(npz: Path, split: str, row: int) -> np.ndarray:
    images = _npz_array(npz, f"{split}_images")
    if not 0 <= row < len(images):
        raise DatasetError(f"{npz}: {split} has {len(images)} images, no row {row}")
    arr = np.asarray(images[row])
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise DatasetError(f"{npz}: {split}_images must be uint8 [N, H, W] or [N, H, W, 3], got "
                           f"{images.dtype} {images.shape}")
    return arr


def index_npz(path: Path, class_names: Sequence[str]) -> pd.DataFrame:
    """Every image of a MedMNIST-format .npz -> DataFrame(image, label); image = "<split>/<row>".

    Labels are the integer label column mapped through ``class_names`` (MedMNIST's ``info``
    order); multi-label files (ChestMNIST) are refused."""
    path = Path(path)
    rows = []
    for split in NPZ_SPLITS:
        labels = np.asarray(_npz_array(path, f"{split}_labels"))
        if labels.ndim == 2 and labels.shape[1] != 1:
            raise DatasetError(f"{path}: {split}_labels has {labels.shape[1]} columns (multi-label); "
                               "only single-label MedMNIST sets are supported")
        labels = labels.reshape(-1).astype(np.int64)
        n_images = len(_npz_array(path, f"{split}_images"))
        if len(labels) != n_images:
            raise DatasetError(f"{path}: {split} has {n_images} images but {len(labels)} labels")
        bad = sorted(set(labels[(labels < 0) | (labels >= len(class_names))].tolist()))
        if bad:
            raise DatasetError(f"{path}: {split} label(s) {bad} have no class name; classes has "
                               f"{len(class_names)} entries {list(class_names)}")
        width = max(6, len(str(n_images)))
        rows += [(f"{split}/{i:0{width}d}", class_names[k]) for i, k in enumerate(labels)]
    return pd.DataFrame(rows, columns=["image", "label"])


def official_splits(manifest: pd.DataFrame, val_split: str = "unlabeled_train") -> dict[str, pd.DataFrame]:
    """A dataset's official splits from the first component of each image id ("train/...",
    "val/...", "test/..."; MedMNIST .npz rows, or a folder source with ``split_folders``):
    train -> labeled_train, test -> test; val -> ``val_split`` (``unlabeled_train``: SSL pool only,
    labels unused; ``labeled_train``; ``drop``)."""
    split = manifest["image"].str.partition("/")[0]
    if val_split not in ("unlabeled_train", "labeled_train", "drop"):
        raise DatasetError(f"source.val_split must be unlabeled_train, labeled_train or drop, got {val_split!r}")
    train_parts = ["train"] + (["val"] if val_split == "labeled_train" else [])
    out = {
        "labeled_train": manifest.loc[split.isin(train_parts), ["image", "label"]],
        "unlabeled_train": manifest.loc[split == "val", ["image"]] if val_split == "unlabeled_train"
        else manifest.iloc[0:0][["image"]],
        "test": manifest.loc[split == "test", ["image", "label"]],
    }
    return {k: v.reset_index(drop=True) for k, v in out.items()}


# --------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------


def make_splits(
    labeled: pd.DataFrame,
    unlabeled: pd.DataFrame | None,
    test_fraction: float,
    seed: int,
    groups: Mapping[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Stratified train/test split of the labeled images plus the unlabeled pool.

    ``groups`` ({image: group id}, e.g. ISIC's lesion_id or a patient id) keeps every group on one
    side: a grouped stratified split (sklearn ``StratifiedGroupKFold`` with round(1 / test_fraction)
    folds, the first fold is test). Images without a group id form a group of their own.

    Returns ``labeled_train`` / ``test`` (``image,label``) and
    ``unlabeled_train`` (``image`` only), each sorted by image.  Classes with
    fewer than 2 images go entirely to ``labeled_train`` (with a warning).
    Unlabeled images that land in ``test`` are dropped from the pool (warning),
    so test never overlaps the training data.
    """
    from sklearn.model_selection import train_test_split

    if not (isinstance(test_fraction, (int, float)) and 0.0 < float(test_fraction) < 1.0):
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    for col in ("image", "label"):
        if col not in labeled.columns:
            raise DatasetError(f"make_splits: labeled table has no {col!r} column")
    lab = pd.DataFrame({"image": _clean_str(labeled["image"]), "label": _clean_str(labeled["label"])})
    lab = lab[lab["label"] != ""]
    if lab.empty:
        raise DatasetError("make_splits: no labeled images")
    _check_images_column(lab, "make_splits labeled table")
    lab = lab.sort_values("image", kind="stable").reset_index(drop=True)

    counts = lab["label"].value_counts()
    rare = sorted(counts.index[counts < 2].tolist())
    if rare:
        warnings.warn(
            f"class(es) {rare} have fewer than 2 images: all their images go to labeled_train "
            "and none to test",
            stacklevel=2,
        )
    keep = lab[~lab["label"].isin(rare)]
    if keep.empty:
        raise DatasetError(f"make_splits: no class has 2 or more labeled images ({rare[:10]} have 1): the test "
                           "split would be empty; add images")
    n_test, n_classes = math.ceil(float(test_fraction) * len(keep)), keep["label"].nunique()  # sklearn's rounding
    if groups is None and n_test < n_classes:
        smallest = ", ".join(f"{c}: {n}" for c, n in counts[counts >= 2].sort_values().head(5).items())
        raise DatasetError(
            f"make_splits: test_fraction={test_fraction} puts {n_test} of the {len(keep)} images in the test split, "
            f"fewer than the {n_classes} classes, and a stratified split needs a test image of each: set "
            f"split.test_fraction to at least {math.ceil(100 * n_classes / len(keep)) / 100:g}, or add images "
            f"(smallest classes {smallest})")
    try:
        if groups is None:
            train, test = train_test_split(keep, test_size=float(test_fraction), random_state=seed,
                                           stratify=keep["label"])
        else:
            train, test = _grouped_split(keep, groups, float(test_fraction), seed)
    except ValueError as e:
        raise DatasetError(
            f"make_splits: cannot stratify {len(keep)} images over {n_classes} classes with "
            f"test_fraction={test_fraction} ({e}); change split.test_fraction or add images"
        ) from e
    train = pd.concat([train, lab[lab["label"].isin(rare)]])
    train = train.sort_values("image", kind="stable").reset_index(drop=True)
    test = test.sort_values("image", kind="stable").reset_index(drop=True)

    if unlabeled is None or len(unlabeled) == 0:
        unl = pd.DataFrame({"image": pd.Series([], dtype=object)})
    else:
        if "image" not in unlabeled.columns:
            raise DatasetError("make_splits: unlabeled table has no 'image' column")
        unl = pd.DataFrame({"image": _clean_str(unlabeled["image"])})
        unl = unl[unl["image"] != ""].drop_duplicates()
        leaked = unl["image"].isin(set(test["image"]))
        if leaked.any():
            warnings.warn(
                f"{int(leaked.sum())} unlabeled image(s) are in the test split and were removed "
                "from unlabeled_train",
                stacklevel=2,
            )
            unl = unl[~leaked]
        unl = unl.sort_values("image", kind="stable").reset_index(drop=True)

    test_set = set(test["image"])
    assert not test_set & set(train["image"]), "test overlaps labeled_train"
    assert not test_set & set(unl["image"]), "test overlaps unlabeled_train"
    return {"labeled_train": train, "unlabeled_train": unl, "test": test}


def _grouped_split(lab: pd.DataFrame, groups: Mapping[str, str], test_fraction: float, seed: int):
    from sklearn.model_selection import StratifiedGroupKFold

    ids = [str(groups.get(img) or "") or f"image:{img}" for img in lab["image"]]
    folds = StratifiedGroupKFold(n_splits=max(2, round(1 / test_fraction)), shuffle=True, random_state=seed)
    train_idx, test_idx = next(folds.split(lab, lab["label"], ids))
    return lab.iloc[train_idx], lab.iloc[test_idx]


def ssl_pool(splits: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Images for self-supervised pretraining: unlabeled_train ∪ labeled_train, never test."""
    for key in ("labeled_train", "unlabeled_train"):
        if key not in splits:
            raise DatasetError(f"ssl_pool: splits has no {key!r}")
    imgs = pd.concat(
        [_clean_str(splits["unlabeled_train"]["image"]), _clean_str(splits["labeled_train"]["image"])]
    )
    pool = sorted(set(imgs) - {""})
    if "test" in splits:
        leaked = sorted(set(pool) & set(_clean_str(splits["test"]["image"])))
        if leaked:
            raise DatasetError(
                f"ssl_pool: {len(leaked)} test image(s) are also in the training splits, "
                f"e.g. {leaked[:5]}"
            )
    return pd.DataFrame({"image": pool})


# --------------------------------------------------------------------------------------
# torch Dataset
# --------------------------------------------------------------------------------------


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
