"""Method x dataset comparison at one label budget (accuracy / F1 / AUC, mean ± std over seeds):
a tidy numeric table and the paper-style formatted one."""
import pandas as pd

from medssl.report.compare import comparison_table, format_comparison
from medssl.runtime import atomic_path, limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config, settings = snakemake.params.config, snakemake.params.settings
summary = pd.read_csv(snakemake.input.summary, dtype={"budget": str})
table = comparison_table(summary, settings["budget"], settings["variant"], list(settings["classifiers"]))
formatted = format_comparison(table, config["datasets"], settings["classifiers"], digits=settings["digits"])
for path, frame, fmt in [(snakemake.output.table, table, "%.6g"), (snakemake.output.formatted, formatted, None)]:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format=fmt)
    write_provenance(path, config)
log.info("comparison at budget %s: %d rows\n%s", settings["budget"], len(table), formatted.to_string(index=False))
