"""Each op of medssl.augment against the library ops that give it the same per-sample distribution, on
the CPU: the time of one batch of views, and whether the output is the same to the bit.

    python benchmarks/augment_ops.py                           # demo and paper scale, 1 thread
    python benchmarks/augment_ops.py --scales demo --repeat 9  # one scale, more repeats
    python benchmarks/augment_ops.py --json out.json           # also every per-view time

Scales (the batch of views that one training step augments):
  demo   batch 32 of 32-px images: 2 global views of 32 px + 2 local views of 16 px (config/config.yaml)
  paper  batch 64 of 224-px images: 2 global views of 224 px + 8 local views of 96 px (DINO's multi-crop)

Variants of each op, all given the same parameters, drawn as medssl.augment draws them:
  ours          medssl.augment's batched op (per-sample parameters as tensors); for the ImageNet
                normalisation, which medssl.augment takes from torchvision, the hand-written sub_ / div_
  tv loop       torchvision.transforms.v2.functional, one call per image with that image's parameters
                (a v2 transform draws one parameter set per call; per-sample draws need the loop)
  tv batched    torchvision's op on the whole batch, where the op has no per-sample parameter
  roi_align     torchvision.ops.roi_align (batched boxes) for the crop + resize, flips after it
  kornia        kornia's functional op with per-sample parameter tensors (only if kornia is importable)
Every op acts on every sample (probability 1), so the time is that of the op, not of a draw, and on the
chunks of samples MultiCropAugment hands it on the CPU (cpu_chunk_pixels output pixels each). The geometry
rows are the one resampling of medssl (crop, flips and, for the paper rows, rotation +-180 degrees and
perspective 0.5, in both geometry orders) against the library's chain of resamplings per image; torchvision
crops integer pixel boxes (the boxes here are ours, rounded), so those rows differ in values by design.
The photometric ops act on views of the demo's geometry; the blur has DINO's sigma 0.1-2 px (kernel 13).

Timing: process CPU time and wall time of each call, best of --repeat calls in each of --rounds rounds that
alternate the variants (a loaded machine slows every variant alike within a round), one untimed call per variant
first; the table shows the CPU time (--json has both). Its last column says whether each variant's output is
torch.equal to ours on the same input, else the largest difference. Figures and the choices made from them:
docs/performance.md#augmentation-ops.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from medssl.augment import DINO_PRESET, PAPER_PRESET, MultiCropAugment, MultiCropConfig
from medssl.augment import blur, colour
from medssl.augment.config import C_ANGLE, C_HFLIP, C_PERSP, C_SIGMA, C_VFLIP, N_DRAWS
from medssl.augment.geometry import view_geometry

SCALES = {
    "demo": dict(batch=32, image=32, global_size=32, local_size=16, n_local=2),
    "paper": dict(batch=64, image=224, global_size=224, local_size=96, n_local=8),
}
# the demo's views (config/config.yaml methods.dino.augmentation): crops and horizontal flips in the crop
DEMO_GEOMETRY = dict(global_scale=(0.5, 1.0), local_scale=(0.3, 0.6), hflip_p=0.5, vflip_p=0.0,
                     rotation_degrees=0.0, perspective_distortion=0.0, geometry_order="crop_first")
# the paper's (PAPER_PRESET), the perspective on every view so that every sample pays for it
PAPER_GEOMETRY = {**{k: PAPER_PRESET[k] for k in ("global_scale", "local_scale", "hflip_p", "vflip_p",
                                                  "rotation_degrees", "perspective_distortion")},
                  "perspective_p": (1.0, 1.0, 1.0)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", nargs="+", choices=sorted(SCALES), default=["demo", "paper"])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    return p.parse_args(argv)


def _kornia():
    try:
        import kornia
    except ImportError:
        return None
    return kornia


# ------------------------------------------------------------------ geometry
def _pixel_params(u, geom, cfg, h, w):
    """Per image: integer crop box (top, left, height, width) from our continuous box, flips, angle in
    degrees and the perspective's corners in pixels (torchvision's startpoints -> endpoints)."""
    cx, cy = (geom.center[:, 0] + 1) * w / 2, (geom.center[:, 1] + 1) * h / 2
    bw, bh = geom.half[:, 0] * w, geom.half[:, 1] * h
    boxes = [(int(round(float(y - hh / 2))), int(round(float(x - ww / 2))), max(1, int(round(float(hh)))),
              max(1, int(round(float(ww))))) for x, y, ww, hh in zip(cx, cy, bw, bh)]
    hflip = (u[:, C_HFLIP] < cfg.hflip_p).tolist()
    vflip = (u[:, C_VFLIP] < cfg.vflip_p).tolist()
    angle = ((2.0 * u[:, C_ANGLE] - 1.0) * cfg.rotation_degrees).tolist()
    disp = cfg.perspective_distortion * u[:, C_PERSP + 1:C_PERSP + 9].view(-1, 4, 2)
    return boxes, hflip, vflip, angle, disp


def _corners(disp, size_h, size_w):
    start = [[0, 0], [size_w - 1, 0], [size_w - 1, size_h - 1], [0, size_h - 1]]
    inward = [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    half = ((size_w - 1) / 2, (size_h - 1) / 2)
    end = [[int(round(s[0] + i[0] * float(d[0]) * half[0])), int(round(s[1] + i[1] * float(d[1]) * half[1]))]
           for s, i, d in zip(start, inward, disp)]
    return start, end


def tv_geometry_loop(x, size, params, cfg, rotate: bool):
    """torchvision v2, per image, in the configured order: perspective, rotate, resized_crop, flips
    (image_first) or resized_crop, flips, rotate, perspective (crop_first)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF
    boxes, hflip, vflip, angle, disp = params
    bil = InterpolationMode.BILINEAR
    out = []
    for i in range(x.shape[0]):
        y = x[i]

        def warp(y, side_h, side_w):
            if rotate:
                s, e = _corners(disp[i], side_h, side_w)
                y = TF.perspective(y, s, e, interpolation=bil, fill=0)
                y = TF.rotate(y, angle[i], interpolation=bil, fill=0)
            return y

        if cfg.geometry_order == "image_first":
            y = warp(y, x.shape[-2], x.shape[-1])
        y = TF.resized_crop(y, *boxes[i], [size, size], interpolation=bil, antialias=False)
        if hflip[i]:
            y = TF.horizontal_flip(y)
        if vflip[i]:
            y = TF.vertical_flip(y)
        if cfg.geometry_order == "crop_first":
            y = warp(y, size, size)
        out.append(y)
    return torch.stack(out)


