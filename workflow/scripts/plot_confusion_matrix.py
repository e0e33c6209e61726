"""Fig. 3: confusion matrix (row-normalised, mean +- std over seeds) of the SSL arm at the chosen
budget, class frequencies, and per-class accuracy of ours, the literature's and the DL baseline's."""
from medssl.report import plot_confusion_matrix, read_fit, save_figure
from medssl.runtime import limit_threads, setup_logging, write_provenance

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
config = snakemake.params.config
records = [read_fit(path) for path in snakemake.input.ssl]
baseline = [read_fit(path) for path in snakemake.input.dl]
first = records[0]
ds = config["datasets"][first["dataset"]]
arm = f"{first['method']} + {snakemake.params.labels.get(first['classifier'], first['classifier'])}"
title = f"{ds.get('title') or first['dataset']}: {arm}, at most {first['budget']} labeled images per class"
fig = plot_confusion_matrix(records, title, baseline=baseline, literature_per_class=ds.get("literature_per_class"),
                            ours_label=arm)
save_figure(fig, snakemake.output.png, snakemake.output.pdf)
for path in (snakemake.output.png, snakemake.output.pdf):
    write_provenance(path, config)
log.info("%d SSL fits, %d DL-baseline fits", len(records), len(baseline))
