# Stage 6-7: one tidy table of every fit, a summary over seeds, and the figures.


rule aggregate_metrics:
    input:
        all_fit_outputs,
    output:
        metrics=report(
            "results/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        summary=report(
            "results/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate_metrics/aggregate_metrics.log",
    benchmark:
        "results/benchmarks/aggregate_metrics/aggregate_metrics.tsv"
    params:
        config=config,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/aggregate_metrics.py"


rule plot_balanced_accuracy:
    input:
        metrics="results/tables/metrics.csv",
    output:
        png=report(
            "results/figures/{dataset}/balanced_accuracy.png",
            caption="../report/balanced_accuracy.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        pdf="results/figures/{dataset}/balanced_accuracy.pdf",
    log:
        "results/logs/plot_balanced_accuracy/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_balanced_accuracy/{dataset}.tsv"
    params:
        config=config,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/plot_balanced_accuracy.py"


rule plot_confusion_matrix:
    input:
        confusion_fits,
    output:
        png=report(
            "results/figures/{dataset}/confusion_matrix.png",
            caption="../report/confusion_matrix.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        pdf="results/figures/{dataset}/confusion_matrix.pdf",
    log:
        "results/logs/plot_confusion_matrix/{dataset}.log",
    benchmark:
        "results/benchmarks/plot_confusion_matrix/{dataset}.tsv"
    params:
        config=config,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/plot_confusion_matrix.py"
