"""A published DINO checkpoint (e.g. Nielsen et al., Zenodo 10391339) saved as backbone weights."""
from medssl.download.weights import fetch_published_weights
from medssl.runtime import limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
p = snakemake.params
fetch_published_weights(p.url, p.md5, p.download, p.backbone, snakemake.output.backbone, prefix=p.prefix, log=log)
