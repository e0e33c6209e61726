# Config validation, wildcard constraints, path helpers and input functions.
# Kept free of heavy imports (torch, sklearn) so that planning stays fast.
import sys
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

sys.path.insert(0, str(Path(workflow.main_snakefile).parent / "src"))  # the medssl of this checkout
from medssl.data.checks import dataset_fingerprint as _fingerprint  # noqa: E402
from medssl.data.sources import source_for  # noqa: E402
from medssl.ssl import kinds as medssl_kinds  # noqa: E402


def _expand_pretrain_seeds(methods):
    """A method with `pretrain_seeds: [a, b, ...]` becomes one method instance per seed, named
    `<method>_seed<a>`, each its own pretraining (params.seed / seed set to it) with its own
    results/ssl/... and fits; `family` and `pretrain_seed` tell aggregation to pool them under
    `<method>`, so the summary's intervals include the pretraining variance."""
    out = {}
    for name, entry in methods.items():
        seeds = entry.get("pretrain_seeds")
        if not seeds:
            out[name] = entry
            continue
        if entry["kind"] == "published":
            raise ValueError(f"methods.{name}.pretrain_seeds: published weights have no pretraining to repeat")
        for seed in seeds:
            instance = {**{k: v for k, v in entry.items() if k != "pretrain_seeds"},
                        "family": name, "pretrain_seed": int(seed)}
            if entry["kind"] != "random_init":  # a trained kind: its params.seed
                instance["params"] = {**(entry.get("params") or {}), "seed": int(seed)}
            else:
                instance["seed"] = int(seed)
            instance_name = f"{name}_seed{seed}"
            if instance_name in methods:
                raise ValueError(f"methods.{name}.pretrain_seeds: {instance_name!r} is also a method name")
            out[instance_name] = instance
    return out


config["methods"] = _expand_pretrain_seeds(config["methods"])

DATASETS = list(config["datasets"])
SOURCES = {d: source_for(config["datasets"][d], d) for d in DATASETS}  # medssl.data.sources: where the images are
GENERATED = [d for d in DATASETS if SOURCES[d].generated]  # images drawn by rule generate_dataset
METHODS = config["methods"]
CLASSIFIERS = config["evaluation"]["classifiers"]
CLASSIFIER_LABELS = {name: spec.get("label", name) for name, spec in CLASSIFIERS.items()}  # label: default the name
BUDGETS = [str(b) for b in config["evaluation"]["budgets"]]
# figures.confusion: the arm of Fig. 3 and of the paired comparison with the DL baseline. Its defaults depend
# on other keys: the first classifier, the last budget (the method, the first DINO method's family: ssl_method).
CONFUSION = {"classifier": next(iter(CLASSIFIERS)), "budget": BUDGETS[-1], **config["figures"]["confusion"]}
SEEDS = config["evaluation"]["seeds"]
# The supervised end-to-end DL baseline is an arm of its own: method "supervised", classifier
# "finetune" in results/fits/ (rules/supervised.smk).
SUPERVISED = config["baselines"]["supervised"]
SUPERVISED_BUDGETS = [str(b) for b in SUPERVISED.get("budgets") or BUDGETS]
SUPERVISED_SEEDS = SUPERVISED.get("seeds") or SEEDS
# baselines.supervised.imagenet adds a second baseline, the backbone ImageNet-initialised (method
# "supervised_imagenet"); "supervised" keeps backbone.pretrained (random init in the SmallDataSSL config).
SUPERVISED_ARMS = ["supervised"] + (["supervised_imagenet"] if SUPERVISED.get("imagenet") else [])


# The paper's "SSL + LL": a linear head (+ the final norm) trained on images through each SSL
# method's frozen backbone (rules/linear_layer.smk), classifier "linear_layer" in results/fits/.
LINEAR_LAYER = config["baselines"]["linear_layer"]
# (not a frozen pretrained model of its own architecture and preprocessing: kind `pretrained`)
LINEAR_LAYER_METHODS = LINEAR_LAYER.get("methods") or [m for m, e in METHODS.items() if e["kind"] != "pretrained"]


