"""Every budget x classifier x seed of one dataset x variant x method; one JSON record and one
predictions CSV per fit, and the further label draws of evaluation.draws in one file per budget x
classifier (medssl.evaluate.draws)."""
from collections import defaultdict

import pandas as pd

from medssl.data.checks import check_disjoint, check_finite
from medssl.evaluate import draws as label_draws
from medssl.evaluate.budgets import Embeddings, restrict_classes
from medssl.evaluate.fit_sweep import run_sweep
from medssl.runtime import atomic_path, die_with_snakemake, limit_threads, setup_logging, write_json

log = setup_logging(snakemake.log[0])
die_with_snakemake()
limit_threads(1)  # each of the job's `threads` workers runs single-threaded BLAS
wc = snakemake.wildcards
params = snakemake.params
train = Embeddings.load(snakemake.input.labeled_train)
test = Embeddings.load(snakemake.input.test)
for path, emb in [(snakemake.input.labeled_train, train), (snakemake.input.test, test)]:
    check_finite(emb.features, emb.images, path)
check_disjoint({snakemake.input.labeled_train: train.images, snakemake.input.test: test.images})
_, test_variant = restrict_classes(train, test, params.min_class_size)  # the test set the fits are scored on
outputs = {p.split(f"{wc.method}/budget_", 1)[1].removesuffix(".json"): p for p in snakemake.output.metrics}
log.info("%d fits (%d budgets x %d classifiers x %d seeds) on %d worker(s)", len(outputs), len(params.budgets),
         len(params.classifiers), len(params.seeds), snakemake.threads)
# The draws files' names hold n, budgets and classifiers, so the config's draws cannot differ from them.
draws = label_draws.settings(snakemake.config["evaluation"])
draw_paths = {p.split(f"{wc.method}/budget_", 1)[1].rsplit("/", 1)[0]: p for p in snakemake.output.draws}
if draw_paths:
    log.info("and %d further label draws (seeds %d-%d) at budgets %s with %s", len(draws["seeds"]),
             draws["seeds"][0], draws["seeds"][-1], draws["budgets"], draws["classifiers"])
drawn = defaultdict(list)
# Read from the config, not a rule param: the allowlist changes no result, so it must not rerun fits.
packages = snakemake.config["evaluation"]["estimator_packages"]
for budget, name, seed, record, y_pred in run_sweep(
        snakemake.input.labeled_train, snakemake.input.test, params.budgets, params.seeds, params.classifiers,
        params.preprocessing, params.min_class_size, workers=snakemake.threads, estimator_packages=packages,
        draws=draws if draw_paths else None):
    if f"{budget}/{name}/seed_{seed}" not in outputs:  # a further draw: its record only
        drawn[f"{budget}/{name}"].append(record)
        continue
    metrics_path = outputs[f"{budget}/{name}/seed_{seed}"]
    classes = record["classes"]
    with atomic_path(metrics_path.replace(".json", ".predictions.csv")) as tmp:
        pd.DataFrame({"image": test_variant.images, "label": [classes[i] for i in test_variant.labels],
                      "prediction": [classes[i] for i in y_pred]}).to_csv(tmp, index=False)
    write_json({"dataset": wc.dataset, "variant": wc.variant, "method": wc.method, **record}, metrics_path)
fields = {"dataset": wc.dataset, "variant": wc.variant, "method": wc.method}
for key, path in draw_paths.items():
    label_draws.write(path, drawn[key], fields)
