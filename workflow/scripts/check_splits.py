"""The splits every training job reads: disjoint, inside the dataset root, decodable, known classes."""
import pandas as pd

from medssl.data.checks import check_splits
from medssl.runtime import limit_threads, setup_logging, write_json

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
source = snakemake.params.dataset["source"]
splits = {name: snakemake.input[name] for name in ("labeled_train", "unlabeled_train", "test")
          if name in snakemake.input.keys()}
manifest = pd.read_csv(snakemake.input.manifest, dtype=str, keep_default_na=False)
allowed = [source["unlabeled_root"]] if source.get("unlabeled_root") else []
summary = check_splits(splits, manifest, snakemake.params.image_root, snakemake.params.dataset["classes"], allowed)
log.info("splits checked: %s", summary)
write_json(summary, snakemake.output.check)