def method_instances(name):
    """The methods config entries made of `name`: its pretrain_seeds instances, or itself."""
    return [m for m in METHODS if family(m) == name]


def family(method):
    """The method a config entry was written as: a pretrain_seeds instance's, else its own name."""
    return METHODS[method].get("family", method)


LINEAR_LAYER_METHODS = [m for name in LINEAR_LAYER_METHODS for m in method_instances(name) or [name]]
LINEAR_LAYER_BUDGETS = [str(b) for b in LINEAR_LAYER.get("budgets") or BUDGETS]
LINEAR_LAYER_SEEDS = LINEAR_LAYER.get("seeds") or SEEDS


def variants(dataset):
    """Class-set variants of a dataset's evaluation: every class, and, when the dataset sets
    min_class_size, only the classes with at least that many labeled images (the paper's "250+")."""
    size = config["datasets"][dataset].get("min_class_size")
    return ["classes_all"] + ([f"classes_min{size}"] if size else [])


def variant_min_class_size(wildcards):
    """classes_all -> None, classes_min250 -> 250."""
    v = wildcards.variant
    return None if v == "classes_all" else int(v.removeprefix("classes_min"))


def ssl_method():
    """The SSL method of the paper-style figures and of the paired comparison."""
    first = next(iter(_names(METHODS, "dino") or METHODS))
    return CONFUSION.get("method") or family(first)


def _names(mapping, kind):
    return [name for name, entry in mapping.items() if entry["kind"] == kind]


# Method kinds that the pretrain_ssl rule trains (medssl.ssl.kinds imports no torch).
SSL_KINDS = list(medssl_kinds.KINDS)


def _trainable(mapping):
    return [name for name, entry in mapping.items() if entry["kind"] in SSL_KINDS]


def _alternation(names):
    # A regex that matches none of the names when the list is empty.
    return "|".join(sorted(names)) if names else "(?!x)x"


def _check_config():
    if CONFUSION.get("method") and not method_instances(CONFUSION["method"]):
        raise ValueError(
            f"figures.confusion.method: {CONFUSION['method']!r} is not one of methods: {sorted(METHODS)}"
        )
    if CONFUSION["classifier"] not in CLASSIFIERS:
        raise ValueError(
            f"figures.confusion.classifier: {CONFUSION['classifier']!r} is not one of "
            f"evaluation.classifiers: {sorted(CLASSIFIERS)}"
        )
    if str(CONFUSION["budget"]) not in BUDGETS:
        raise ValueError(
            f"figures.confusion.budget: {CONFUSION['budget']!r} is not one of evaluation.budgets: {BUDGETS}"
        )
    for name in ["supervised", "supervised_imagenet"]:
        if name in METHODS:
            raise ValueError(f"methods.{name}: the name is taken by a supervised DL baseline; rename the method")
    for name in _names(METHODS, "published"):
        missing = sorted(set(DATASETS) - set(METHODS[name]["urls"]))
        if missing:
            raise ValueError(f"methods.{name}.urls: no published checkpoint for dataset(s) {missing}")
    extra = sorted(set(SUPERVISED_BUDGETS) - set(BUDGETS))
    if extra:
        raise ValueError(
            f"baselines.supervised.budgets: {extra} not in evaluation.budgets {BUDGETS} "
            "(the arms are compared on the same budgets)"
        )
    extra = sorted(set(SUPERVISED_SEEDS) - set(SEEDS))
    if extra:
        raise ValueError(f"baselines.supervised.seeds: {extra} not in evaluation.seeds {SEEDS}")
    _check_linear_layer()


