"""The SmallDataSSL-style method comparison (medssl.report.compare) on small synthetic metrics tables."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medssl.report.compare import comparison_settings, comparison_table, format_comparison, plot_method_curves
from medssl.report.figures import save_figure
from medssl.report.tables import summarize

REPO = Path(__file__).resolve().parents[1]

DATASETS = {"breast": {"title": "BreaKHis 400X"}, "crc": {}}
METHODS = ["simclr", "vicreg", "random_init"]


def metrics_table(seeds=(0, 1, 2)):
    """metrics.csv rows: 2 datasets x 3 methods x 2 classifiers x 3 budgets x seeds, plus a supervised
    baseline; accuracy = a method offset + the seed / 100, so means and stds are known."""
    rows = []
    offsets = {"simclr": 0.8, "vicreg": 0.7, "random_init": 0.5, "supervised": 0.6}
    for dataset in DATASETS:
        for method, offset in offsets.items():
            for classifier in (["finetune"] if method == "supervised" else ["linear_eval", "svm"]):
                for budget, per_class in [("1", 1), ("10", 10), ("all", 40)]:
                    for seed in seeds:
                        value = offset + seed / 100 + (0.05 if budget == "all" else 0.0)
                        rows.append({
                            "dataset": dataset, "variant": "classes_all", "min_class_size": 1, "method": method,
                            "classifier": classifier, "arm": f"{method} + {classifier}", "budget": budget,
                            "budget_per_class": per_class, "seed": seed, "n_train": 2 * per_class, "n_test": 50,
                            "n_classes": 2, "balanced_accuracy": value, "accuracy": value, "macro_f1": value - 0.1,
                            "roc_auc": np.nan if classifier == "svm" else value + 0.1, "fit_seconds": 0.1,
                        })
    return pd.DataFrame(rows)


@pytest.fixture
def summary():
    return summarize(metrics_table())


def test_table_has_mean_and_std_over_seeds_at_the_budget(summary):
    table = comparison_table(summary, "all")
    row = table[(table["dataset"] == "breast") & (table["method"] == "simclr")
                & (table["classifier"] == "linear_eval")].iloc[0]
    assert row["n_seeds"] == 3 and row["budget"] == "all"
    assert row["accuracy_mean"] == pytest.approx(0.86) and row["accuracy_std"] == pytest.approx(0.01)
    assert row["macro_f1_mean"] == pytest.approx(0.76) and row["roc_auc_mean"] == pytest.approx(0.96)
    assert len(table) == 2 * (3 * 2 + 1)  # datasets x (methods x classifiers + the baseline)
    only = comparison_table(summary, "10", classifiers=["svm"])
    assert set(only["classifier"]) == {"svm", "finetune"} and set(only["budget"]) == {"10"}


def test_formatted_table_is_the_papers_layout(summary):
    table = comparison_table(summary, "all")
    formatted = format_comparison(table, DATASETS, {"linear_eval": "linear evaluation", "svm": "SVM"})
    assert list(formatted.columns) == ["evaluation", "method", "BreaKHis 400X Acc", "BreaKHis 400X F1",
                                       "BreaKHis 400X AUC", "crc Acc", "crc F1", "crc AUC"]
    assert formatted["evaluation"].tolist()[:3] == ["linear evaluation"] * 3
    simclr = formatted[(formatted["evaluation"] == "linear evaluation") & (formatted["method"] == "simclr")].iloc[0]
    assert simclr["BreaKHis 400X Acc"] == "0.860 ± 0.010"
    svm = formatted[formatted["evaluation"] == "SVM"].iloc[0]
    assert svm["crc AUC"] == "n/a"  # a classifier without scores
    one_seed = format_comparison(comparison_table(summarize(metrics_table(seeds=(0,))), "all"), ["breast"])
    assert one_seed.iloc[0]["breast Acc"] == "0.850"  # no std from one seed
    missing = format_comparison(table[table["dataset"] == "breast"], DATASETS)
    assert (missing["crc Acc"] == "–").all()


def test_table_refuses_a_summary_without_the_metric():
    with pytest.raises(ValueError, match="roc_auc_mean"):
        comparison_table(summarize(metrics_table()).drop(columns=["roc_auc_mean"]))


def test_curves_one_panel_per_dataset_and_classifier(summary, tmp_path):
    fig = plot_method_curves(summary, DATASETS, {"linear_eval": "linear evaluation", "svm": "SVM"})
    axes = fig.axes
    assert len(axes) == 4
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["simclr", "vicreg", "random_init (untrained reference)", "supervised (end to end)"]
    first = axes[0]
    assert first.get_title() == "BreaKHis 400X"
    lines = {line.get_label(): line for line in first.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"simclr", "vicreg", "random_init", "supervised"}
    assert lines["random_init"].get_linestyle() == "--" and lines["supervised"].get_color() == "black"
    np.testing.assert_allclose(lines["simclr"].get_ydata(), [0.81, 0.81, 0.86])
    save_figure(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").stat().st_size > 0


def test_settings_defaults_and_plan_time_errors():
    """The defaults come from the schema (as the workflow validates the config), the labels from the rules."""
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    comparison = {k: v["default"] for k, v in
                  schema["properties"]["figures"]["properties"]["comparison"]["properties"].items() if "default" in v}
    assert comparison == {"budget": "all", "digits": 3}
    config = {"evaluation": {"budgets": [1, 10, "all"], "classifiers": {"svm": {"label": "SVM"}, "lr": {}}},
              "figures": {"comparison": comparison}}
    labels = {"svm": "SVM", "lr": "lr"}
    settings = comparison_settings(config, labels)
    assert settings["budget"] == "all" and settings["classifiers"] == labels and settings["digits"] == 3
    with pytest.raises(ValueError, match="figures.comparison.classifiers"):
        comparison_settings({**config, "figures": {"comparison": {**comparison, "classifiers": ["mlp"]}}}, labels)
    with pytest.raises(ValueError, match="figures.comparison.budget"):
        comparison_settings({**config, "figures": {"comparison": {**comparison, "budget": 5}}}, labels)


def test_an_imagenet_initialised_baseline_is_a_second_black_line():
    from medssl.report.figures import plot_balanced_accuracy
    from medssl.report.tables import arm_label

    metrics = metrics_table()
    imagenet = metrics[metrics["method"] == "supervised"].assign(method="supervised_imagenet")
    summary = summarize(pd.concat([metrics, imagenet.assign(arm=arm_label("supervised_imagenet", "finetune"))]))
    assert arm_label("supervised_imagenet", "finetune") == "DL baseline (ImageNet init)"
    fig = plot_balanced_accuracy(summary, "breast")
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles["DL baseline (ImageNet init)"] == "-." and styles["supervised + finetune"] == "-"
    table = comparison_table(summary)
    assert {"supervised", "supervised_imagenet"} <= set(table["method"])


@pytest.mark.slow
def test_rules_write_the_table_and_figure_into_the_report(tmp_path):
    """compare_methods and plot_method_comparison on a given summary.csv (the DAG above it not run)."""
    import yaml
    from snakemake_runner import REPO, run_snakemake

    config = yaml.safe_load((REPO / "tests" / "config" / "tiny.yaml").read_text())
    config["figures"]["comparison"] = {"classifiers": ["svm", "linear"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = metrics_table()
    metrics = metrics[metrics["dataset"] == "breast"].assign(dataset=next(iter(config["datasets"])))
    metrics["method"] = metrics["method"].replace({"simclr": "dino", "vicreg": "dino_copy"})
    metrics["classifier"] = metrics["classifier"].replace({"linear_eval": "linear"})
    (tmp_path / "results/tables").mkdir(parents=True)
    summarize(metrics).to_csv(tmp_path / "results/tables/summary.csv", index=False)
    targets = ["results/tables/comparison.csv", "results/tables/comparison_formatted.csv",
               "results/figures/method_comparison.png"]
    only = ["--allowed-rules", "compare_methods", "plot_method_comparison"]  # last: it takes every word after it
    run_snakemake(tmp_path, tmp_path / "config.yaml", "--cores", "1", *targets, *only, timeout=300)
    formatted = pd.read_csv(tmp_path / "results/tables/comparison_formatted.csv")
    assert formatted["evaluation"].tolist()[0] == "SVM" and "± " in formatted.iloc[0, 2]
    assert (tmp_path / "results/figures/method_comparison.pdf").stat().st_size > 0
    assert (tmp_path / "results/tables/comparison.csv.provenance.json").exists()
    run_snakemake(tmp_path, tmp_path / "config.yaml", "--report", "report.html", *targets, *only, timeout=300)
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "comparison_formatted.csv" in html and "method_comparison.png" in html


def test_a_frozen_pretrained_arm_is_drawn_as_a_reference(summary):
    fig = plot_method_curves(summary, DATASETS, {"svm": "SVM"}, pretrained=["vicreg"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["simclr", "random_init (untrained reference)", "vicreg (frozen pretrained)",
                      "supervised (end to end)"]
    lines = {line.get_label(): line for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")}
    assert lines["vicreg"].get_linestyle() == "-." and lines["vicreg"].get_color() == "grey"
    assert lines["random_init"].get_linestyle() == "--"
