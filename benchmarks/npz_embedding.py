"""Embedding throughput through the npz source (MedMNIST format): decode from the arrays, resize,
normalise, frozen backbone forward. Feeds the MedMNIST time estimate (docs/performance.md#medmnist-how-long-it-takes).

    python benchmarks/npz_embedding.py --config config/medmnist.yaml --images 4096 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from medssl.backbone import build_backbone
from medssl.data.dataset import ImageDataset
from medssl.embed import extract_features


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=["config/medmnist.yaml"], nargs="+")
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = {}
    for path in args.config:
        for key, value in yaml.safe_load(Path(path).read_text()).items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    spec = config["backbone"]
    size = next(iter(config["datasets"].values()))["image_size"]
    backbone = build_backbone(spec["name"], pretrained=False, **spec["kwargs"])
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "x.npz"
        rng = np.random.default_rng(0)
        arrays = {f"{s}_images": rng.integers(0, 256, (args.images if s == "test" else 1, size, size, 3), dtype=np.uint8)
                  for s in ("train", "val", "test")}
        np.savez_compressed(npz, **arrays)
        ids = [f"test/{i:06d}" for i in range(args.images)]
        dataset = ImageDataset(ids, npz, size)
        extract_features(backbone, ImageDataset(ids[:256], npz, size), "imagenet", device=torch.device(args.device))
        start = time.perf_counter()
        feats = extract_features(backbone, dataset, "imagenet", device=torch.device(args.device))
        seconds = time.perf_counter() - start
    print(f"{spec['name']} {spec['kwargs']} at {size} px on {args.device} ({args.threads} threads): "
          f"{len(feats)} images in {seconds:.1f} s = {len(feats) / seconds:.0f} img/s")


if __name__ == "__main__":
    main()