def _check_linear_layer():
    if not LINEAR_LAYER["enabled"]:
        return
    if "linear_layer" in CLASSIFIERS:
        raise ValueError("evaluation.classifiers.linear_layer: the name is taken by baselines.linear_layer; rename it")
    for key, values, allowed, where in [
        ("methods", LINEAR_LAYER_METHODS, list(METHODS), "methods"),
        ("budgets", LINEAR_LAYER_BUDGETS, BUDGETS, "evaluation.budgets"),
        ("seeds", LINEAR_LAYER_SEEDS, SEEDS, "evaluation.seeds"),
    ]:
        extra = [v for v in values if v not in allowed]
        if extra:
            raise ValueError(f"baselines.linear_layer.{key}: {extra} not in {where} {allowed}")
    frozen = [m for m in LINEAR_LAYER_METHODS if METHODS[m]["kind"] == "pretrained"]
    if frozen:
        raise ValueError(f"baselines.linear_layer.methods: {frozen} are of kind pretrained (their own model and "
                         "preprocessing), which the linear layer arm does not support; evaluate them with "
                         "evaluation.classifiers (e.g. medssl.evaluate.estimators.LinearProbe)")


_check_config()

# The SmallDataSSL-style method comparison (rules compare_methods, plot_method_comparison), when the
# config sets figures.comparison; its classifiers and budget are checked here, at plan time.
if "comparison" in config["figures"]:
    from medssl.report.compare import comparison_settings

    COMPARISON = comparison_settings(config, CLASSIFIER_LABELS)
else:
    COMPARISON = None

# --- plan-time checks of what the config names (medssl.checks; imports sklearn and timm lazily) ---
from medssl import checks as medssl_checks  # noqa: E402

_config_errors = medssl_checks.dataset_errors(config) + medssl_checks.integer_errors(config)
_config_errors += medssl_checks.config_errors(config, cache=".snakemake/medssl/config_checks.txt")
if _config_errors:
    raise ValueError("config errors:\n  " + "\n  ".join(_config_errors))

from medssl.report.health import settings as _health_settings  # noqa: E402

_health_settings(config["evaluation"])  # evaluation.health's budgets and classifiers, checked at plan time

from medssl.evaluate.draws import outputs as _draw_outputs, settings as _draw_settings  # noqa: E402

# evaluation.draws: further label draws at the small budgets (medssl.evaluate.draws), checked at plan time; None without it
DRAWS = _draw_settings(config["evaluation"])


def draw_outputs(dataset, variant, method):
    """The fit job's files of further label draws (one per drawn budget x draws classifier)."""
    return _draw_outputs(DRAWS, f"results/fits/{dataset}/{variant}/{method}")


def dataset_fingerprint(wildcards):
    """index_dataset's param: changes when the manifest or a file of a folder dataset changes."""
    return _fingerprint(SOURCES[wildcards.dataset].files())


def split_check(wildcards):
    """The check every training or scoring job waits for (rule check_splits)."""
    return f"results/data/{wildcards.dataset}/split_check.json"

# Datasets whose split CSVs are not shipped in splits/<dataset>/ get them made by `make_splits`.
# Once written, splits are part of the dataset definition (delete the folder to re-split).
# Split folders: splits/<dataset>/ of the working directory, else the one shipped beside this
# workflow (so that a host workflow that uses this one as a module finds the shipped splits too).
_WORKFLOW_SPLITS = Path(workflow.current_basedir).parents[1] / "splits"
SPLIT_DIRS = {
    d: (f"splits/{d}" if Path(f"splits/{d}/labeled_train.csv").exists()
        or not (_WORKFLOW_SPLITS / d / "labeled_train.csv").exists() else str(_WORKFLOW_SPLITS / d))
    for d in DATASETS
}
SHIPPED_SPLITS = [d for d in DATASETS if Path(SPLIT_DIRS[d], "labeled_train.csv").exists()]


wildcard_constraints:
    dataset=_alternation(DATASETS),
    method=_alternation(METHODS),
    classifier=_alternation(CLASSIFIERS),
    budget=_alternation(BUDGETS),
    variant=r"classes_all|classes_min\d+",
    split="labeled_train|test",
    seed=r"\d+",


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def method_cfg(wildcards):
    return config["methods"][wildcards.method]


