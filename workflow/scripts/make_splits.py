"""Deterministic stratified labeled_train / unlabeled_train / test split from the config seed, or the
dataset's official splits (medssl.data.sources.Source.splits)."""
import pandas as pd

from medssl.data.sources import source_for
from medssl.data.splits import write_split
from medssl.runtime import limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
source = source_for(snakemake.params.dataset, snakemake.wildcards.dataset)
manifest = pd.read_csv(snakemake.input.manifest, dtype=str, keep_default_na=False)
splits = source.splits(manifest)
for name, frame in splits.items():
    write_split(frame, snakemake.output[name])
    log.info("%s: %d images", name, len(frame))
