"""Every classifier x seed at one label budget; one JSON record and one predictions CSV per fit."""
from pathlib import Path

import pandas as pd

from medssl.classify import Embeddings, run_budget
from medssl.runtime import atomic_path, setup_logging, write_json

log = setup_logging(snakemake.log[0])
wc = snakemake.wildcards
train = Embeddings.load(snakemake.input.labeled_train)
test = Embeddings.load(snakemake.input.test)
outputs = {(Path(p).parent.name, Path(p).name.split(".")[0]): p for p in snakemake.output.metrics}
for name, seed, record, y_pred in run_budget(train, test, wc.budget, snakemake.params.seeds,
                                             snakemake.params.classifiers, snakemake.params.preprocessing):
    metrics_path = outputs[(name, f"seed_{seed}")]
    with atomic_path(metrics_path.replace(".json", ".predictions.csv")) as tmp:
        pd.DataFrame({"image": test.images, "label": [test.classes[i] for i in test.labels],
                      "prediction": [test.classes[i] for i in y_pred]}).to_csv(tmp, index=False)
    write_json({"dataset": wc.dataset, "method": wc.method, **record}, metrics_path)
