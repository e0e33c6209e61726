"""Check data placed by hand (layout, files per class); fail with what to download and where if absent."""
from medssl.download import check_manual
from medssl.runtime import setup_logging, write_json

log = setup_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
counts = check_manual(dataset, snakemake.params.manual)
log.info("%s: %s verified: %s", dataset, snakemake.params.manual["root"], counts)
write_json({"dataset": dataset, "root": snakemake.params.manual["root"], "files": counts}, snakemake.output.report)
