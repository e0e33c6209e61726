"""Label-efficiency curves, every method on one panel per dataset (a row per classifier), PNG + PDF."""
import pandas as pd

from medssl.report.compare import plot_method_curves, pretrained_methods, reference_methods
from medssl.report.figures import save_figure
from medssl.runtime import limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config, settings = snakemake.params.config, snakemake.params.settings
summary = pd.read_csv(snakemake.input.summary, dtype={"budget": str})
fig = plot_method_curves(summary, config["datasets"], settings["classifiers"], reference_methods(config["methods"]),
                         settings["variant"], pretrained=pretrained_methods(config["methods"]))
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
for path in (snakemake.output.png, snakemake.output.pdf):
    write_provenance(path, config)
