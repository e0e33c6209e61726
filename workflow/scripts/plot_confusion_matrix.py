"""Confusion matrix (row-normalised, mean +- std over seeds) of the configured arm and budget."""
from medssl.report import plot_confusion_matrix, read_fit, save_figure
from medssl.runtime import setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
records = [read_fit(path) for path in snakemake.input]
first = records[0]
title = f"{first['dataset']}: {first['method']} + {first['classifier']}, budget {first['budget']} per class"
fig = plot_confusion_matrix(records, title)
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
write_provenance(snakemake.output.png, snakemake.params.config)
