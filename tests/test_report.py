import json

import numpy as np
import pandas as pd
import pytest

from medssl.report import (budget_positions, collect_metrics, mean_confusion, plot_balanced_accuracy,
                           plot_confusion_matrix, save_figure, summarize)


def fit_record(method, classifier, budget, seed, bacc, n_classes=3):
    cm = np.eye(n_classes, dtype=int) * 10
    cm[0, 1] = seed  # vary across seeds
    return {"dataset": "toy", "method": method, "classifier": classifier, "budget": budget, "seed": seed,
            "n_train": 3 * (5 if budget == "all" else int(budget)), "n_test": 30, "n_classes": n_classes,
            "balanced_accuracy": bacc, "accuracy": bacc, "macro_f1": bacc, "fit_seconds": 0.1,
            "pool_class_counts": [40, 20, 5], "classes": ["a", "b", "c"], "confusion_matrix": cm.tolist()}


@pytest.fixture
def fit_files(tmp_path):
    paths = []
    rng = np.random.default_rng(0)
    for method in ["dino", "random_init"]:
        for clf in ["svm", "knn"]:
            for budget in ["1", "10", "all"]:
                for seed in range(3):
                    path = tmp_path / f"{method}_{clf}_{budget}_{seed}.json"
                    path.write_text(json.dumps(fit_record(method, clf, budget, seed, float(rng.uniform(0.3, 0.9)))))
                    paths.append(path)
    return paths


def test_metrics_table_has_one_row_per_fit_and_budget_positions(fit_files):
    df = collect_metrics(fit_files, {"svm": "SVM"})
    assert len(df) == len(fit_files)
    assert {"dataset", "method", "classifier", "arm", "budget", "seed", "n_train", "balanced_accuracy"} <= set(df)
    assert set(df.loc[df["budget"] == "all", "budget_per_class"]) == {40}
    assert "dino + SVM" in set(df["arm"])


def test_summary_mean_std_ci_over_seeds(fit_files):
    df = collect_metrics(fit_files)
    summary = summarize(df)
    row = summary[(summary.method == "dino") & (summary.classifier == "svm") & (summary.budget == "10")].iloc[0]
    values = df[(df.method == "dino") & (df.classifier == "svm") & (df.budget == "10")]["balanced_accuracy"]
    assert row["n_seeds"] == 3
    assert row["balanced_accuracy_mean"] == pytest.approx(values.mean())
    assert row["balanced_accuracy_std"] == pytest.approx(values.std(ddof=1))
    assert row["balanced_accuracy_ci95"] == pytest.approx(4.302653 * values.std(ddof=1) / np.sqrt(3), rel=1e-5)


def test_all_budget_is_plotted_beyond_the_largest_number():
    s = pd.DataFrame({"budget": ["1", "10", "all"], "budget_per_class": [1, 10, 12]})
    x = budget_positions(s)
    assert x.iloc[2] > 10 * 2


def test_plotted_means_equal_the_table(fit_files, tmp_path):
    summary = summarize(collect_metrics(fit_files))
    fig = plot_balanced_accuracy(summary, "toy", literature=0.7, dl_benchmark=0.6)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for (method, clf), group in summary.groupby(["method", "classifier"]):
        line = lines[group["arm"].iloc[0]]
        expected = group.assign(x=budget_positions(group)).sort_values("x")["balanced_accuracy_mean"]
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    assert {"literature benchmark", "DL benchmark"} <= set(lines)
    save_figure(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_confusion_is_row_normalised_mean_over_seeds():
    records = [fit_record("dino", "svm", "10", seed, 0.5) for seed in range(3)]
    mean, std = mean_confusion(records)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    assert mean[0, 1] == pytest.approx(np.mean([s / (10 + s) for s in range(3)]))
    assert std[0, 1] > 0
    fig = plot_confusion_matrix(records, "t")
    # classes ordered by frequency in the labeled pool: a (40), b (20), c (5)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b", "c"]
