# The paper's "SSL + LL": per SSL method, a linear head and the backbone's final norm trained on the
# DINO multi-crop views of the labeled subset through the frozen backbone (medssl.evaluate.linear_layer),
# every budget and seed, early-stopped on a held-out 30 % of the budget. Same record format as
# fit_classifiers, classifier "linear_layer". The fast alternative on stored embeddings is the
# classifier medssl.evaluate.estimators.LinearProbe (evaluation.classifiers).


rule train_linear_layer:
    input:
        unpack(supervised_inputs),
        backbone="results/ssl/{dataset}/{method}/backbone.pt",
        checked=split_check,
    output:
        metrics="results/fits/{dataset}/{variant}/{method}/budget_{budget}/linear_layer/seed_{seed}.json",
        predictions="results/fits/{dataset}/{variant}/{method}/budget_{budget}/linear_layer/seed_{seed}.predictions.csv",
    log:
        "results/logs/train_linear_layer/{dataset}/{variant}/{method}/budget_{budget}/seed_{seed}.log",
    benchmark:
        "results/benchmarks/train_linear_layer/{dataset}/{variant}/{method}/budget_{budget}/seed_{seed}.tsv"
    params:
        dataset=dataset_cfg,
        backbone=config["backbone"],
        settings=LINEAR_LAYER,
        views=pretraining_views,
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
        "../scripts/train_linear_layer.py"
