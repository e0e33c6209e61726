"""A frozen pretrained timm model (method kind `pretrained`) saved with its data config."""
from medssl.download.pretrained import fetch_pretrained_backbone
from medssl.runtime import limit_threads, setup_logging

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
fetch_pretrained_backbone(snakemake.params.spec, snakemake.output.backbone, snakemake.output.data_config, log=log)
