"""summary.csv + every trained method's health.json -> results/tables/ssl_health.csv (medssl.report.health)."""
from pathlib import Path

import pandas as pd

from medssl.report import health
from medssl.runtime import atomic_path, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
config = snakemake.params.config
summary = pd.read_csv(snakemake.input.summary, dtype={"budget": str})
records = {(Path(p).parent.parent.name, Path(p).parent.name): health.read_health(p) for p in snakemake.input.health}
table = health.health_table(summary, config["methods"], records, health.settings(config["evaluation"]),
                            backbone=config["backbone"])
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False, float_format="%.4g")
write_provenance(snakemake.output[0], config)
for row in table.itertuples():
    (log.warning if row.verdict in (health.NO_BETTER, health.NO_BETTER_THAN_START, health.COLLAPSED) else log.info)(
        "%s / %s: %s (%s)", row.dataset, row.method, row.verdict, row.reason)
