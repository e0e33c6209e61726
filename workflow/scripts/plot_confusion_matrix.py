"""Fig. 3: confusion matrix (row-normalised, mean +- std over seeds) of the SSL arm at the chosen
budget, class frequencies, and per-class accuracy of ours, the literature's and the DL baseline's,
with bootstrap intervals over test images."""
import pandas as pd

from medssl.report.figures import plot_confusion_matrix, save_figure
from medssl.report.statistics import per_class_bootstrap
from medssl.report.tables import DL_ARM, read_fit
from medssl.runtime import limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config = snakemake.params.config
records = [read_fit(path) for path in snakemake.input.ssl]
baseline = [read_fit(path) for path in snakemake.input.dl]
first = records[0]
ds = config["datasets"][first["dataset"]]
method = snakemake.params.method  # pretrain_seeds instances are pooled under it
arm = f"{method} + {snakemake.params.labels.get(first['classifier'], first['classifier'])}"
title = f"{ds.get('title') or first['dataset']}: {arm}, at most {first['budget']} labeled images per class"
n_boot, seed = config["figures"]["confusion"]["bootstrap_samples"], config["seed"]
intervals = {}
if n_boot:
    for label, paths in [(arm, snakemake.input.ssl_predictions), (DL_ARM, snakemake.input.dl_predictions)]:
        intervals[label] = per_class_bootstrap([pd.read_csv(p, dtype=str) for p in paths], first["classes"],
                                               n_boot, seed)
fig = plot_confusion_matrix(records, title, baseline=baseline, literature_per_class=ds.get("literature_per_class"),
                            ours_label=arm, intervals=intervals)
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
for path in (snakemake.output.png, snakemake.output.pdf):
    write_provenance(path, config)
log.info("%d SSL fits, %d DL-baseline fits", len(records), len(baseline))
