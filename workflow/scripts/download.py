"""Download one configured file (resumable, retried, checksum-verified before anything uses it)."""
from medssl.download import check_npz, fetch
from medssl.runtime import setup_logging

log = setup_logging(snakemake.log[0])
item, settings = snakemake.params.item, snakemake.params.settings
path = fetch(item["url"], snakemake.output[0], sha256=item.get("sha256"), md5=item.get("md5"),
             retries=settings["retries"], timeout=settings["timeout"], log=log)
if str(path).lower().endswith(".npz"):
    log.info("%s: images per split %s", path, check_npz(path))
