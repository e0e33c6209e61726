"""One fit_classifiers job runs the whole sweep of an embedding pair: same numbers as per-budget runs."""
import numpy as np
from test_classify import CLASSIFIERS, embeddings

from medssl.evaluate.classify import run_budget
from medssl.evaluate.fit_sweep import run_sweep, task_order

BUDGETS = ["1", "5", "all"]
SEEDS = [0, 1]


def test_tasks_run_largest_budget_first():
    assert task_order(["1", "100", "all", "10"], [0, 1]) == [
        ("all", 0), ("all", 1), ("100", 0), ("100", 1), ("10", 0), ("10", 1), ("1", 0), ("1", 1)]


def test_sweep_equals_separate_budget_runs_in_process_and_with_workers(tmp_path):
    train, test = embeddings(n=200, n_test=80)
    train.save(tmp_path / "train.npz")
    test.save(tmp_path / "test.npz")
    expected = {(b, name, seed): (record["balanced_accuracy"], y_pred.tolist())
                for b in BUDGETS
                for name, seed, record, y_pred in run_budget(train, test, b, SEEDS, CLASSIFIERS, ["power_transform", "pca"], 50)}
    for workers in (1, 2):
        got = {(b, name, seed): (record["balanced_accuracy"], y_pred.tolist())
               for b, name, seed, record, y_pred in run_sweep(tmp_path / "train.npz", tmp_path / "test.npz", BUDGETS,
                                                              SEEDS, CLASSIFIERS, ["power_transform", "pca"], 50,
                                                              workers=workers)}
        assert got == expected, workers
    assert len(expected) == len(BUDGETS) * len(SEEDS) * len(CLASSIFIERS)
    assert not np.isnan([v[0] for v in expected.values()]).any()
