"""All per-fit records -> results/tables/metrics.csv (one row per fit) and summary.csv (over seeds)."""
from medssl.report import collect_metrics, summarize
from medssl.runtime import atomic_path, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
config = snakemake.params.config
labels = {name: spec.get("label", name) for name, spec in config["evaluation"]["classifiers"].items()}
metrics = collect_metrics(snakemake.input, labels)
summary = summarize(metrics)
for frame, path in [(metrics, snakemake.output.metrics), (summary, snakemake.output.summary)]:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_provenance(path, config)
log.info("%d fits aggregated", len(metrics))