def roi_align_geometry(x, size, geom, hflip):
    """torchvision.ops.roi_align on our continuous boxes (aligned: pixel centres as grid_sample's
    align_corners=False), then the horizontal flips."""
    from torchvision.ops import roi_align
    b, _, h, w = x.shape
    lo = (geom.center - geom.half + 1) / 2 * torch.tensor([w, h])
    hi = (geom.center + geom.half + 1) / 2 * torch.tensor([w, h])
    rois = torch.cat([torch.arange(b, dtype=torch.float32).view(-1, 1), lo, hi], dim=1)
    y = roi_align(x, rois, (size, size), spatial_scale=1.0, sampling_ratio=1, aligned=True)
    flip = torch.tensor(hflip)
    if flip.any():
        y[flip] = y[flip].flip(-1)
    return y


def kornia_geometry(kornia, x, size, geom):
    """kornia's homography_warp (normalised destination -> source homographies, as ours) of the whole
    composed map: one resampling, zero padding at the image border."""
    b = x.shape[0]
    box = torch.zeros(b, 3, 3)
    box[:, 0, 0], box[:, 1, 1], box[:, 2, 2] = geom.half[:, 0], geom.half[:, 1], 1.0
    box[:, :2, 2] = geom.center
    full = box @ geom.maps if geom.image_maps is None else geom.image_maps @ box @ geom.maps
    pad = "zeros" if geom.fill_mask else "border"
    return kornia.geometry.transform.homography_warp(x, full, (size, size), padding_mode=pad, align_corners=False)


# ------------------------------------------------------------------ colour, blur, solarize, normalise
def tv_loop(fn, x, *per_sample, **kw):
    return torch.stack([fn(x[i], *[float(a[i]) for a in per_sample], **kw) for i in range(x.shape[0])])


