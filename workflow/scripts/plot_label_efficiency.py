"""Fig. 1 (every class) / Fig. 2 (classes with >= min_class_size images): one panel per dataset."""
import pandas as pd

from medssl.report.figures import plot_label_efficiency, save_figure
from medssl.report.health import did_not_learn
from medssl.runtime import limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config = snakemake.params.config
summary = pd.read_csv(snakemake.input.summary, dtype={"budget": str})
datasets = config["datasets"]
if snakemake.wildcards.figure.startswith("fig1"):
    variants = {d: "classes_all" for d in datasets}
    title = None
else:
    variants = {d: f"classes_min{ds['min_class_size']}" for d, ds in datasets.items() if ds.get("min_class_size")}
    title = "Classes with at least min_class_size labeled images"
method = snakemake.params.ssl_method
health = pd.read_csv(snakemake.input.health)
not_learned = {d: {method: v} for d in datasets if (v := did_not_learn(health, d, method))}
fig = plot_label_efficiency(summary, datasets, method, variants, title,
                            config["baselines"]["supervised"], not_learned)
for png_or_pdf in (snakemake.output.png, snakemake.output.pdf):
    write_provenance(png_or_pdf, config)
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
