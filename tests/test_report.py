import json

import numpy as np
import pandas as pd
import pytest

from medssl.report.figures import (budget_positions, mean_confusion, plot_balanced_accuracy, plot_confusion_matrix,
                                   plot_label_efficiency, save_figure)
from medssl.report.tables import add_paired_to_summary, collect_metrics, label_efficiency, paired_comparison, summarize


def fit_record(method, classifier, budget, seed, bacc, n_classes=3):
    cm = np.eye(n_classes, dtype=int) * 10
    cm[0, 1] = seed  # vary across seeds
    return {"dataset": "toy", "method": method, "classifier": classifier, "budget": budget, "seed": seed,
            "n_train": 3 * (5 if budget == "all" else int(budget)), "n_test": 30, "n_classes": n_classes,
            "balanced_accuracy": bacc, "accuracy": bacc, "macro_f1": bacc, "fit_seconds": 0.1,
            "pool_class_counts": [40, 20, 5], "classes": ["a", "b", "c"], "confusion_matrix": cm.tolist(),
            "per_class_recall": (np.diag(cm) / cm.sum(axis=1)).tolist(), "variant": "classes_all",
            "min_class_size": 1}


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


def test_plotted_means_and_intervals_equal_the_table(fit_files, tmp_path):
    summary = summarize(collect_metrics(fit_files))
    fig = plot_balanced_accuracy(summary, "toy", literature=0.7, dl_benchmark=0.6)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    bands = fig.axes[0].collections
    for i, ((method, clf), group) in enumerate(summary.groupby(["method", "classifier"], sort=False)):
        line = lines[group["arm"].iloc[0]]
        expected = group.assign(x=budget_positions(group)).sort_values("x")
        np.testing.assert_allclose(line.get_ydata(), expected["balanced_accuracy_mean"].to_numpy())
        # the band: the 95 % t-interval of the mean over the draws, as the table's _ci95
        y = bands[i].get_paths()[0].vertices[:, 1]
        half = expected["balanced_accuracy_ci95"].to_numpy()
        assert y.max() == pytest.approx((expected["balanced_accuracy_mean"] + half).max())
        assert y.min() == pytest.approx((expected["balanced_accuracy_mean"] - half).min())
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


DATASETS = {"toy": {"title": "Toy", "literature_benchmark": 0.6, "dl_benchmark": None,
                    "literature_per_class": {"a": 0.9, "c": 0.1}}}


@pytest.fixture
def arm_files(tmp_path):
    """SSL (svm, knn) and the DL baseline on the same budgets and seeds; SVM always better by 0.1."""
    paths = []
    for clf, method, offset in [("svm", "dino", 0.1), ("knn", "dino", 0.05), ("finetune", "supervised", 0.0)]:
        for budget, base in [("1", 0.3), ("10", 0.5), ("all", 0.65)]:
            for seed in range(5):
                path = tmp_path / f"{method}_{clf}_{budget}_{seed}.json"
                path.write_text(json.dumps(fit_record(method, clf, budget, seed, base + offset + 0.01 * seed)))
                paths.append(path)
    return paths


def test_label_efficiency_finds_the_first_budget_reaching_each_benchmark(arm_files):
    summary = summarize(collect_metrics(arm_files, {"svm": "SVM"}))
    eff = label_efficiency(summary, DATASETS).set_index(["arm", "benchmark"])
    assert eff.loc[("dino + SVM", "literature"), "budget_reached"] == "10"  # 0.62 >= 0.6
    assert eff.loc[("DL baseline", "literature"), "budget_reached"] == "all"  # 0.52 at 10, 0.67 at all
    # no DL benchmark in the config: this run's DL baseline on all labels (0.67), listed once
    assert eff.loc[("dino + SVM", "dl_benchmark_this_run"), "benchmark_value"] == pytest.approx(0.67)
    assert eff.loc[("dino + SVM", "dl_benchmark_this_run"), "budget_reached"] == "all"
    assert eff.loc[("dino + knn", "dl_benchmark_this_run"), "budget_reached"] == "all"
    assert "dl_benchmark" not in eff.index.get_level_values("benchmark")
    assert not eff.index.duplicated().any()


