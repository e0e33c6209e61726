"""Every classifier x seed at one label budget; one JSON record and one predictions CSV per fit."""
from pathlib import Path

import pandas as pd

from medssl.checks import check_disjoint, check_finite
from medssl.classify import Embeddings, restrict_classes, run_budget
from medssl.runtime import atomic_path, limit_threads, setup_logging, write_json

log = setup_logging(snakemake.log[0])
limit_threads(snakemake.threads)
wc = snakemake.wildcards
min_class_size = snakemake.params.min_class_size
train = Embeddings.load(snakemake.input.labeled_train)
test = Embeddings.load(snakemake.input.test)
for path, emb in [(snakemake.input.labeled_train, train), (snakemake.input.test, test)]:
    check_finite(emb.features, emb.images, path)
check_disjoint({snakemake.input.labeled_train: train.images, snakemake.input.test: test.images})
_, test_variant = restrict_classes(train, test, min_class_size)  # the test set the fits are scored on
outputs = {(Path(p).parent.name, Path(p).name.split(".")[0]): p for p in snakemake.output.metrics}
for name, seed, record, y_pred in run_budget(train, test, wc.budget, snakemake.params.seeds,
                                             snakemake.params.classifiers, snakemake.params.preprocessing,
                                             min_class_size):
    metrics_path = outputs[(name, f"seed_{seed}")]
    classes = record["classes"]
    with atomic_path(metrics_path.replace(".json", ".predictions.csv")) as tmp:
        pd.DataFrame({"image": test_variant.images, "label": [classes[i] for i in test_variant.labels],
                      "prediction": [classes[i] for i in y_pred]}).to_csv(tmp, index=False)
    write_json({"dataset": wc.dataset, "variant": wc.variant, "method": wc.method, **record}, metrics_path)
