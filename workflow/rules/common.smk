# Config validation, wildcard constraints, path helpers and input functions.
# Kept free of heavy imports (torch, sklearn) so that planning stays fast.
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

DATASETS = list(config["datasets"])
METHODS = config["methods"]
CLASSIFIERS = config["evaluation"]["classifiers"]
BUDGETS = [str(b) for b in config["evaluation"]["budgets"]]
SEEDS = config["evaluation"]["seeds"]
SPLITS = ["labeled_train", "unlabeled_train", "test"]


def _names(mapping, kind):
    return [name for name, entry in mapping.items() if entry["kind"] == kind]


def _alternation(names):
    # A regex that matches none of the names when the list is empty.
    return "|".join(sorted(names)) if names else "(?!x)x"


def _check_config():
    for name, ds in config["datasets"].items():
        if len(ds["classes"]) != len(set(ds["classes"])):
            raise ValueError(f"datasets.{name}.classes: class names must be unique")
    confusion = config.get("figures", {}).get("confusion", {})
    if confusion.get("method") and confusion["method"] not in METHODS:
        raise ValueError(
            f"figures.confusion.method: {confusion['method']!r} is not one of methods: {sorted(METHODS)}"
        )
    if confusion.get("classifier") and confusion["classifier"] not in CLASSIFIERS:
        raise ValueError(
            f"figures.confusion.classifier: {confusion['classifier']!r} is not one of "
            f"evaluation.classifiers: {sorted(CLASSIFIERS)}"
        )
    if "budget" in confusion and str(confusion["budget"]) not in BUDGETS:
        raise ValueError(
            f"figures.confusion.budget: {confusion['budget']!r} is not one of evaluation.budgets: {BUDGETS}"
        )


_check_config()

# Datasets whose split CSVs are not shipped in splits/<dataset>/ get them made by `make_splits`.
# Once written, splits are part of the dataset definition (delete the folder to re-split).
SHIPPED_SPLITS = [d for d in DATASETS if Path(f"splits/{d}/labeled_train.csv").exists()]


wildcard_constraints:
    dataset=_alternation(DATASETS),
    method=_alternation(METHODS),
    classifier=_alternation(CLASSIFIERS),
    budget=_alternation(BUDGETS),
    split="labeled_train|test",
    seed=r"\d+",


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def method_cfg(wildcards):
    return config["methods"][wildcards.method]


def image_root(dataset):
    """Folder the image paths of a dataset's manifest and splits are relative to."""
    source = config["datasets"][dataset]["source"]
    if source["kind"] == "generated":
        return f"results/data/{dataset}/synthetic"
    return source["root"]


def split_files(wildcards):
    d = wildcards.dataset
    files = {
        "labeled_train": f"splits/{d}/labeled_train.csv",
        "test": f"splits/{d}/test.csv",
    }
    unlabeled = f"splits/{d}/unlabeled_train.csv"
    if d not in SHIPPED_SPLITS or Path(unlabeled).exists():
        files["unlabeled_train"] = unlabeled
    return files


def dataset_images(wildcards):
    """The generated images are an output of the workflow; real images are user data."""
    if dataset_cfg(wildcards)["source"]["kind"] == "generated":
        return {"manifest": f"results/data/{wildcards.dataset}/manifest.csv"}
    return {}


def fit_outputs(dataset, method, budget):
    return expand(
        "results/fits/{dataset}/{method}/budget_{budget}/{classifier}/seed_{seed}.json",
        dataset=dataset,
        method=method,
        budget=budget,
        classifier=CLASSIFIERS,
        seed=SEEDS,
    )


def all_fit_outputs(wildcards=None):
    return [
        path
        for dataset in DATASETS
        for method in METHODS
        for budget in BUDGETS
        for path in fit_outputs(dataset, method, budget)
    ]


def confusion_fits(wildcards):
    confusion = config.get("figures", {}).get("confusion", {})
    method = confusion.get("method", next(iter(METHODS)))
    classifier = confusion.get("classifier", next(iter(CLASSIFIERS)))
    budget = str(confusion.get("budget", BUDGETS[-1]))
    return expand(
        "results/fits/{dataset}/{method}/budget_{budget}/{classifier}/seed_{seed}.json",
        dataset=wildcards.dataset,
        method=method,
        budget=budget,
        classifier=classifier,
        seed=SEEDS,
    )


def get_final_outputs():
    outputs = ["results/tables/metrics.csv", "results/tables/summary.csv"]
    for dataset in DATASETS:
        for figure in ["balanced_accuracy", "confusion_matrix"]:
            outputs += expand(
                "results/figures/{dataset}/{figure}.{ext}",
                dataset=dataset,
                figure=figure,
                ext=["png", "pdf"],
            )
    return outputs
