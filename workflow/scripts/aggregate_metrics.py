"""All per-fit records -> metrics.csv (one row per fit), summary.csv (over seeds, with the paired
comparison against the DL baseline), label_efficiency.csv and paired_comparison.csv."""
from medssl.report.tables import (add_paired_to_summary, collect_metrics, label_efficiency, paired_comparison,
                                  pool_pretraining_seeds, summarize)
from medssl.runtime import atomic_path, limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config = snakemake.params.config
labels = {**snakemake.params.labels}
labels.setdefault("linear_layer", "LL")  # baselines.linear_layer, the paper's SSL + LL
compared = snakemake.params.classifier
method = snakemake.params.ssl_method
metrics = pool_pretraining_seeds(collect_metrics(snakemake.input, labels), config["methods"], labels)
summary = summarize(metrics)
paired = paired_comparison(metrics, method, compared)
tables = {
    "metrics": metrics,
    "summary": add_paired_to_summary(summary, paired, method, compared),
    "label_efficiency": label_efficiency(summary, config["datasets"], config["baselines"]["supervised"]),
    "paired_comparison": paired,
}
for name, frame in tables.items():
    path = snakemake.output[name]
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    write_provenance(path, config)
log.info("%d fits aggregated; SSL arm compared with the DL baseline: %s + %s", len(metrics), method, compared)
