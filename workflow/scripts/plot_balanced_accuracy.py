"""Every arm of one dataset (all methods x classifiers and the DL baseline), PNG + PDF."""
import pandas as pd

from medssl.report.figures import plot_balanced_accuracy, save_figure
from medssl.report.health import did_not_learn
from medssl.report.tables import benchmarks
from medssl.runtime import limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config = snakemake.params.config
dataset = snakemake.wildcards.dataset
ds = config["datasets"][dataset]
summary = pd.read_csv(snakemake.input.summary, dtype={"budget": str})
marks = benchmarks(ds, "classes_all", summary[summary["dataset"] == dataset], config["baselines"]["supervised"])
health = pd.read_csv(snakemake.input.health)
not_learned = {m: v for m in config["methods"] if (v := did_not_learn(health, dataset, m))}
fig = plot_balanced_accuracy(summary, dataset, ds.get("title"), marks["literature"], marks["dl"],
                             dl_untrained=marks["dl_untrained"], not_learned=not_learned)
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
for path in (snakemake.output.png, snakemake.output.pdf):
    write_provenance(path, config)
