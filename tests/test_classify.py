import numpy as np
import pytest
from sklearn.datasets import make_classification

from medssl.evaluate.budgets import Embeddings, budget_subset, sample_budget
from medssl.evaluate.classify import build_classifier, run_budget, score
from medssl.evaluate.estimators import ClassScaledKNN, CosineKNN
from medssl.evaluate.preprocessing import build_preprocessor

CLASSIFIERS = {
    "svm": {"estimator": "sklearn.svm.SVC", "params": {"C": 1.0, "class_weight": "balanced", "probability": True},
            "predict": "proba_argmax"},
    "knn": {"estimator": "medssl.evaluate.estimators.ClassScaledKNN", "params": {"neighbors_per_class": 5}},
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


def test_restrict_classes_keeps_large_classes_and_their_subsets():
    from medssl.evaluate.budgets import budget_subset, restrict_classes

    labels = np.array([0] * 40 + [1] * 5 + [2] * 30)
    pool = Embeddings(np.zeros((len(labels), 2), np.float32), np.array([f"i{k}" for k in range(len(labels))]),
                      labels, ["a", "b", "c"])
    test = pool.subset(np.arange(0, len(labels), 3))
    small_pool, small_test = restrict_classes(pool, test, 30)
    assert small_pool.classes == ["a", "c"] and set(small_pool.labels) == {0, 1}
    assert set(small_test.images) == set(test.images[test.labels != 1])
    # the kept classes get exactly the images they get in the full evaluation, for every seed
    for seed in range(3):
        full = set(pool.images[sample_budget(pool.labels, 10, seed)])
        restricted = set(small_pool.images[budget_subset(small_pool.labels, small_pool.classes, 10, seed,
                                                         pool.classes)])
        assert restricted == full - set(pool.images[labels == 1])
    with pytest.raises(ValueError, match="min_class_size"):
        restrict_classes(pool, test, 35)
    assert restrict_classes(pool, test, None)[0] is pool


def test_run_budget_variant_scores_only_the_kept_classes():
    train, test = embeddings(n=300, seed=2, n_test=120)
    train.labels[:270][train.labels[:270] == 3] = 0  # class 3 becomes rare in the pool
    counts = np.bincount(train.labels, minlength=4)
    mcs = int(sorted(counts)[1])  # drops the rarest class only
    records = list(run_budget(train, test, 5, [0], {"knn": CLASSIFIERS["knn"]}, [], min_class_size=mcs))
    (_, _, record, y_pred), = records
    assert record["n_classes"] == 3 and record["min_class_size"] == mcs
    assert record["n_test"] == int((test.labels != np.argmin(counts)).sum()) == len(y_pred)


def test_holdout_split_is_stratified_seeded_and_spares_tiny_classes():
    from medssl.evaluate.budgets import holdout_split

    labels = np.array([0] * 10 + [1] * 3 + [2] * 2 + [3] * 1)
    fit, val = holdout_split(labels, 0.3, seed=0)
    assert sorted(np.concatenate([fit, val])) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=4).tolist() == [3, 1, 0, 0]
    assert holdout_split(labels, 0.3, seed=0)[1].tolist() == val.tolist()
    assert len(holdout_split(np.array([0, 1, 2]), 0.3, seed=0)[1]) == 0  # budget 1: no validation part


def test_linear_probe_learns_early_stops_and_is_seeded():
    from medssl.evaluate.estimators import LinearProbe

    train, test = embeddings(n=200, seed=3, n_test=200)
    probe = LinearProbe(max_epochs=100, patience=10, random_state=0).fit(train.features, train.labels)
    assert probe.n_val_ > 0 and 0 <= probe.best_epoch_ < 100
    assert balanced_accuracy(test.labels, probe.predict(test.features)) > 0.5
    np.testing.assert_allclose(probe.predict_proba(test.features).sum(axis=1), 1.0, rtol=1e-5)
    again = LinearProbe(max_epochs=100, patience=10, random_state=0).fit(train.features, train.labels)
    np.testing.assert_array_equal(again.coef_, probe.coef_)
    one_each = LinearProbe(max_epochs=5).fit(train.features[:4], np.arange(4))  # no validation part
    assert one_each.n_val_ == 0 and one_each.best_epoch_ == 4


def test_every_classifier_of_the_configs_runs_on_a_tiny_budget():
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    classifiers = config["evaluation"]["classifiers"]
    assert {"knn_cosine", "linear"} <= set(classifiers)
    train, test = embeddings(seed=4, n_test=80)
    for budget in (1, 5):
        records = list(run_budget(train, test, budget, [0], classifiers, ["power_transform", "pca"]))
        assert {name for name, *_ in records} == set(classifiers)
        assert all(0 <= r["balanced_accuracy"] <= 1 for _, _, r, _ in records)


def balanced_accuracy(y, p):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, p)


NEAREST_CENTROID = {"estimator": "sklearn.neighbors.NearestCentroid", "preprocess": ["center", "l2_normalize"]}


def test_nearest_centroid_on_centred_l2_normalised_embeddings_with_its_own_preprocessing():
    train, test = embeddings(seed=5, n_test=80)
    train = Embeddings(train.features + 10.0, train.images, train.labels, train.classes)  # off-centre
    test = Embeddings(test.features + 10.0, test.images, test.labels, test.classes)
    classifiers = {"nearest_centroid": NEAREST_CENTROID, "logreg": CLASSIFIERS["logreg"]}
    records = {name: (r, pred) for name, _, r, pred in run_budget(train, test, 5, [3], classifiers,
                                                                  ["power_transform", "pca"])}
    record, pred = records["nearest_centroid"]
    subset = train.subset(budget_subset(train.labels, train.classes, 5, 3))
    assert record["train_images"] == subset.images.tolist() == records["logreg"][0]["train_images"]
    # by hand: centre on the labeled subset's mean, L2-normalise, nearest class mean (Euclidean)
    mean = subset.features.mean(axis=0)
    unit = lambda x: (x - mean) / np.linalg.norm(x - mean, axis=1, keepdims=True)  # noqa: E731
    centroids = np.stack([unit(subset.features)[subset.labels == k].mean(axis=0) for k in range(4)])
    expected = np.argmin(((unit(test.features)[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(pred, expected)
    assert record["balanced_accuracy"] > 0.5  # 4 classes: chance 0.25
    # without the centring the off-centre embeddings all point the same way: a different classifier
    raw = {"nc": {**NEAREST_CENTROID, "preprocess": ["l2_normalize"]}}
    _, _, _, raw_pred = next(run_budget(train, test, 5, [3], raw, []))
    assert not np.array_equal(raw_pred, expected)
    with pytest.raises(ValueError, match="whiten"):
        next(run_budget(train, test, 5, [3], {"nc": {**NEAREST_CENTROID, "preprocess": ["whiten"]}}, []))


def test_nearest_centroid_at_one_image_per_class_predicts_without_scores():
    """sklearn's NearestCentroid scales its scores by the within-class variance, which one image per
    class does not have: the fit still predicts the nearest class mean, with no ROC AUC."""
    train, test = embeddings(seed=5, n_test=80)
    _, _, record, pred = next(run_budget(train, test, 1, [0], {"nc": NEAREST_CENTROID}, []))
    subset = train.subset(budget_subset(train.labels, train.classes, 1, 0))
    unit = (subset.features - subset.features.mean(axis=0))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    x = test.features - subset.features.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_array_equal(pred, subset.labels[np.argmin(((x[:, None] - unit[None]) ** 2).sum(-1), axis=1)])
    assert record["roc_auc_scores"] == "none" and np.isnan(record["roc_auc"])