def photometric_rows(x, u, size, kornia):
    """(op, {variant: fn(x) -> tensor}, in_place) for every photometric op, parameters from the draws ``u``."""
    from torchvision.transforms.v2 import functional as TF
    aug = MultiCropAugment(MultiCropConfig.from_dict({**DINO_PRESET, "jitter_p": 1.0, "grayscale_p": 1.0,
                                                      "blur_p": (1.0, 1.0, 1.0), "solarize_p": (1.0, 1.0, 1.0)}))
    ops = {fn: args for _, fn, args in aug.photometric_ops(u, 3, 0, size)}
    (f_b,), (f_c,), (f_s,), (shift,) = (ops[colour.adjust_brightness], ops[colour.adjust_contrast],
                                        ops[colour.adjust_saturation], ops[colour.adjust_hue])
    sigma_lo, sigma_hi, k = aug.blur_for(size)
    k = min(k, 2 * (size - 1) + 1)
    sigma = sigma_lo + (sigma_hi - sigma_lo) * u[:, C_SIGMA]
    mean, std = list(colour.IMAGENET_MEAN), list(colour.IMAGENET_STD)
    rows = [
        ("brightness", {"ours": lambda y, s: colour.adjust_brightness(y, f_b[s]),
                        "tv loop": lambda y, s: tv_loop(TF.adjust_brightness, y, f_b[s])}, False),
        ("contrast", {"ours": lambda y, s: colour.adjust_contrast(y, f_c[s]),
                      "tv loop": lambda y, s: tv_loop(TF.adjust_contrast, y, f_c[s])}, False),
        ("saturation", {"ours": lambda y, s: colour.adjust_saturation(y, f_s[s]),
                        "tv loop": lambda y, s: tv_loop(TF.adjust_saturation, y, f_s[s])}, False),
        ("hue", {"ours": lambda y, s: colour.adjust_hue(y, shift[s]),
                 "tv loop": lambda y, s: tv_loop(TF.adjust_hue, y, shift[s])}, False),
        ("grayscale", {"ours": lambda y, s: colour.grayscale(y),
                       "tv batched": lambda y, s: TF.rgb_to_grayscale(y, num_output_channels=3).contiguous()}, False),
        (f"blur (kernel {k})", {"ours": lambda y, s: blur.gaussian_blur(y, sigma[s], k),
                                "tv loop": lambda y, s: torch.stack([TF.gaussian_blur(y[i], [k, k], [float(v)] * 2)
                                                                     for i, v in enumerate(sigma[s])])}, False),
        ("solarize", {"ours": lambda y, s: torch.minimum(y, 1.0 - y),
                      "tv batched": lambda y, s: TF.solarize(y, 0.5)}, False),
        ("normalise imagenet", {"ours": lambda y, s: y.sub_(torch.tensor(mean).view(3, 1, 1)).div_(
                                    torch.tensor(std).view(3, 1, 1)),
                                "tv batched": lambda y, s: TF.normalize(y, mean, std, inplace=True)}, True),
        ("normalise minus_one_one", {"ours": lambda y, s: y.mul_(2.0).sub_(1.0),
                                     "tv batched": lambda y, s: TF.normalize(y, [0.5] * 3, [0.5] * 3, inplace=True)},
         True),
    ]
    if kornia is not None:
        E, kf = kornia.enhance, kornia.filters
        extra = {
            "brightness": lambda y, s: E.adjust_brightness_accumulative(y, f_b[s]),
            "contrast": lambda y, s: E.adjust_contrast_with_mean_subtraction(y, f_c[s]),
            "saturation": lambda y, s: E.adjust_saturation_with_gray_subtraction(y, f_s[s]),
            "hue": lambda y, s: E.adjust_hue(y, shift[s] * (2 * math.pi)),
            "grayscale": lambda y, s: kornia.color.rgb_to_grayscale(y).expand_as(y).contiguous(),
            "solarize": lambda y, s: E.solarize(y, 0.5),
            "normalise imagenet": lambda y, s: E.normalize(y, torch.tensor(mean), torch.tensor(std)),
        }
        extra[rows[5][0]] = lambda y, s: kf.gaussian_blur2d(y, (k, k), sigma[s].view(-1, 1).expand(-1, 2).contiguous(),
                                                            border_type="reflect", separable=True)
        for name, variants, _ in rows:
            if name in extra:
                variants["kornia"] = extra[name]
    return rows


