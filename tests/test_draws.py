"""evaluation.draws: many label draws at the small budgets, fit in the same job, one row each in the
tables, and the health gaps over the same draws."""
import json

import numpy as np
import pytest
from test_classify import CLASSIFIERS, embeddings

from medssl.evaluate import draws
from medssl.evaluate.classify import run_budget
from medssl.evaluate.fit_sweep import run_sweep, sweep_tasks
from medssl.report import health
from medssl.report.tables import collect_metrics, summarize

EVAL = {"budgets": [1, 5, 10, 25, "all"], "seeds": [0, 1, 2], "classifiers": CLASSIFIERS}


def test_settings_put_the_seeds_first_and_number_the_further_draws_after_them():
    assert draws.settings(EVAL) is None  # the key absent: one draw per seed, as without it
    got = draws.settings({**EVAL, "draws": {"n": 6, "max_budget": 10}})
    assert got == {"n": 6, "max_budget": 10, "budgets": ["1", "5", "10"], "classifiers": ["svm", "knn", "logreg"],
                   "seeds": [3, 4, 5]}
    assert draws.further_seeds([4, 0, 9], 5) == [10, 11]  # after the largest seed, whatever the order
    only = draws.settings({**EVAL, "draws": {"n": 3, "max_budget": 1, "classifiers": ["knn"]}})
    assert only["seeds"] == [] and draws.outputs(only, "f") == []  # the seeds are every draw: no file
    assert draws.outputs(got, "fits/d/v/m")[:2] == ["fits/d/v/m/budget_1/svm/draws_6.json",
                                                    "fits/d/v/m/budget_1/knn/draws_6.json"]


@pytest.mark.parametrize("cfg, key", [
    ({"n": 2, "max_budget": 10}, "evaluation.draws.n"),  # fewer than the 3 seeds
    ({"n": 100, "max_budget": 0}, "evaluation.draws.max_budget"),
    ({"n": 100, "max_budget": 10, "classifiers": ["svm", "forest"]}, "evaluation.draws.classifiers"),
])
def test_bad_settings_name_the_key(cfg, key):
    with pytest.raises(ValueError, match=key):
        draws.settings({**EVAL, "draws": cfg})


def test_further_draws_run_in_the_sweep_with_their_classifiers_and_equal_separate_runs(tmp_path):
    train, test = embeddings(n=200, n_test=80)
    train.save(tmp_path / "train.npz")
    test.save(tmp_path / "test.npz")
    cfg = draws.settings({**EVAL, "budgets": [1, 5, "all"], "seeds": [0],
                          "draws": {"n": 3, "max_budget": 1, "classifiers": ["knn", "logreg"]}})
    tasks = sweep_tasks(["1", "5", "all"], [0], CLASSIFIERS, cfg)
    assert [(b, s, list(c)) for b, s, c in tasks[3:]] == [("1", 1, ["knn", "logreg"]), ("1", 2, ["knn", "logreg"])]
    got = {(b, name, seed): (rec["balanced_accuracy"], rec["train_images"])
           for b, name, seed, rec, _ in run_sweep(tmp_path / "train.npz", tmp_path / "test.npz", ["1", "5", "all"],
                                                  [0], CLASSIFIERS, ["power_transform", "pca"], draws=cfg)}
    further = {k for k in got if k[2] > 0}
    assert further == {("1", c, s) for c in ["knn", "logreg"] for s in [1, 2]}
    assert len(got) == 3 * len(CLASSIFIERS) + len(further)
    for name, seed, rec, _ in run_budget(train, test, "1", [1, 2], {"knn": CLASSIFIERS["knn"]},
                                         ["power_transform", "pca"]):
        assert got[("1", name, seed)] == (rec["balanced_accuracy"], rec["train_images"])
    assert got[("1", "knn", 1)][1] != got[("1", "knn", 2)][1]  # every draw its own labeled subset


def record(method, budget, seed, bacc):
    return {"dataset": "d", "variant": "classes_all", "min_class_size": 1, "method": method, "classifier": "svm",
            "budget": budget, "seed": seed, "n_train": 3, "n_test": 30, "n_classes": 3, "balanced_accuracy": bacc,
            "accuracy": bacc, "macro_f1": bacc, "fit_seconds": 0.1, "pool_class_counts": [40, 20, 5]}


def test_every_draw_is_a_row_and_the_summary_and_health_run_over_all_draws(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for method, level in [("dino", 0.7), ("random_init", 0.5)]:
        for budget in ["1", "all"]:
            for seed in [0, 1]:
                paths.append(tmp_path / f"{method}_{budget}_{seed}.json")
                paths[-1].write_text(json.dumps(record(method, budget, seed, level + 0.01 * seed)))
        # the further draws at budget 1: seeds 2..9, one file
        further = [record(method, "1", s, float(level + rng.normal(0, 0.05))) for s in range(2, 10)]
        draws.write(tmp_path / f"{method}_draws_10.json", further[::-1], {"dataset": "d", "method": method})
        paths.append(tmp_path / f"{method}_draws_10.json")
    metrics = collect_metrics(paths)
    one = metrics[metrics["budget"] == "1"]
    assert len(one) == 20 and sorted(one.loc[one["method"] == "dino", "seed"]) == list(range(10))
    summary = summarize(metrics).set_index(["method", "budget"])
    assert summary.loc[("dino", "1"), "n_seeds"] == 10 and summary.loc[("dino", "all"), "n_seeds"] == 2
    values = one.loc[one["method"] == "dino", "balanced_accuracy"]
    assert summary.loc[("dino", "1"), "balanced_accuracy_mean"] == pytest.approx(values.mean())
    half = summary.loc[("dino", "1"), "balanced_accuracy_ci95"]
    assert half == pytest.approx(2.262 * values.std() / np.sqrt(10), rel=1e-3)  # t(9) interval of the mean
    gaps = health.health_table(summarize(metrics), {"dino": {"kind": "dino"}, "random_init": {"kind": "random_init"}},
                               {}, health.settings({"budgets": ["1", "all"], "classifiers": {"svm": {}},
                                                    "health": {"min_budget": 1}})).set_index("method")
    ri = one.loc[one["method"] == "random_init", "balanced_accuracy"]
    assert gaps.loc["dino", "svm_gap_1"] == pytest.approx(values.mean() - ri.mean())  # over the same 10 draws
    assert json.loads((tmp_path / "dino_draws_10.json").read_text())["seeds"] == list(range(2, 10))  # by seed
