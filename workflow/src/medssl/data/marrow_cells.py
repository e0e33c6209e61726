"""Drawing one synthetic bone-marrow cell (:func:`render_cell`), for :mod:`medssl.data.synthetic`.

A single white-blood-cell crop: Beer-Lambert composition of stain densities on a pale pink
background, the class given by its morphology (cell size, nucleus size/shape/position, cytoplasm
colour, granules, chromatin texture), with nuisance (rotation, scale, stain shifts, blur, noise,
debris, red cells, neighbouring cells). Every random draw comes from the generator passed in, in a
fixed order: the same generator state gives the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter


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


def render_cell(cls: str, rng: np.random.Generator, image_size: int) -> np.ndarray:
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