def test_a_dl_baseline_that_did_not_train_is_marked_not_reached(arm_files):
    summary = summarize(collect_metrics(arm_files, {"svm": "SVM"}))
    eff = label_efficiency(summary, DATASETS, {"epochs": 3}).set_index(["arm", "benchmark"])
    row = eff.loc[("dino + SVM", "dl_benchmark_this_run")]
    assert pd.isna(row["budget_reached"]) and "trained only 3 epoch(s)" in row["note"]
    assert eff.loc[("dino + SVM", "literature"), "budget_reached"] == "10"  # other benchmarks unaffected
    fig = plot_label_efficiency(summary, DATASETS, "dino", {"toy": "classes_all"}, None, {"epochs": 3},
                                {"toy": {"dino": "no better than untrained"}})
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "DL benchmark" not in labels and "DL baseline (did not train: no benchmark)" in labels
    assert any("dino: no better than untrained" in t.get_text() for t in ax.texts)


def test_paired_comparison_pairs_seeds_and_reports_wilcoxon(arm_files):
    metrics = collect_metrics(arm_files, {"svm": "SVM"})
    paired = paired_comparison(metrics, "dino", "svm").set_index("budget")
    assert list(paired.index) == ["1", "10", "all", "pooled"]
    np.testing.assert_allclose(paired["mean_difference"], 0.1)
    assert paired.loc["10", "ssl_wins"] == 5
    assert paired.loc["10", "n_pairs"] == 5 and paired.loc["pooled", "n_pairs"] == 15
    assert paired.loc["10", "p_value"] == pytest.approx(0.0625)  # exact, 5 of 5 positive
    assert paired.loc["pooled", "p_value"] < 0.001
    summary = add_paired_to_summary(summarize(metrics), paired.reset_index(), "dino", "svm")
    svm = summary[summary.classifier == "svm"]
    assert svm["vs_dl_wilcoxon_p"].notna().all() and summary[summary.classifier == "knn"]["vs_dl_wilcoxon_p"].isna().all()


def test_fig1_plots_the_table_means_benchmarks_and_training_sizes(arm_files, tmp_path):
    summary = summarize(collect_metrics(arm_files, {"svm": "SVM"}))
    fig = plot_label_efficiency(summary, DATASETS, "dino", {"toy": "classes_all"})
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for arm, group in summary.groupby("arm"):
        expected = group.assign(x=budget_positions(group)).sort_values("x")["balanced_accuracy_mean"]
        np.testing.assert_allclose(lines[arm].get_ydata(), expected.to_numpy())
    assert lines["literature benchmark"].get_ydata()[0] == 0.6
    assert lines["DL benchmark"].get_ydata()[0] == pytest.approx(0.67)
    assert lines["literature benchmark"].get_linestyle() == "--" and lines["DL benchmark"].get_linestyle() == "-."
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "all"]
    top = [child for child in ax.get_children() if type(child).__name__ == "SecondaryAxis"][0]
    assert [t.get_text() for t in top.get_xticklabels()] == ["3", "30", "15"]  # n_train of the fixture
    save_figure(fig, tmp_path / "f1.png", tmp_path / "f1.pdf")


def test_fig3_rows_are_ours_literature_and_dl(tmp_path):
    ours = [fit_record("dino", "svm", "10", seed, 0.5) for seed in range(3)]
    dl = [fit_record("supervised", "finetune", "10", seed, 0.4) for seed in range(3)]
    fig = plot_confusion_matrix(ours, "t", baseline=dl, literature_per_class=DATASETS["toy"]["literature_per_class"])
    strip = fig.axes[2]
    assert [t.get_text() for t in strip.get_yticklabels()] == ["ours", "literature", "DL baseline"]
    texts = [t.get_text() for t in strip.texts]
    assert texts[3:6] == ["0.90", "–", "0.10"]  # literature row; class b not reported
    mean, _ = mean_confusion(ours)
    assert texts[:3] == [f"{v:.2f}" for v in np.diag(mean)]
    assert fig.axes[1].get_xscale() == "linear"  # near-balanced classes must look balanced


