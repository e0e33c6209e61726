"""Generate the embedded synthetic dataset (images + manifest) deterministically from the config seed."""
from medssl.data.sources import source_for
from medssl.runtime import atomic_path, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
source = source_for(snakemake.params.dataset, snakemake.wildcards.dataset)
manifest = source.generate(snakemake.params.seed)
log.info("generated %d images (%d unlabeled) in %s", len(manifest), (manifest["label"] == "").sum(), source.image_root)
with atomic_path(snakemake.output.manifest) as tmp:
    manifest.to_csv(tmp, index=False)
