import numpy as np
import pytest
from sklearn.datasets import make_classification

from medssl.classify import (ClassScaledKNN, CosineKNN, Embeddings, build_classifier, build_preprocessor,
                             run_budget, sample_budget, score)

CLASSIFIERS = {
    "svm": {"estimator": "sklearn.svm.SVC", "params": {"C": 1.0, "class_weight": "balanced", "probability": True},
            "predict": "proba_argmax"},
    "knn": {"estimator": "medssl.classify.ClassScaledKNN", "params": {"neighbors_per_class": 5}},
    "logreg": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 2.5, "max_iter": 2000}},
}


def embeddings(n=300, n_classes=4, seed=0, n_test=0):
    """A labeled pool of n and (when n_test) a test set drawn from the same distribution."""
    X, y = make_classification(n_samples=n + n_test, n_features=16, n_informative=8, n_classes=n_classes,
                               class_sep=1.5, random_state=seed)
    emb = Embeddings(X.astype(np.float32), np.array([f"img{i:04d}.png" for i in range(n + n_test)]), y,
                     [f"c{k}" for k in range(n_classes)])
    if not n_test:
        return emb
    return emb.subset(np.arange(n)), emb.subset(np.arange(n, n + n_test))


def test_sample_budget_takes_min_of_budget_and_available():
    labels = np.array([0] * 50 + [1] * 3 + [2] * 10)
    idx = sample_budget(labels, 5, seed=0)
    assert np.bincount(labels[idx]).tolist() == [5, 3, 5]
    assert len(set(idx)) == len(idx)
    assert sample_budget(labels, "all", seed=3).tolist() == list(range(len(labels)))


def test_sample_budget_is_deterministic_seeded_and_nested():
    labels = np.repeat(np.arange(4), 40)
    a, b = sample_budget(labels, 10, seed=1), sample_budget(labels, 10, seed=1)
    assert a.tolist() == b.tolist()
    assert a.tolist() != sample_budget(labels, 10, seed=2).tolist()
    assert set(sample_budget(labels, 5, seed=1)) <= set(a)


def test_sample_budget_rejects_bad_budget():
    with pytest.raises(ValueError, match="budget"):
        sample_budget(np.zeros(4, int), 0, seed=0)


def test_every_arm_sees_the_same_subset_and_scores_are_sane():
    train, test = embeddings(seed=0, n_test=200)
    records = list(run_budget(train, test, 10, [0, 1], CLASSIFIERS, ["power_transform", "pca"]))
    assert len(records) == 2 * len(CLASSIFIERS)
    for seed in (0, 1):
        subsets = {tuple(r["train_images"]) for _, s, r, _ in records if s == seed}
        assert len(subsets) == 1
        (subset,) = subsets
        assert len(subset) == 40
    for _, _, record, y_pred in records:
        assert record["balanced_accuracy"] > 0.4  # chance is 0.25
        assert len(y_pred) == 200
        assert np.asarray(record["confusion_matrix"]).sum() == 200


def test_budget_of_one_per_class_works_for_every_classifier():
    train, test = embeddings(seed=1, n_test=100)
    records = list(run_budget(train, test, 1, [0], CLASSIFIERS, ["power_transform", "pca"]))
    assert {r["n_train"] for _, _, r, _ in records} == {4}


def test_class_scaled_knn_caps_k_at_training_size():
    X, y = np.random.default_rng(0).normal(size=(6, 3)), np.array([0, 0, 1, 1, 2, 2])
    knn = ClassScaledKNN(neighbors_per_class=5).fit(X, y)
    assert knn.n_neighbors_ == 6
    assert ClassScaledKNN(neighbors_per_class=1).fit(X, y).n_neighbors_ == 3


def test_cosine_knn_matches_the_dino_formula():
    rng = np.random.default_rng(0)
    Xtr, ytr, Xte = rng.normal(size=(30, 5)), rng.integers(0, 3, 30), rng.normal(size=(7, 5))
    proba = CosineKNN(k=4, temperature=0.1).fit(Xtr, ytr).predict_proba(Xte)
    ntr = Xtr / np.linalg.norm(Xtr, axis=1, keepdims=True)
    for i, x in enumerate(Xte):
        sim = ntr @ (x / np.linalg.norm(x))
        top = np.argsort(-sim)[:4]
        votes = np.zeros(3)
        for j in top:
            votes[ytr[j]] += np.exp(sim[j] / 0.1)
        np.testing.assert_allclose(proba[i], votes / votes.sum(), rtol=1e-5)


def test_build_classifier_passes_seed_and_names_bad_entries():
    svm = build_classifier({"estimator": "sklearn.svm.SVC", "params": {"C": 2.0}}, random_state=7)
    assert svm.random_state == 7 and svm.C == 2.0
    with pytest.raises(ValueError, match="sklearn.svm.NoSuch"):
        build_classifier({"estimator": "sklearn.svm.NoSuch"}, random_state=0)
    with pytest.raises(ValueError, match="bad params"):
        build_classifier({"estimator": "sklearn.svm.SVC", "params": {"nope": 1}}, random_state=0)
    with pytest.raises(ValueError, match="unknown step"):
        build_preprocessor(["whiten"], random_state=0)


def test_score_balanced_accuracy_is_mean_recall():
    y, p = np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 0])
    s = score(y, p, 4)
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert s["per_class_recall"][:3] == pytest.approx([2 / 3, 1, 0.5])
    assert np.asarray(s["confusion_matrix"]).shape == (4, 4)


def test_embeddings_round_trip(tmp_path):
    emb = embeddings(n=20)
    emb.save(tmp_path / "e.npz")
    back = Embeddings.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.features, emb.features)
    assert back.images.tolist() == emb.images.tolist() and back.classes == emb.classes
    with np.load(tmp_path / "e.npz") as npz:
        assert npz["label"][0] == emb.classes[emb.labels[0]]
