# Stage 5: classifier fits on frozen embeddings, fanned out over
# dataset x class-set variant x method x label budget.
# One job fits every classifier for every seed of its budget: the preprocessing
# (PowerTransformer -> PCA) is fit once per labeled subset and shared by the classifiers,
# and process start-up (~2 s with sklearn) is paid once per job, not per fit.
# Each fit still writes its own metrics (JSON) and test predictions (CSV).
# {variant}: classes_all, or classes_min<N> = only the classes with >= N labeled images
# (the paper's "250+" evaluation; labeled pool and test set filtered, embeddings shared).


rule fit_classifiers:
    input:
        labeled_train="results/embeddings/{dataset}/{method}/labeled_train.npz",
        test="results/embeddings/{dataset}/{method}/test.npz",
    output:
        metrics=expand(
            "results/fits/{{dataset}}/{{variant}}/{{method}}/budget_{{budget}}/{classifier}/seed_{seed}.json",
            classifier=CLASSIFIERS,
            seed=SEEDS,
        ),
        predictions=expand(
            "results/fits/{{dataset}}/{{variant}}/{{method}}/budget_{{budget}}/{classifier}/seed_{seed}.predictions.csv",
            classifier=CLASSIFIERS,
            seed=SEEDS,
        ),
    log:
        "results/logs/fit_classifiers/{dataset}/{variant}/{method}/budget_{budget}.log",
    benchmark:
        "results/benchmarks/fit_classifiers/{dataset}/{variant}/{method}/budget_{budget}.tsv"
    params:
        classifiers=CLASSIFIERS,
        preprocessing=config["evaluation"].get("preprocessing", ["power_transform", "pca"]),
        seeds=SEEDS,
        min_class_size=variant_min_class_size,
    threads: 1
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/fit_classifiers.py"
