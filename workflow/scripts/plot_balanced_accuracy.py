"""Balanced accuracy against labels per class for one dataset (PNG + PDF)."""
import pandas as pd

from medssl.report import plot_balanced_accuracy, save_figure, summarize
from medssl.runtime import setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
config = snakemake.params.config
ds = config["datasets"][snakemake.wildcards.dataset]
metrics = pd.read_csv(snakemake.input.metrics, dtype={"budget": str})
fig = plot_balanced_accuracy(summarize(metrics), snakemake.wildcards.dataset, ds.get("title"),
                             ds.get("literature_benchmark"), ds.get("dl_benchmark"))
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
write_provenance(snakemake.output.png, config)
