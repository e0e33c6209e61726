"""Deterministic stratified labeled_train / unlabeled_train / test split from the config seed."""
import pandas as pd

from medssl.data import make_splits, write_split
from medssl.runtime import limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
ds = snakemake.params.dataset
split = ds.get("split", {})
manifest = pd.read_csv(snakemake.input.manifest, dtype=str, keep_default_na=False)
labeled = manifest[manifest["label"] != ""].reset_index(drop=True)
unlabeled = manifest.loc[manifest["label"] == "", ["image"]].reset_index(drop=True)
splits = make_splits(labeled, unlabeled, split.get("test_fraction", 0.3), split.get("seed", 0))
for name, frame in splits.items():
    write_split(frame, snakemake.output[name])
    log.info("%s: %d images", name, len(frame))
