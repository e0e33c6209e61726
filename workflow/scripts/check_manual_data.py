"""Check data placed by hand (layout, files per class); fail with what to download and where if absent."""
import sys

from medssl.download import DownloadError, check_manual
from medssl.runtime import setup_logging, write_json

log = setup_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
try:
    counts = check_manual(dataset, snakemake.params.manual)
except DownloadError as err:
    print(f"\n{err}\n", file=sys.__stderr__)  # on the console too, not only in the log
    raise
log.info("%s: %s verified: %s", dataset, snakemake.params.manual["root"], counts)
write_json({"dataset": dataset, "root": snakemake.params.manual["root"], "files": counts}, snakemake.output.report)
