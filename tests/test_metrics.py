"""ROC AUC and macro-F1 in the per-fit records (medssl.evaluate.classify.score / class_scores / roc_auc_ovr)."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.svm import SVC

from medssl.evaluate.classify import class_scores, roc_auc_ovr, run_budget, score
from test_classify import CLASSIFIERS, embeddings


class PredictOnly(ClassifierMixin, BaseEstimator):
    """A classifier with neither predict_proba nor decision_function."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_roc_auc_equals_sklearn_one_vs_rest_macro():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    proba = rng.dirichlet(np.ones(4), size=len(y))
    proba[np.arange(len(y)), y] += 0.3 * rng.random(len(y))
    proba /= proba.sum(axis=1, keepdims=True)
    auc, per_class = roc_auc_ovr(y, proba, 4)
    assert auc == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert per_class[2] == pytest.approx(roc_auc_score(y == 2, proba[:, 2]))


def test_roc_auc_leaves_out_classes_absent_from_the_test_set():
    y = np.array([0, 0, 1, 1, 3, 3])  # class 2 is absent
    s = np.eye(4)[[0, 1, 1, 0, 3, 3]]
    auc, per_class = roc_auc_ovr(y, s, 4)
    assert per_class[2] is None
    assert auc == pytest.approx(np.mean([roc_auc_score(y == c, s[:, c]) for c in (0, 1, 3)]))
    # one class in the test set, or no scores at all: undefined, NaN (not 0.5, not an error)
    assert np.isnan(roc_auc_ovr(np.zeros(5, int), np.ones((5, 2)), 2)[0])
    assert np.isnan(roc_auc_ovr(y, None, 4)[0]) and roc_auc_ovr(y, None, 4)[1] == [None] * 4


def test_class_scores_source_and_columns():
    X, y = embeddings(n=120, n_classes=3).features, embeddings(n=120, n_classes=3).labels
    proba, source = class_scores(LogisticRegression(max_iter=500).fit(X, y), X, 3)
    assert source == "predict_proba" and proba.shape == (120, 3)
    margin, source = class_scores(SVC().fit(X, y), X, 3)  # probability=False: no predict_proba
    assert source == "decision_function" and margin.shape == (120, 3)
    binary = y < 1
    margin, _ = class_scores(SVC().fit(X, binary.astype(int)), X, 2)
    np.testing.assert_allclose(margin[:, 0], -margin[:, 1])
    assert class_scores(PredictOnly().fit(X, y), X, 3) == (None, "none")
    # a class the estimator never saw: a constant column (AUC 0.5), the others in their label columns
    seen = y != 1
    scores, _ = class_scores(LogisticRegression(max_iter=500).fit(X[seen], y[seen]), X, 3)
    assert np.ptp(scores[:, 1]) == 0
    assert roc_auc_ovr(y, scores, 3)[1][1] == pytest.approx(0.5)


def test_score_has_macro_f1_over_present_classes_and_auc():
    y, p = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    s = score(y, p, 4, np.eye(4)[p])
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert s["roc_auc"] == pytest.approx(roc_auc_ovr(y, np.eye(4)[p], 4)[0])
    assert len(s["per_class_roc_auc"]) == 4 and s["per_class_roc_auc"][3] is None
    assert np.isnan(score(y, p, 4)["roc_auc"])


def test_every_fit_record_carries_auc_and_f1():
    train, test = embeddings(n=200, n_classes=3, n_test=90)
    classifiers = {**CLASSIFIERS, "plain": {"estimator": "test_metrics.PredictOnly"}}
    fits = run_budget(train, test, 10, [0], classifiers, ["standardize"], estimator_packages=["test_metrics"])
    records = {name: rec for name, _, rec, _ in fits}
    for name in CLASSIFIERS:
        assert 0.5 < records[name]["roc_auc"] <= 1.0, name
        assert 0.0 < records[name]["macro_f1"] <= 1.0
    assert records["svm"]["roc_auc_scores"] == "predict_proba"
    assert np.isnan(records["plain"]["roc_auc"]) and records["plain"]["roc_auc_scores"] == "none"
