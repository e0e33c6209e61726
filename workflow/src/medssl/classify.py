"""Label budgets and classifiers on frozen embeddings (the paper's evaluation protocol).

A fit = (dataset, method, label budget, classifier, seed). For each budget and seed the
labeled subset is drawn once (`sample_budget`), the preprocessing (the paper's
PowerTransformer -> PCA) is fit once on it, and every classifier is fit on the same
transformed subset, so all arms are compared on identical labeled sets.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, PowerTransformer, StandardScaler

log = logging.getLogger(__name__)


@dataclass
class Embeddings:
    """Features of one split with their image ids and labels (as stored in the .npz files)."""

    features: np.ndarray  # float32 [N, D]
    images: np.ndarray  # str [N]
    labels: np.ndarray  # int64 [N], index into classes
    classes: list[str]

    @classmethod
    def load(cls, path: str | Path) -> "Embeddings":
        with np.load(path, allow_pickle=False) as npz:
            return cls(npz["features"], npz["image"], npz["label_index"].astype(np.int64),
                       [str(c) for c in npz["classes"]])

    def save(self, path: str | Path) -> None:
        from medssl.runtime import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, features=self.features, image=self.images,
                         label=np.asarray(self.classes, dtype=str)[self.labels],
                         label_index=self.labels, classes=np.asarray(self.classes, dtype=str))

    def subset(self, index: np.ndarray) -> "Embeddings":
        return Embeddings(self.features[index], self.images[index], self.labels[index], self.classes)


def parse_budget(budget: int | str) -> int | None:
    """'all' -> None (every labeled image), otherwise a positive number of images per class."""
    if str(budget) == "all":
        return None
    value = int(budget)
    if value < 1:
        raise ValueError(f"label budget must be >= 1 or 'all', got {budget!r}")
    return value


def sample_budget(labels: np.ndarray, budget: int | str | None, seed: int) -> np.ndarray:
    """Indices of at most `budget` images per class (a smaller class contributes all it has).

    Each class is shuffled by its own generator seeded with (seed, class), so the draw
    depends only on the labels, the budget and the seed: every arm gets the same subset,
    and with one seed the subsets are nested across budgets (budget 5 is inside budget 10).
    """
    n = None if budget is None else parse_budget(budget)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        order = np.random.default_rng([seed, int(cls)]).permutation(members)
        chosen.append(order if n is None else order[:n])
    return np.sort(np.concatenate(chosen))


class ClassScaledKNN(ClassifierMixin, BaseEstimator):
    """k-NN with k = neighbors_per_class x number of classes, as the paper (5 x classes),
    capped at the training-set size so that tiny budgets work (the original crashed)."""

    def __init__(self, neighbors_per_class: int = 5, weights: str = "distance", metric: str = "minkowski"):
        self.neighbors_per_class = neighbors_per_class
        self.weights = weights
        self.metric = metric

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        k = min(self.neighbors_per_class * len(self.classes_), len(y))
        self.knn_ = KNeighborsClassifier(n_neighbors=k, weights=self.weights, metric=self.metric).fit(X, y)
        self.n_neighbors_ = k
        return self

    def predict_proba(self, X):
        return self.knn_.predict_proba(X)

    def predict(self, X):
        return self.knn_.predict(X)


class CosineKNN(ClassifierMixin, BaseEstimator):
    """DINO's weighted k-NN (eval_knn.py): cosine similarity on L2-normalised features,
    top-k neighbours vote with weight exp(sim / temperature)."""

    def __init__(self, k: int = 20, temperature: float = 0.07):
        self.k = k
        self.temperature = temperature

    def fit(self, X, y):
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.X_ = _l2_normalise(np.asarray(X, dtype=np.float32))
        return self

    def predict_proba(self, X):
        sim = _l2_normalise(np.asarray(X, dtype=np.float32)) @ self.X_.T
        k = min(self.k, sim.shape[1])
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sim, top, axis=1) / self.temperature)
        scores = np.zeros((len(sim), len(self.classes_)))
        np.add.at(scores, (np.arange(len(sim))[:, None], self.y_[top]), weights)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def import_estimator(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"classifier estimator {dotted!r} cannot be imported: {err}") from err


def build_classifier(spec: Mapping[str, Any], random_state: int) -> BaseEstimator:
    """An estimator from a config entry {estimator: dotted.path, params: {...}}; the fit's
    seed is passed as random_state when the estimator takes one."""
    cls = import_estimator(spec["estimator"])
    params = dict(spec.get("params", {}))
    if "random_state" in inspect.signature(cls).parameters:
        params.setdefault("random_state", random_state)
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"classifier {spec['estimator']}: bad params {params}: {err}") from err


def build_preprocessor(steps: Sequence[str], random_state: int):
    """The paper's front end is PowerTransformer (Yeo-Johnson, standardised) -> PCA (all components)."""
    make = {
        "power_transform": lambda: PowerTransformer(),
        "standardize": lambda: StandardScaler(),
        "pca": lambda: PCA(random_state=random_state),
        "l2_normalize": lambda: Normalizer(),
    }
    unknown = [s for s in steps if s not in make]
    if unknown:
        raise ValueError(f"evaluation.preprocessing: unknown step(s) {unknown}; choose from {sorted(make)}")
    return make_pipeline(*(make[s]() for s in steps)) if steps else None