def pretrain_method_cfg(wildcards):
    """The method entry with the dataset's `method_params` for it (the demo sizes its own DINO run)."""
    return medssl_checks.with_dataset_params(METHODS[wildcards.method], dataset_cfg(wildcards), wildcards.method)


def pretrain_threads(wildcards):
    """Half the cores of a local run, at most 8: the jobs that do not need the SSL weights (random_init's
    embedding and fits, the DL baseline) run beside pretraining instead of after it. Cluster profiles
    set it with `set-threads`."""
    cores = getattr(workflow.global_resources.get("_cores"), "value", None) or 16
    return max(1, min(8, int(cores) // 2))


def pretrained_spec(wildcards):
    """The timm model of a method of kind `pretrained` (medssl.download.pretrained.model_spec)."""
    from medssl.download.pretrained import model_spec  # imports torch only when a model is built

    return model_spec(METHODS[wildcards.method], config["backbone"])


def method_backbone(wildcards):
    """The architecture the embedding loads backbone.pt into: the config's backbone, or the
    pretrained method's own model."""
    if METHODS[wildcards.method]["kind"] != "pretrained":
        return config["backbone"]
    spec = pretrained_spec(wildcards)
    return {"name": spec["name"], "pretrained": False, "kwargs": spec["kwargs"]}


def embed_weights(wildcards):
    """The weights the embedding reads (and a pretrained model's data config)."""
    if METHODS[wildcards.method]["kind"] == "pretrained":
        folder = f"results/pretrained/{wildcards.method}"
        return {"backbone": f"{folder}/backbone.pt", "data_config": f"{folder}/data_config.json"}
    return {"backbone": f"results/ssl/{wildcards.dataset}/{wildcards.method}/backbone.pt"}


def image_root(dataset):
    """Folder the image paths of a dataset's manifest and splits are relative to."""
    return SOURCES[dataset].image_root


def split_files(wildcards):
    folder = SPLIT_DIRS[wildcards.dataset]
    files = {
        "labeled_train": f"{folder}/labeled_train.csv",
        "test": f"{folder}/test.csv",
    }
    unlabeled = f"{folder}/unlabeled_train.csv"
    if wildcards.dataset not in SHIPPED_SPLITS or Path(unlabeled).exists():
        files["unlabeled_train"] = unlabeled
    return files


def dataset_images(wildcards):
    """The generated images are an output of the workflow; real images are user data."""
    if wildcards.dataset in GENERATED:
        return {"manifest": f"results/data/{wildcards.dataset}/manifest.csv"}
    return download_inputs(wildcards)  # rules/download.smk: {} for data already on disk


def supervised_inputs(wildcards):
    """The DL baseline reads the images of the labeled pool and the test set (no SSL pool)."""
    folder = SPLIT_DIRS[wildcards.dataset]
    return {
        "labeled_train": f"{folder}/labeled_train.csv",
        "test": f"{folder}/test.csv",
        **dataset_images(wildcards),
    }


def fit_outputs(dataset, variant, method, budget):
    return expand(
        "results/fits/{dataset}/{variant}/{method}/budget_{budget}/{classifier}/seed_{seed}.json",
        dataset=dataset,
        variant=variant,
        method=method,
        budget=budget,
        classifier=CLASSIFIERS,
        seed=SEEDS,
    )


def supervised_outputs(dataset, variant, budgets=None, arms=None):
    if not SUPERVISED["enabled"]:
        return []
    return expand(
        "results/fits/{dataset}/{variant}/{baseline}/budget_{budget}/finetune/seed_{seed}.json",
        dataset=dataset,
        variant=variant,
        baseline=arms or SUPERVISED_ARMS,
        budget=SUPERVISED_BUDGETS if budgets is None else [b for b in budgets if b in SUPERVISED_BUDGETS],
        seed=SUPERVISED_SEEDS,
    )


def linear_layer_outputs(dataset, variant):
    if not LINEAR_LAYER["enabled"]:
        return []
    return expand(
        "results/fits/{dataset}/{variant}/{method}/budget_{budget}/linear_layer/seed_{seed}.json",
        dataset=dataset,
        variant=variant,
        method=LINEAR_LAYER_METHODS,
        budget=LINEAR_LAYER_BUDGETS,
        seed=LINEAR_LAYER_SEEDS,
    )


def pretraining_views(wildcards):
    """The kind and `augmentation` of the backbone the method's embedding and linear-layer arm feed: its own,
    or for an untrained kind without views of its own the SSL method's, so that the untrained reference sees
    its inputs normalised as the SSL method's backbone does (medssl.ssl.kinds.pretraining_views)."""
    own = METHODS[wildcards.method]
    entry = own if own["kind"] in SSL_KINDS or own.get("augmentation") else METHODS[method_instances(ssl_method())[0]]
    return {"kind": entry["kind"], "augmentation": entry.get("augmentation") or {}}


def all_fit_outputs(wildcards=None):
    return [
        path
        for dataset in DATASETS
        for variant in variants(dataset)
        for path in [
            *(p for method in METHODS for budget in BUDGETS for p in fit_outputs(dataset, variant, method, budget)),
            *(p for method in METHODS for p in draw_outputs(dataset, variant, method)),
            *supervised_outputs(dataset, variant),
            *linear_layer_outputs(dataset, variant),
        ]
    ]


def confusion_budget():
    return str(CONFUSION["budget"])


def confusion_fits(wildcards):
    """Fig. 3: the SSL arm's fits at the chosen budget, and the DL baseline's at that budget if it ran."""
    classifier = CONFUSION["classifier"]
    return {
        "ssl": expand(
            "results/fits/{dataset}/classes_all/{method}/budget_{budget}/{classifier}/seed_{seed}.json",
            dataset=wildcards.dataset,
            method=method_instances(ssl_method()),
            budget=confusion_budget(),
            classifier=classifier,
            seed=SEEDS,
        ),
        "dl": supervised_outputs(wildcards.dataset, "classes_all", [confusion_budget()], ["supervised"]),
    }


def confusion_predictions(wildcards):
    """The test predictions of the Fig. 3 fits, for the per-class bootstrap intervals."""
    return {f"{arm}_predictions": [p.replace(".json", ".predictions.csv") for p in paths]
            for arm, paths in confusion_fits(wildcards).items()}


TABLES = ["metrics", "summary", "label_efficiency", "paired_comparison", "ssl_health"]


def get_final_outputs():
    outputs = [f"results/tables/{table}.csv" for table in TABLES]
    outputs += expand("results/figures/fig1_balanced_accuracy.{ext}", ext=["png", "pdf"])
    if any(config["datasets"][d].get("min_class_size") for d in DATASETS):
        outputs += expand("results/figures/fig2_balanced_accuracy_min_class_size.{ext}", ext=["png", "pdf"])
    for dataset in DATASETS:
        for figure in ["balanced_accuracy", "confusion_matrix"]:
            outputs += expand(
                "results/figures/{dataset}/{figure}.{ext}",
                dataset=dataset,
                figure=figure,
                ext=["png", "pdf"],
            )
    if COMPARISON is not None:
        outputs += ["results/tables/comparison.csv", "results/tables/comparison_formatted.csv"]
        outputs += expand("results/figures/method_comparison.{ext}", ext=["png", "pdf"])
    outputs.append("results/config.yaml")
    return outputs


def ssl_health_inputs(wildcards=None):
    """The health table reads the summary and every trained method's health.json."""
    return {
        "summary": "results/tables/summary.csv",
        "health": expand("results/ssl/{dataset}/{method}/health.json", dataset=DATASETS, method=_trainable(METHODS)),
    }
