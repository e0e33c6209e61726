"""Throughput and peak memory of one DINO training step: medssl's step against a plain reference loop, on the
DINO of a shipped config.

    python benchmarks/dino_step.py --preset demo --threads 1
    python benchmarks/dino_step.py --preset paper                     # a GPU
    python benchmarks/dino_step.py --configfile config/paper.yaml config/presets/small_data_dino.yaml --dataset endo
    python benchmarks/dino_step.py --preset paper --batch 64 --out-dim 4096

The job is a config's ``methods.<method>`` (default ``dino``) on one of its datasets, as the trainer gets it
(`benchmarks/shipped.py`): every param (Sinkhorn-Knopp centring, KoLeo, clipping, precision, gradient
checkpointing, ...), the views with their sizes, the backbone. Presets:
  demo   config/config.yaml, dataset synthetic_marrow (its method_params applied);
  paper  config/paper.yaml (Nielsen et al.: XCiT-S/8, 256 px, batch 256, 2 + 5 views, 65,536 prototypes),
         its first dataset.
--configfile (several are merged in order) and --dataset take any other; without either, --backbone and
--image-size give a job of DINO's defaults. The shape flags replace the job's values: --backbone, --kwargs
(the backbone's timm kwargs), --image-size (the dataset's), --batch, --out-dim, --hidden-dim,
--bottleneck-dim (params), --global-size, --local-size, --n-local (augmentation).

The variants (each in its own process, alternating rounds) and what is timed: `benchmarks/ssl_step.py`.
In short: ours = medssl.augment.MultiCropAugment + medssl.ssl.training_step; reference =
facebookresearch/dino's ``train_one_epoch`` step written plainly (per-pair log-softmax loss, per-parameter
clipping loop, python-loop EMA; DINOv2's Sinkhorn-Knopp teacher and KoLeo term where the config uses them)
after per-image PIL / torchvision views (DataAugmentationDINO with the config's values), on the same
student, teacher, optimiser and precision. The steps timed are steps of the config's own schedules, after
every warm-up (lr, teacher temperature, last-layer freeze); only a config whose epochs end before that gets
more epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shipped import REPO, job_spec, with_overrides  # noqa: E402
from ssl_step import add_timing_args, compare, report  # noqa: E402

#: preset -> (config files, dataset (None: the first))
PRESETS = {"demo": (["config/config.yaml"], "synthetic_marrow"),
           "paper": (["config/paper.yaml"], None)}
SHAPE_FLAGS = {"batch": ("params", "batch_size"), "out_dim": ("params", "out_dim"),
               "hidden_dim": ("params", "hidden_dim"), "bottleneck_dim": ("params", "bottleneck_dim"),
               "global_size": ("augmentation", "global_size"), "local_size": ("augmentation", "local_size"),
               "n_local": ("augmentation", "n_local")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--configfile", nargs="+", help="config files, merged in order (instead of a preset)")
    p.add_argument("--dataset", help="a dataset of the config (default: the preset's, else the first)")
    p.add_argument("--method", default="dino", help="a methods entry of kind dino")
    p.add_argument("--backbone")
    p.add_argument("--kwargs", type=json.loads, help="the backbone's timm kwargs as JSON")
    p.add_argument("--image-size", type=int)
    for name in SHAPE_FLAGS:
        p.add_argument(f"--{name.replace('_', '-')}", type=int)
    add_timing_args(p, rounds=3)
    args = p.parse_args(argv)
    try:
        job = build_job(args)
    except ValueError as exc:
        p.error(str(exc))
    return args, job


def build_job(args, root: Path = REPO) -> dict:
    """The job the arguments name: a preset's or config's method entry, or DINO's defaults, with the shape
    flags applied."""
    if args.configfile:
        job = job_spec(args.configfile, args.method, args.dataset, root=root)
    elif args.preset:
        files, dataset = PRESETS[args.preset]
        job = job_spec(files, args.method, args.dataset or dataset, root=root)
    elif args.backbone and args.image_size:
        job = {"kind": "dino", "params": {}, "augmentation": {}, "image_size": args.image_size,
               "backbone": {"name": args.backbone, "kwargs": {}}, "source": "DINO's defaults"}
    else:
        raise ValueError("give --preset, --configfile, or --backbone and --image-size")
    if job["kind"] != "dino":
        raise ValueError(f"{job['source']} is of kind {job['kind']!r}: benchmarks/ssl_step.py times it")
    sections = {"params": {}, "augmentation": {}}
    for flag, (section, key) in SHAPE_FLAGS.items():
        sections[section][key] = getattr(args, flag)
    return with_overrides(job, args.backbone, args.kwargs, args.image_size, **sections)


def main(argv=None):
    args, job = parse_args(argv)
    report(compare(job, args), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