def test_holm_adjustment():
    from medssl.report.statistics import holm

    # p sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04); NaN left out
    np.testing.assert_allclose(holm([0.04, 0.01, np.nan, 0.02]), [0.04, 0.03, np.nan, 0.04])
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]  # capped at 1


def test_paired_comparison_has_per_budget_t_tests_holm_adjusted_over_budgets(arm_files):
    from medssl.report.statistics import holm

    paired = paired_comparison(collect_metrics(arm_files, {"svm": "SVM"}), "dino", "svm").set_index("budget")
    per_budget = paired.drop("pooled")
    np.testing.assert_allclose(per_budget["p_value_holm"], holm(per_budget["p_value"].to_numpy()))
    np.testing.assert_allclose(per_budget["t_test_p_holm"], holm(per_budget["t_test_p"].to_numpy()))
    assert np.isnan(paired.loc["pooled", "p_value_holm"])


def test_per_class_bootstrap_over_test_images():
    import pandas as pd

    from medssl.report.statistics import per_class_bootstrap

    images = [f"i{k}" for k in range(40)]
    labels = ["a"] * 20 + ["b"] * 20
    # class a: 15 of 20 right in both fits; class b: always right
    preds = [pd.DataFrame({"image": images, "label": labels,
                           "prediction": ["a"] * 15 + ["b"] * 5 + ["b"] * 20}) for _ in range(2)]
    ci = per_class_bootstrap(preds[::-1], ["a", "b", "c"], n_boot=2000, seed=0)
    low, high = ci["a"]
    assert low < 0.75 < high and 0.5 < low and high < 0.95  # ~ 0.75 +- 1.96 * sqrt(.75 * .25 / 20)
    assert ci["b"] == (1.0, 1.0) and np.isnan(ci["c"][0])
    assert per_class_bootstrap(preds, ["a"], 500, seed=3) == per_class_bootstrap(preds, ["a"], 500, seed=3)
    shuffled = preds[1].sample(frac=1.0, random_state=0)  # row order does not matter, images do
    assert per_class_bootstrap([preds[0], shuffled], ["a"], 500, 3) == per_class_bootstrap(preds, ["a"], 500, 3)
    with pytest.raises(ValueError, match="different test images"):
        per_class_bootstrap([preds[0], preds[1].iloc[:30]], ["a"])


def test_fig3_prints_the_intervals_under_the_per_class_accuracy():
    ours = [fit_record("dino", "svm", "10", seed, 0.5) for seed in range(3)]
    names = ours[0]["classes"]
    fig = plot_confusion_matrix(ours, "t", ours_label="ours", intervals={"ours": {c: (0.1, 0.9) for c in names}})
    assert all(t.get_text().endswith("[0.10, 0.90]") for t in fig.axes[2].texts)


def test_pretraining_seeds_pool_under_their_method(fit_files):
    from medssl.report.tables import pool_pretraining_seeds

    metrics = collect_metrics(fit_files, {"svm": "SVM"})
    methods = {"dino": {"kind": "dino"}}
    plain = pool_pretraining_seeds(metrics, methods, {"svm": "SVM"})
    assert plain["pretrain_seed"].isna().all() and plain["method"].equals(metrics["method"])
    # the same fits as two pretrainings of "ssl": one summary row per budget over both
    twice = pd.concat([metrics.assign(method="ssl_seed0"), metrics.assign(method="ssl_seed1")])
    methods = {f"ssl_seed{s}": {"kind": "dino", "family": "ssl", "pretrain_seed": s} for s in (0, 1)}
    pooled = pool_pretraining_seeds(twice, methods, {"svm": "SVM"})
    assert set(pooled["method"]) == {"ssl"} and set(pooled["pretrain_seed"]) == {0, 1}
    assert set(pooled["arm"]) == {"ssl + SVM", "ssl + knn"}
    summary = summarize(pooled)
    single = summarize(pool_pretraining_seeds(metrics.assign(method="ssl_seed0"), methods, {"svm": "SVM"}))
    assert len(summary) == len(single) and (summary["n_seeds"].to_numpy() == 2 * single["n_seeds"].to_numpy()).all()
