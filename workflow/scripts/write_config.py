"""The effective (validated, defaults filled) config of this run, for the report and the record."""
import yaml

from medssl.runtime import atomic_path, limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
with atomic_path(snakemake.output[0]) as tmp:
    tmp.write_text(yaml.safe_dump(snakemake.params.config, sort_keys=False))
write_provenance(snakemake.output[0], snakemake.params.config)