# ------------------------------------------------------------------ timing
def best_times(variants: dict, make_input, repeat: int, rounds: int) -> dict:
    """{variant: (best CPU s, best wall s)} over alternating rounds."""
    for fn in variants.values():  # untimed first call
        fn(make_input())
    best = {name: [math.inf, math.inf] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            for _ in range(repeat):
                x = make_input()
                c0, w0 = time.process_time(), time.perf_counter()
                fn(x)
                c1, w1 = time.process_time(), time.perf_counter()
                best[name][0] = min(best[name][0], c1 - c0)
                best[name][1] = min(best[name][1], w1 - w0)
    return best


def chunked(fn, chunk: int):
    """``fn(x[s], s)`` for the slices ``s`` of ``chunk`` samples in turn, as MultiCropAugment applies its ops."""
    return lambda x: [fn(x[i:i + chunk], slice(i, i + chunk)) for i in range(0, x.shape[0], chunk)]


def same(variants: dict, make_input) -> dict:
    """{variant: (torch.equal to ours, max |difference|)} on one input."""
    ref = torch.cat(variants["ours"](make_input()))
    out = {}
    for name, fn in variants.items():
        y = torch.cat(fn(make_input()))
        out[name] = (bool(torch.equal(y, ref)), float((y - ref).abs().max()) if y.shape == ref.shape else math.nan)
    return out


def run_scale(name: str, args, kornia) -> list[dict]:
    s = SCALES[name]
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, 256, (s["batch"], 3, s["image"], s["image"]), dtype=torch.uint8, generator=g)
    x = images.float().div_(255.0)
    views = {"global": (s["global_size"], 2), "local": (s["local_size"], s["n_local"])}
    rows = {}

    def record(op, kind, variants, make_input, n):
        chunk = max(1, MultiCropAugment.cpu_chunk_pixels // (size * size))
        variants = {v: chunked(fn, chunk) for v, fn in variants.items()}
        times = best_times(variants, make_input, args.repeat, args.rounds)
        eq = same(variants, make_input)
        row = rows.setdefault(op, {"op": op, "scale": name, "variants": {}})
        for v, (cpu, wall) in times.items():
            d = row["variants"].setdefault(v, {"cpu_ms": 0.0, "wall_ms": 0.0, "same": True, "max_diff": 0.0})
            d["cpu_ms"] += 1e3 * cpu * n
            d["wall_ms"] += 1e3 * wall * n
            d[f"{kind}_cpu_ms"] = 1e3 * cpu
            d["same"] = d["same"] and eq[v][0]
            d["max_diff"] = max(d["max_diff"], eq[v][1])

    for kind, (size, n) in views.items():
        if n == 0:
            continue
        is_global = kind == "global"
        u = torch.rand(s["batch"], N_DRAWS, generator=g)
        for label, extra in (("demo geometry (crop, hflip)", DEMO_GEOMETRY),
                             ("paper geometry, image_first", {**PAPER_GEOMETRY, "geometry_order": "image_first"}),
                             ("paper geometry, crop_first", {**PAPER_GEOMETRY, "geometry_order": "crop_first"})):
            cfg = MultiCropConfig.from_dict({**DINO_PRESET, **extra})
            scale = cfg.global_scale if is_global else cfg.local_scale
            rotate = cfg.rotation_degrees > 0
            geom = view_geometry(u, cfg, cfg.perspective_p[0], scale, x.shape[-2], x.shape[-1])
            params = _pixel_params(u, geom, cfg, x.shape[-2], x.shape[-1])
            variants = {
                "ours": lambda y, s, cfg=cfg, scale=scale: view_geometry(
                    u[s], cfg, cfg.perspective_p[0], scale, x.shape[-2], x.shape[-1]).resample(y, size),
                "tv loop": lambda y, s, cfg=cfg, params=params, rotate=rotate: tv_geometry_loop(
                    y, size, [p[s] for p in params], cfg, rotate),
            }
            if not rotate:
                variants["roi_align"] = lambda y, s, geom=geom, params=params: roi_align_geometry(
                    y, size, geom.rows(s.start, s.stop), params[1][s])
            if kornia is not None:
                variants["kornia"] = lambda y, s, geom=geom: kornia_geometry(kornia, y, size,
                                                                             geom.rows(s.start, s.stop))
            record(label, kind, variants, lambda: x, n)

        views_x = view_geometry(u, MultiCropConfig.from_dict({**DINO_PRESET, **DEMO_GEOMETRY}), 0.0,
                                (0.5, 1.0) if is_global else (0.3, 0.6), x.shape[-2], x.shape[-1]).resample(x, size)
        for op, variants, in_place in photometric_rows(views_x, u, size, kornia):
            record(op, kind, variants, (lambda: views_x.clone()) if in_place else (lambda: views_x), n)
    return list(rows.values())


def table(rows: list[dict]) -> str:
    names = ["ours", "tv loop", "tv batched", "roi_align", "kornia"]
    lines = ["| scale | op | " + " | ".join(f"{n} ms" for n in names) + " | bit-identical to ours |",
             "|---|---|" + "---|" * (len(names) + 1)]
    for r in rows:
        v = r["variants"]
        cells = []
        for n in names:
            if n not in v:
                cells.append("")
                continue
            ratio = "" if n == "ours" else f" ({v[n]['cpu_ms'] / v['ours']['cpu_ms']:.2g}x)"
            cells.append(f"{v[n]['cpu_ms']:.2f}{ratio}")
        ident = ", ".join(f"{n}: " + ("yes" if v[n]["same"] else f"no ({v[n]['max_diff']:.1g})")
                          for n in names[1:] if n in v)
        lines.append(f"| {r['scale']} | {r['op']} | " + " | ".join(cells) + f" | {ident} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    kornia = _kornia()
    rows = []
    for name in args.scales:
        rows += run_scale(name, args, kornia)
    s = {k: SCALES[k] for k in args.scales}
    print(f"# CPU ms per batch of views (best of {args.repeat} x {args.rounds} rounds, {args.threads} thread(s); "
          f"kornia {'%s' % kornia.__version__ if kornia else 'not installed'}): " +
          "; ".join(f"{k}: batch {v['batch']}, 2 x {v['global_size']} px + {v['n_local']} x {v['local_size']} px"
                    for k, v in s.items()))
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
