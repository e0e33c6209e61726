# The supervised end-to-end DL baseline: the configured timm architecture trained on the labeled
# subset of every budget and seed (the same subsets as the classifier arms), early-stopped on a
# held-out 30 % of the budget. Writes the per-fit JSON + predictions CSV of fit_classifiers, as
# method "supervised", classifier "finetune", so aggregation treats it as one more arm.
# {baseline}: "supervised" (backbone.pretrained as configured), or "supervised_imagenet" (ImageNet
# initialisation, when baselines.supervised.imagenet is set; the timm weights must be downloadable or cached).


rule train_supervised:
    input:
        unpack(supervised_inputs),
        checked=split_check,
    output:
        metrics="results/fits/{dataset}/{variant}/{baseline}/budget_{budget}/finetune/seed_{seed}.json",
        predictions="results/fits/{dataset}/{variant}/{baseline}/budget_{budget}/finetune/seed_{seed}.predictions.csv",
    log:
        "results/logs/train_supervised/{dataset}/{variant}/{baseline}/budget_{budget}/seed_{seed}.log",
    benchmark:
        "results/benchmarks/train_supervised/{dataset}/{variant}/{baseline}/budget_{budget}/seed_{seed}.tsv"
    wildcard_constraints:
        baseline=_alternation(SUPERVISED_ARMS),
    params:
        dataset=dataset_cfg,
        backbone=lambda wc: {**config["backbone"], "pretrained": wc.baseline == "supervised_imagenet"
                             or config["backbone"]["pretrained"]},
        settings=SUPERVISED,
        image_root=lambda wc: image_root(wc.dataset),
        min_class_size=variant_min_class_size,
    threads: 1
    resources:
        gpu=1,
        attempt=lambda wc, attempt: attempt,  # read by medssl.runtime.fail_once
    retries: 1
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_supervised.py"
