# Stage 1-2: make the dataset's image manifest, then its splits.


rule generate_dataset:
    output:
        manifest="results/data/{dataset}/manifest.csv",
    log:
        "results/logs/generate_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_dataset/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternation(GENERATED),
    params:
        dataset=dataset_cfg,
        seed=config["seed"],
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/generate_dataset.py"


rule index_dataset:
    input:
        unpack(download_inputs),
    output:
        manifest="results/data/{dataset}/manifest.csv",
    log:
        "results/logs/index_dataset/{dataset}.log",
    benchmark:
        "results/benchmarks/index_dataset/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternation([d for d in DATASETS if d not in GENERATED]),
    params:
        dataset=dataset_cfg,
        # re-index when the manifest or a file of the folder changes (a param change re-runs the rule)
        fingerprint=dataset_fingerprint,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/index_dataset.py"


rule make_splits:
    input:
        manifest="results/data/{dataset}/manifest.csv",
    output:
        labeled_train="splits/{dataset}/labeled_train.csv",
        unlabeled_train="splits/{dataset}/unlabeled_train.csv",
        test="splits/{dataset}/test.csv",
    log:
        "results/logs/make_splits/{dataset}.log",
    benchmark:
        "results/benchmarks/make_splits/{dataset}.tsv"
    wildcard_constraints:
        dataset=_alternation([d for d in DATASETS if d not in SHIPPED_SPLITS]),
    params:
        dataset=dataset_cfg,
        image_root=lambda wc: image_root(wc.dataset),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/make_splits.py"


# Before anything trains: the splits (shipped or made) are disjoint (no test image in a training
# split), inside the dataset root, made of images that decode and of known classes; classes missing
# from a split are warned about. Every training or scoring job waits for this check; it is not
# retried (a retry cannot fix data).
rule check_splits:
    input:
        unpack(split_files),
        manifest="results/data/{dataset}/manifest.csv",
    output:
        check="results/data/{dataset}/split_check.json",
    log:
        "results/logs/check_splits/{dataset}.log",
    benchmark:
        "results/benchmarks/check_splits/{dataset}.tsv"
    params:
        dataset=dataset_cfg,
        image_root=lambda wc: image_root(wc.dataset),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/check_splits.py"
