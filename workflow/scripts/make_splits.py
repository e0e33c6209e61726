"""Deterministic stratified labeled_train / unlabeled_train / test split from the config seed."""
import pandas as pd

from medssl.data import make_splits, official_splits, write_split
from medssl.runtime import limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
split = ds.get("split", {})
manifest = pd.read_csv(snakemake.input.manifest, dtype=str, keep_default_na=False)
labeled = manifest[manifest["label"] != ""].reset_index(drop=True)
unlabeled = manifest.loc[manifest["label"] == "", ["image"]].reset_index(drop=True)
if ds["source"]["kind"] == "npz" or ds["source"].get("split_folders"):  # the official train/val/test splits
    splits = official_splits(manifest, ds["source"].get("val_split", "unlabeled_train"))
else:
    groups = dict(zip(manifest["image"], manifest["group"])) if split.get("group_column") else None
    splits = make_splits(labeled, unlabeled, split.get("test_fraction", 0.3), split.get("seed", 0), groups)
for name, frame in splits.items():
    write_split(frame, snakemake.output[name])
    log.info("%s: %d images", name, len(frame))
