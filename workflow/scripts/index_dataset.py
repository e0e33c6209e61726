"""Index a dataset on disk (class folders, a CSV manifest, a .npz) and check every image decodes."""
from pathlib import Path

from medssl.data.images import check_images
from medssl.data.sources import source_for
from medssl.runtime import atomic_path, die_with_snakemake, limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
die_with_snakemake()
limit_threads(snakemake.threads)
source = source_for(snakemake.params.dataset, snakemake.wildcards.dataset)
root = Path(source.image_root)
manifest = source.index()
check_images(manifest, root, source.classes)
log.info("indexed %d images under %s", len(manifest), root)
with atomic_path(snakemake.output.manifest) as tmp:
    manifest.to_csv(tmp, index=False)
