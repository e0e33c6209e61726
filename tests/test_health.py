"""The SSL health table: verdicts over every compared budget and the gaps to random_init."""
import math

import pandas as pd
import pytest

from medssl.report import health

METHODS = {"dino": {"kind": "dino"}, "simclr": {"kind": "simclr"}, "random_init": {"kind": "random_init"}}
EVAL = {"budgets": [1, 5, 10, 25, 100, "all"], "classifiers": {"svm": {}, "logreg": {}, "knn": {}}}


def summary(acc: dict, budgets=("1", "5", "10", "25", "100", "all")) -> pd.DataFrame:
    """``acc[(method, classifier)]``: one value for every budget, or a {budget: value} mapping."""
    rows = [{"dataset": "d", "variant": "classes_all", "method": m, "classifier": c, "budget": b,
             "balanced_accuracy_mean": v[b] if isinstance(v, dict) else v}
            for (m, c), v in acc.items() for b in budgets if not isinstance(v, dict) or b in v]
    return pd.DataFrame(rows)


def table(acc, health_records=None, **health_cfg):
    cfg = health.settings({**EVAL, "health": health_cfg})
    return health.health_table(summary(acc), METHODS, health_records or {}, cfg).set_index("method")


def test_compared_budgets_are_every_one_from_min_budget_and_all():
    assert health.compared_budgets(["1", "5", "10", "25", "all"]) == ["10", "25", "all"]
    assert health.compared_budgets(["1", "5", "10", "25", "all"], min_budget=25) == ["25", "all"]
    assert health.compared_budgets(["1", "5"]) == ["5"]  # nothing >= 10: the largest budget
    assert health.compared_budgets(["10", "100"], wanted=[100]) == ["100"]
    assert health.settings(EVAL)["budgets"] == ["10", "25", "100", "all"]
    with pytest.raises(ValueError, match="evaluation.health.budgets"):
        health.compared_budgets(["10", "100"], wanted=[25])
    with pytest.raises(ValueError, match="evaluation.health.classifiers"):
        health.settings({**EVAL, "health": {"classifiers": ["svm", "lda"]}})


def test_verdicts_learned_no_better_and_collapsed():
    acc = {("dino", "svm"): 0.60, ("dino", "logreg"): 0.70, ("simclr", "svm"): 0.50, ("simclr", "logreg"): 0.71,
           ("random_init", "svm"): 0.55, ("random_init", "logreg"): 0.65}
    t = table(acc)
    assert t.loc["dino", "verdict"] == health.LEARNED
    assert t.loc["dino", "svm_worst_gap"] == pytest.approx(0.05)
    assert t.loc["dino", "logreg_gap_all"] == pytest.approx(0.05)
    assert t.loc["simclr", "verdict"] == health.NO_BETTER and "svm 10 (-0.050)" in t.loc["simclr", "reason"]
    assert t.loc["simclr", "failed_budgets"] == "10 25 100 all"
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


def test_a_method_that_wins_at_the_mid_budget_but_loses_at_another_is_not_learned():
    # a DINO + SVM that is ahead at 25-100 and behind with all labels; budgets below 10 do not count
    ref = {"1": 0.30, "5": 0.30, "10": 0.306, "25": 0.310, "100": 0.339, "all": 0.368}
    ssl = {"1": 0.10, "5": 0.10, "10": 0.318, "25": 0.375, "100": 0.405, "all": 0.367}
    acc = {("dino", "svm"): ssl, ("dino", "logreg"): 0.9, ("random_init", "svm"): ref, ("random_init", "logreg"): 0.5}
    t = table(acc)
    assert t.loc["dino", "verdict"] == health.NO_BETTER
    assert t.loc["dino", "failed_budgets"] == "all" and "svm all (-0.001)" in t.loc["dino", "reason"]
    assert t.loc["dino", "svm_worst_budget"] == "all" and t.loc["dino", "svm_worst_gap"] == pytest.approx(-0.001)
    assert t.loc["dino", "svm_gap_25"] == pytest.approx(0.065)
    assert health.did_not_learn(t.reset_index(), "d", "dino") == f"{health.NO_BETTER} at all"
    # compared only where the user asks
    assert table(acc, budgets=[25, 100]).loc["dino", "verdict"] == health.LEARNED
    # the table's columns: the verdict, the failed budgets, then the worst gaps before the per-budget ones
    columns = list(t.reset_index().columns)
    assert columns.index("failed_budgets") < columns.index("svm_worst_gap") < columns.index("svm_gap_10")


def test_missing_budget_is_not_counted_as_learned_and_no_reference_is_said():
    acc = {("dino", "svm"): 0.6, ("random_init", "svm"): 0.5, ("random_init", "logreg"): 0.5}
    t = table(acc)
    assert t.loc["dino", "verdict"] == health.NO_BETTER  # no LR result: not shown to have learned
    assert "logreg 10 (no result)" in t.loc["dino", "reason"]
    missing_all = {("dino", "svm"): {b: 0.6 for b in ("10", "25", "100")}, ("dino", "logreg"): 0.6,
                   ("random_init", "svm"): 0.5, ("random_init", "logreg"): 0.5}
    assert table(missing_all).loc["dino", "failed_budgets"] == "all"
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


def test_an_ssl_method_started_from_pretrained_weights_is_judged_against_the_frozen_pretrained_arm():
    methods = {"dino": {"kind": "dino"}, "random_init": {"kind": "random_init"},
               "imagenet": {"kind": "pretrained"}, "other_net": {"kind": "pretrained", "model": "resnet18.a1_in1k"}}
    acc = {("dino", "svm"): 0.70, ("random_init", "svm"): 0.50, ("imagenet", "svm"): 0.75,
           ("other_net", "svm"): 0.90}
    cfg = health.settings({**EVAL, "classifiers": {"svm": {}}})
    backbone = {"name": "xcit_small_12_p8_224.fb_dist_in1k", "pretrained": True}
    t = health.health_table(summary(acc), methods, {}, cfg, backbone=backbone).set_index("method")
    assert t.loc["dino", "start"] == "imagenet"  # the arm of the same backbone, not other_net
    assert t.loc["dino", "verdict"] == health.NO_BETTER_THAN_START and "gap to imagenet" in t.loc["dino", "reason"]
    assert t.loc["dino", "svm_gap_all"] == pytest.approx(0.20)  # both gaps are shown
    assert t.loc["dino", "svm_start_gap_all"] == pytest.approx(-0.05)
    assert t.loc["imagenet", "verdict"] == t.loc["other_net", "verdict"] == health.PRETRAINED_REFERENCE
    assert t.loc["imagenet", "svm_gap_all"] == pytest.approx(0.25)  # the frozen arm against random init
    assert health.did_not_learn(t.reset_index(), "d", "dino").startswith(health.NO_BETTER_THAN_START)
    assert health.did_not_learn(t.reset_index(), "d", "imagenet") is None

    # SSL from random init (backbone.pretrained false) is judged against random_init, as before
    scratch = health.health_table(summary(acc), methods, {}, cfg, backbone={**backbone, "pretrained": False})
    scratch = scratch.set_index("method")
    assert scratch.loc["dino", "start"] == "random_init" and scratch.loc["dino", "verdict"] == health.LEARNED
    assert scratch.loc["dino", "svm_start_gap_all"] == pytest.approx(0.20)
    # and so is one whose frozen-pretrained arm the config lacks
    lacking = {k: v for k, v in methods.items() if k != "imagenet"}
    assert health.health_table(summary(acc), lacking, {}, cfg, backbone=backbone).set_index(
        "method").loc["dino", "start"] == "random_init"
