# Stage 5: classifier fits on frozen embeddings, one job per dataset x class-set variant x method.
# The job fits every classifier for every budget and seed (medssl.evaluate.fit_sweep): the preprocessing
# (PowerTransformer -> PCA) is fit once per labeled subset and shared by the classifiers, process
# start-up (2-6 s of imports) is paid once per job, not per fit, and the (budget, seed) tasks run,
# largest first, on the job's `threads` worker processes (profiles/slurm sets 8).
# Each fit still writes its own metrics (JSON) and test predictions (CSV); the further label draws
# of evaluation.draws (medssl.evaluate.draws) run in the same job, one records file per budget x classifier.
# {variant}: classes_all, or classes_min<N> = only the classes with >= N labeled images
# (the paper's "250+" evaluation; labeled pool and test set filtered, embeddings shared).


rule fit_classifiers:
    input:
        labeled_train="results/embeddings/{dataset}/{method}/labeled_train.npz",
        test="results/embeddings/{dataset}/{method}/test.npz",
    output:
        metrics=expand(
            "results/fits/{{dataset}}/{{variant}}/{{method}}/budget_{budget}/{classifier}/seed_{seed}.json",
            budget=BUDGETS,
            classifier=CLASSIFIERS,
            seed=SEEDS,
        ),
        predictions=expand(
            "results/fits/{{dataset}}/{{variant}}/{{method}}/budget_{budget}/{classifier}/seed_{seed}.predictions.csv",
            budget=BUDGETS,
            classifier=CLASSIFIERS,
            seed=SEEDS,
        ),
        # evaluation.draws: the further label draws, one file per drawn budget x classifier
        draws=draw_outputs("{dataset}", "{variant}", "{method}"),
    log:
        "results/logs/fit_classifiers/{dataset}/{variant}/{method}.log",
    benchmark:
        "results/benchmarks/fit_classifiers/{dataset}/{variant}/{method}.tsv"
    params:
        classifiers=CLASSIFIERS,
        preprocessing=config["evaluation"]["preprocessing"],
        budgets=BUDGETS,
        seeds=SEEDS,
        min_class_size=variant_min_class_size,
    threads: 1
    # The SSL methods' fits lead to the figures; random_init's can wait (see rules/ssl.smk).
    priority: 10
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/fit_classifiers.py"
