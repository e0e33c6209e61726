"""The SSL health table: verdicts, the compared budget and the gap to random_init."""
import math

import pandas as pd
import pytest

from medssl import health

METHODS = {"dino": {"kind": "dino"}, "simclr": {"kind": "simclr"}, "random_init": {"kind": "random_init"}}
EVAL = {"budgets": [1, 5, 10, 25, 100, "all"], "classifiers": {"svm": {}, "logreg": {}, "knn": {}}}


def summary(acc: dict) -> pd.DataFrame:
    rows = [{"dataset": "d", "variant": "classes_all", "method": m, "classifier": c, "budget": "25",
             "balanced_accuracy_mean": v} for (m, c), v in acc.items()]
    return pd.DataFrame(rows)


def table(acc, health_records=None, margin=0.0):
    cfg = health.settings({**EVAL, "health": {"margin": margin}})
    return health.health_table(summary(acc), METHODS, health_records or {}, cfg).set_index("method")


def test_budget_defaults_to_the_one_closest_to_25_and_must_exist():
    assert health.pick_budget(["1", "5", "10", "25", "all"]) == "25"
    assert health.pick_budget(["10", "50", "all"]) == "10"  # 15 vs 25 away
    assert health.pick_budget(["20", "30"]) == "20"  # tie: the lower one
    assert health.pick_budget(["all"]) == "all"
    assert health.pick_budget(["10", "100"], 100) == "100"
    with pytest.raises(ValueError, match="evaluation.health.budget"):
        health.pick_budget(["10", "100"], 25)
    with pytest.raises(ValueError, match="evaluation.health.classifiers"):
        health.settings({**EVAL, "health": {"classifiers": ["svm", "lda"]}})


def test_verdicts_learned_no_better_and_collapsed():
    acc = {("dino", "svm"): 0.60, ("dino", "logreg"): 0.70, ("simclr", "svm"): 0.50, ("simclr", "logreg"): 0.71,
           ("random_init", "svm"): 0.55, ("random_init", "logreg"): 0.65}
    t = table(acc)
    assert t.loc["dino", "verdict"] == health.LEARNED
    assert t.loc["dino", "svm_gap"] == pytest.approx(0.05)
    assert t.loc["dino", "logreg_gap"] == pytest.approx(0.05)
    assert t.loc["simclr", "verdict"] == health.NO_BETTER and "svm -0.050" in t.loc["simclr", "reason"]
    assert t.loc["random_init", "verdict"] == health.REFERENCE
    # a margin turns a small gain into "no better"
    assert table(acc, margin=0.06).loc["dino", "verdict"] == health.NO_BETTER

    collapsed = {("d", "dino"): {"verdict": "collapsed", "warned": True,
                                 "signals": {"teacher_entropy_ratio": 0.99, "effective_rank": 3.0},
                                 "failed": [{"signal": "teacher_entropy_ratio", "value": 0.99}]}}
    t = table(acc, collapsed)
    assert t.loc["dino", "verdict"] == health.COLLAPSED and "teacher_entropy_ratio=0.99" in t.loc["dino", "reason"]
    assert t.loc["dino", "teacher_entropy_ratio"] == 0.99 and bool(t.loc["dino", "warned"])
    assert math.isnan(t.loc["random_init", "effective_rank"])  # untrained: no signals
    assert health.did_not_learn(t.reset_index(), "d", "dino") == health.COLLAPSED
    assert health.did_not_learn(t.reset_index(), "d", "random_init") is None


def test_missing_budget_is_not_counted_as_learned_and_no_reference_is_said():
    acc = {("dino", "svm"): 0.6, ("random_init", "svm"): 0.5, ("random_init", "logreg"): 0.5}
    assert table(acc).loc["dino", "verdict"] == health.NO_BETTER  # no LR result: not shown to have learned
    cfg = health.settings(EVAL)
    t = health.health_table(summary({("dino", "svm"): 0.6, ("dino", "logreg"): 0.6}), {"dino": {"kind": "dino"}}, {}, cfg)
    assert t["verdict"].tolist() == [health.NOT_COMPARED]


def test_default_classifiers_are_the_configured_ones():
    assert health.settings({"budgets": [5], "classifiers": {"knn": {}, "logreg": {}}})["classifiers"] == ["logreg"]
    assert health.settings({"budgets": [5], "classifiers": {"knn": {}}})["classifiers"] == ["knn"]


def test_dl_baseline_that_did_not_train_is_no_benchmark():
    assert "3 epoch(s)" in health.dl_baseline_untrained({"epochs": 3}, 0.9, 4)
    assert "chance" in health.dl_baseline_untrained({"epochs": 50}, 0.27, 4)
    assert health.dl_baseline_untrained({"epochs": 50}, 0.6, 4) is None
    assert health.dl_baseline_untrained({"epochs": 5, "benchmark_min_epochs": 5}, 0.6, 4) is None
