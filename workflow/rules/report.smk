# Stage 6-7: one tidy table of every fit, a summary over seeds, the label-efficiency and paired
# comparison tables, the figures, and the config that made them (all bundled by `--report`).


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
        label_efficiency=report(
            "results/tables/label_efficiency.csv",
            caption="../report/label_efficiency.rst",
            category="Tables",
        ),
        paired_comparison=report(
            "results/tables/paired_comparison.csv",
            caption="../report/paired_comparison.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate_metrics/aggregate_metrics.log",
    benchmark:
        "results/benchmarks/aggregate_metrics/aggregate_metrics.tsv"
    params:
        config=config,
        ssl_method=ssl_method(),
        classifier=CONFUSION["classifier"],
        labels=CLASSIFIER_LABELS,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/aggregate_metrics.py"


rule plot_label_efficiency:
    input:
        summary="results/tables/summary.csv",
        health="results/tables/ssl_health.csv",
    output:
        png=report(
            "results/figures/{figure}.png",
            caption="../report/label_efficiency_figure.rst",
            category="Figures",
            subcategory="Label efficiency",
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "results/logs/plot_label_efficiency/{figure}.log",
    benchmark:
        "results/benchmarks/plot_label_efficiency/{figure}.tsv"
    wildcard_constraints:
        figure="fig1_balanced_accuracy|fig2_balanced_accuracy_min_class_size",
    params:
        config=config,
        ssl_method=ssl_method(),
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/plot_label_efficiency.py"


rule plot_balanced_accuracy:
    input:
        summary="results/tables/summary.csv",
        health="results/tables/ssl_health.csv",
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
        unpack(confusion_fits),
        unpack(confusion_predictions),
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
        labels=CLASSIFIER_LABELS,
        method=ssl_method(),
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/plot_confusion_matrix.py"


rule write_config:
    output:
        report("results/config.yaml", caption="../report/config.rst", category="Configuration"),
    log:
        "results/logs/write_config/write_config.log",
    benchmark:
        "results/benchmarks/write_config/write_config.tsv"
    params:
        config=config,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/write_config.py"


# Method comparison in the style of Chattopadhyay et al. (SmallDataSSL): a method x dataset table
# (accuracy / F1 / AUC, mean ± std over seeds at figures.comparison.budget) and label-efficiency
# curves with every method on one panel per dataset. Made when the config sets figures.comparison.


rule compare_methods:
    input:
        summary="results/tables/summary.csv",
    output:
        table=report(
            "results/tables/comparison.csv",
            caption="../report/comparison.rst",
            category="Tables",
        ),
        formatted=report(
            "results/tables/comparison_formatted.csv",
            caption="../report/comparison_formatted.rst",
            category="Tables",
        ),
    log:
        "results/logs/compare_methods/compare_methods.log",
    benchmark:
        "results/benchmarks/compare_methods/compare_methods.tsv"
    params:
        config=config,
        settings=COMPARISON,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/compare_methods.py"


rule plot_method_comparison:
    input:
        summary="results/tables/summary.csv",
    output:
        png=report(
            "results/figures/method_comparison.png",
            caption="../report/method_comparison.rst",
            category="Figures",
            subcategory="Method comparison",
        ),
        pdf="results/figures/method_comparison.pdf",
    log:
        "results/logs/plot_method_comparison/plot_method_comparison.log",
    benchmark:
        "results/benchmarks/plot_method_comparison/plot_method_comparison.tsv"
    params:
        config=config,
        settings=COMPARISON,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/plot_method_comparison.py"


# SSL health: per dataset x method, the pretraining's final collapse signals and the gap to
# random_init at every budget >= evaluation.health.min_budget, with a verdict (medssl.report.health). Shown first in the report.
rule ssl_health:
    input:
        unpack(ssl_health_inputs),
    output:
        report(
            "results/tables/ssl_health.csv",
            caption="../report/ssl_health.rst",
            category="1. SSL health",
        ),
    log:
        "results/logs/ssl_health/ssl_health.log",
    benchmark:
        "results/benchmarks/ssl_health/ssl_health.tsv"
    params:
        config=config,
    conda:
        "../../envs/sklearn.yaml"
    script:
        "../scripts/ssl_health.py"
