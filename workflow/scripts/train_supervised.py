"""One fit of the supervised DL baseline (dataset x variant x budget x seed)."""
import pandas as pd
import torch

from medssl.data import read_split
from medssl.runtime import atomic_path, limit_threads, setup_logging, write_json
from medssl.supervised import resolve_device, run_supervised, settings_with_defaults

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
wc = snakemake.wildcards
ds = snakemake.params.dataset
settings = settings_with_defaults(snakemake.params.settings)
device = resolve_device(settings["device"])
log.info("training on %s (%d threads); settings %s", device, snakemake.threads, settings)
record, test, y_pred = run_supervised(
    read_split(snakemake.input.labeled_train), read_split(snakemake.input.test), snakemake.params.image_root,
    ds["classes"], ds["image_size"], ds.get("channels", 3), wc.budget, int(wc.seed),
    snakemake.params.min_class_size, snakemake.params.backbone, settings, device)
classes = record["classes"]
with atomic_path(snakemake.output.predictions) as tmp:
    pd.DataFrame({"image": test.images, "label": [classes[i] for i in test.labels],
                  "prediction": [classes[i] for i in y_pred]}).to_csv(tmp, index=False)
write_json({"dataset": wc.dataset, "variant": wc.variant, "method": wc.baseline, **record},
           snakemake.output.metrics)