def predict(estimator: BaseEstimator, X: np.ndarray, mode: str) -> np.ndarray:
    if mode == "proba_argmax":  # the paper: argmax of predict_proba (Platt-scaled for SVC)
        return estimator.classes_[np.argmax(estimator.predict_proba(X), axis=1)]
    if mode == "predict":
        return estimator.predict(X)
    raise ValueError(f"predict mode must be 'predict' or 'proba_argmax', got {mode!r}")


def score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    labels = np.arange(n_classes)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
        "per_class_recall": recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0).tolist(),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def run_budget(train: Embeddings, test: Embeddings, budget: int | str, seeds: Sequence[int],
               classifiers: Mapping[str, Mapping[str, Any]], preprocessing: Sequence[str],
               ) -> Iterator[tuple[str, int, dict[str, Any], np.ndarray]]:
    """Fit every classifier for every seed at one label budget.

    Yields (classifier name, seed, result record, test predictions)."""
    n_classes = len(train.classes)
    for seed in seeds:
        index = sample_budget(train.labels, budget, seed)
        subset = train.subset(index)
        t0 = time.perf_counter()
        pre = build_preprocessor(preprocessing, random_state=seed)
        if pre is not None:
            X_pre = pre.fit_transform(subset.features)
            X_test_pre = pre.transform(test.features)
        pre_seconds = time.perf_counter() - t0
        for name, spec in classifiers.items():
            use_pre = pre is not None and spec.get("preprocess", True)
            X, X_test = (X_pre, X_test_pre) if use_pre else (subset.features, test.features)
            t0 = time.perf_counter()
            estimator = build_classifier(spec, random_state=seed).fit(X, subset.labels)
            y_pred = predict(estimator, X_test, spec.get("predict", "predict"))
            seconds = time.perf_counter() - t0 + (pre_seconds if use_pre else 0.0)
            record = {
                "classifier": name,
                "budget": str(budget),
                "seed": seed,
                "n_train": int(len(index)),
                "n_test": int(len(test.labels)),
                "n_classes": n_classes,
                "pool_class_counts": np.bincount(train.labels, minlength=n_classes).tolist(),
                **score(test.labels, y_pred, n_classes),
                "classes": list(train.classes),
                "train_images": subset.images.tolist(),
                "fit_seconds": seconds,
            }
            log.info("%s budget=%s seed=%d n_train=%d balanced_accuracy=%.4f (%.2f s)",
                     name, budget, seed, len(index), record["balanced_accuracy"], seconds)
            yield name, seed, record, y_pred
