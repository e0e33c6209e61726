"""The paper's linear evaluation head on stored embeddings (medssl.evaluate.probes.MLPProbe)."""
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from medssl.evaluate.budgets import holdout_split
from medssl.evaluate.classify import run_budget
from medssl.evaluate.probes import MLPProbe
from test_classify import embeddings

FAST = {"hidden_dim": 16, "max_epochs": 12}


def blobs(n=300, seed=0):
    X, y = make_blobs(n_samples=n, n_features=20, centers=3, cluster_std=1.0, random_state=seed)
    return X.astype(np.float32), y


@pytest.mark.parametrize("hidden_dim", [512, None])
def test_learns_a_separable_problem_with_the_paper_settings(hidden_dim):
    X, y = blobs(400)
    probe = MLPProbe(hidden_dim=hidden_dim, max_epochs=10).fit(X[:300], y[:300])  # lr 1.0, Adam, batch 64
    assert (probe.predict(X[300:]) == y[300:]).mean() >= 0.95
    proba = probe.predict_proba(X[300:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert probe.n_fit_ + probe.n_val_ == 300 and 28 <= probe.n_val_ <= 32  # the 10 % validation split


def test_keeps_the_best_validation_epoch_later_ties_win():
    X, y = embeddings(n=240, n_classes=4).features, embeddings(n=240, n_classes=4).labels
    probe = MLPProbe(**FAST, random_state=3).fit(X, y)
    scores = [row["val_score"] for row in probe.history_]
    assert probe.best_epoch_ == max(i for i, s in enumerate(scores) if s == max(scores))
    _, val = holdout_split(y, 0.1, 3)
    assert (probe.predict(X[val]) == y[val]).mean() == pytest.approx(max(scores))


def test_without_a_validation_part_the_last_epoch_is_kept():
    X, y = blobs(6)  # 2 images per class: nothing can be held out
    probe = MLPProbe(**FAST).fit(X, y)
    assert probe.n_val_ == 0 and probe.best_epoch_ == FAST["max_epochs"] - 1
    assert MLPProbe(**FAST, val_fraction=0.0).fit(*blobs(60)).n_val_ == 0


def test_step_lr_halves_only_after_epoch_25():
    probe = MLPProbe(hidden_dim=4, max_epochs=52, batch_size=64).fit(*blobs(30))
    lrs = [row["lr"] for row in probe.history_]
    assert lrs[:51] == [1.0] * 51 and lrs[51] == 0.5  # stepped at the end of epochs 26..50: 25 steps


def test_seeded_reproducible_and_seed_dependent():
    X, y = embeddings(n=200, n_classes=3).features, embeddings(n=200, n_classes=3).labels
    a, b = (MLPProbe(**FAST, random_state=1).fit(X, y).predict_proba(X) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, MLPProbe(**FAST, random_state=2).fit(X, y).predict_proba(X))


def test_bad_parameters_are_named():
    X, y = blobs(30)
    with pytest.raises(ValueError, match="optimizer"):
        MLPProbe(optimizer="lars").fit(X, y)
    with pytest.raises(ValueError, match="selection"):
        MLPProbe(selection="auc").fit(X, y)


def test_runs_as_a_configured_classifier():
    train, test = embeddings(n=200, n_classes=3, n_test=60)
    spec = {"linear_eval": {"estimator": "medssl.evaluate.probes.MLPProbe", "params": FAST, "preprocess": False}}
    (name, seed, record, _), = run_budget(train, test, "all", [0], spec, ["standardize"])
    assert record["accuracy"] > 0.6 and record["roc_auc"] > 0.8 and record["roc_auc_scores"] == "predict_proba"
    assert 18 <= record["n_val"] <= 22 and 0 <= record["best_epoch"] < FAST["max_epochs"]
