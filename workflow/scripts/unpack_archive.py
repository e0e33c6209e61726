"""Unpack a verified archive into its folder atomically (temporary folder, then one rename)."""
from medssl.download import unpack
from medssl.runtime import setup_logging

log = setup_logging(snakemake.log[0])
spec = snakemake.params.unpack
unpack(snakemake.input.archive, snakemake.output.folder, member=spec.get("member"), links=spec.get("links", []),
       log=log, max_gb=snakemake.params.max_gb)
