"""DINO pretraining on the SSL pool (unlabeled_train + labeled_train, never test)."""
import os
from pathlib import Path

import torch

from medssl.augment import MultiCropAugment, MultiCropConfig
from medssl.data import ImageDataset, read_split, ssl_pool
from medssl.runtime import setup_logging
from medssl.ssl import DinoConfig, train_dino

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
ds = snakemake.params.dataset
method = snakemake.params.method
splits = {name: read_split(path, labeled=name != "unlabeled_train")
          for name, path in snakemake.input.items() if name in ("labeled_train", "unlabeled_train")}
pool = ssl_pool(splits)
log.info("SSL pool: %d images (labeled_train %d + unlabeled_train %d)", len(pool),
         len(splits["labeled_train"]), len(splits.get("unlabeled_train", [])))
dataset = ImageDataset(pool["image"].tolist(), Path(snakemake.params.image_root), ds["image_size"],
                       channels=ds.get("channels", 3))
cfg = DinoConfig.from_dict(method.get("params", {}))
augment = MultiCropAugment(MultiCropConfig.from_dict(method.get("augmentation", {})))
teacher = train_dino(cfg, snakemake.params.backbone, dataset, augment, Path(snakemake.params.work_dir), log)
os.replace(teacher, snakemake.output.backbone)
