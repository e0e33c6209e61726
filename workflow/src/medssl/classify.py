"""Classifiers on frozen embeddings and their scores (the paper's evaluation protocol).

A fit = (dataset, method, label budget, classifier, seed). For each budget and seed the
labeled subset is drawn once (`sample_budget`), the preprocessing (the paper's
PowerTransformer -> PCA) is fit once on it, and every classifier is fit on the same
transformed subset, so all arms are compared on identical labeled sets.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)
from sklearn.neighbors import KNeighborsClassifier

from medssl.budgets import (Embeddings, budget_subset, class_weights, holdout_split,  # noqa: F401 (re-exported)
                            parse_budget, restrict_classes, sample_budget)
from medssl.checks import resolve_estimator
from medssl.preprocessing import build_preprocessor, classifier_steps, preprocessed  # noqa: F401 (build_preprocessor: re-exported)

log = logging.getLogger(__name__)



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


class SoftmaxHead:
    """predict_proba (softmax) and predict (argmax) from a head's logits in `decision_function`."""

    def predict_proba(self, X):
        z = self.decision_function(X)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class LinearProbe(SoftmaxHead, ClassifierMixin, BaseEstimator):
    """The paper's "SSL + LL": a linear layer trained on frozen SSL features.

    Used with `preprocess: false` on the frozen embeddings of a method, this equals a frozen
    backbone + linear head trained without augmentation (the original trained the final LayerNorm
    too, on a fresh ImageNet backbone instead of the SSL weights -- docs/differences.md#sparsam-code).
    Class-weighted cross-entropy, AdamW, mini-batches; early stopping on a stratified held-out
    `val_fraction` of the training set (`holdout_split`), keeping the best epoch's weights
    (highest validation balanced accuracy, ties to the lower validation loss). Without a
    validation part (budgets of 1-2 per class) it trains `max_epochs` and keeps the last weights.
    Features are standardised with the fit part's mean/std. Seeded by `random_state`."""

    def __init__(self, lr: float = 1e-2, weight_decay: float = 1e-4, max_epochs: int = 300,
                 patience: int = 30, batch_size: int = 256, val_fraction: float = 0.3,
                 standardize: bool = True, random_state: int = 0, n_threads: int = 1):
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.standardize = standardize
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X, y):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            return self._fit(torch, np.asarray(X, dtype=np.float32), np.asarray(y))
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch, X, y):
        from torch.nn import functional as F

        self.classes_, yi = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        fit_idx, val_idx = holdout_split(yi, self.val_fraction, self.random_state)
        self.mean_ = X[fit_idx].mean(axis=0) if self.standardize else np.zeros(X.shape[1], np.float32)
        self.scale_ = (X[fit_idx].std(axis=0) + 1e-6) if self.standardize else np.ones(X.shape[1], np.float32)
        Xs = torch.from_numpy((X - self.mean_) / self.scale_)
        Y = torch.from_numpy(yi.astype(np.int64))
        gen = torch.Generator().manual_seed(int(self.random_state))
        layer = torch.nn.Linear(X.shape[1], n_classes)
        with torch.no_grad():
            bound = 1.0 / np.sqrt(X.shape[1])
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.zero_()
        weight = torch.as_tensor(class_weights(yi[fit_idx], n_classes), dtype=torch.float32)
        opt = torch.optim.AdamW(layer.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        Xf, Yf = Xs[fit_idx], Y[fit_idx]
        Xv, Yv = Xs[val_idx], Y[val_idx]
        batch = max(1, min(self.batch_size, len(fit_idx)))
        best, best_key, since = None, None, 0
        self.history_ = []
        for epoch in range(self.max_epochs):
            order = torch.randperm(len(Xf), generator=gen)
            for start in range(0, len(order), batch):
                b = order[start:start + batch]
                loss = F.cross_entropy(layer(Xf[b]), Yf[b], weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if len(val_idx) == 0:
                continue
            with torch.no_grad():
                logits = layer(Xv)
                val_loss = float(F.cross_entropy(logits, Yv, weight=weight))
                bacc = float(balanced_accuracy_score(Yv.numpy(), logits.argmax(1).numpy()))
            self.history_.append({"epoch": epoch, "val_balanced_accuracy": bacc, "val_loss": val_loss})
            key = (bacc, -val_loss)
            if best_key is None or key > best_key:
                best_key, since = key, 0
                best = {k: v.clone() for k, v in layer.state_dict().items()}
                self.best_epoch_ = epoch
            else:
                since += 1
                if since >= self.patience:
                    break
        if best is not None:
            layer.load_state_dict(best)
        else:
            self.best_epoch_ = self.max_epochs - 1
        self.n_fit_, self.n_val_ = len(fit_idx), len(val_idx)
        self.coef_ = layer.weight.detach().numpy().copy()
        self.intercept_ = layer.bias.detach().numpy().copy()
        return self

    def decision_function(self, X):
        Xs = (np.asarray(X, dtype=np.float32) - self.mean_) / self.scale_
        return Xs @ self.coef_.T + self.intercept_


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def build_classifier(spec: Mapping[str, Any], random_state: int, packages: Sequence[str] = (),
                     key: str = "estimator") -> BaseEstimator:
    """An estimator from a config entry {estimator: dotted.path, params: {...}}; the fit's
    seed is passed as random_state when the estimator takes one. The class is checked again here
    (`checks.resolve_estimator`: a classifier class of sklearn, medssl or ``packages``) before it
    is called; ``key`` names the config entry in the error."""
    cls = resolve_estimator(spec["estimator"], packages, key)
    params = dict(spec.get("params", {}))
    if "random_state" in inspect.signature(cls).parameters:
        params.setdefault("random_state", random_state)
    try:
        return cls(**params)
    except TypeError as err:
        raise ValueError(f"classifier {spec['estimator']}: bad params {params}: {err}") from err


def predict(estimator: BaseEstimator, X: np.ndarray, mode: str) -> np.ndarray:
    if mode == "proba_argmax":  # the paper: argmax of predict_proba (Platt-scaled for SVC)
        return estimator.classes_[np.argmax(estimator.predict_proba(X), axis=1)]
    if mode == "predict":
        return estimator.predict(X)
    raise ValueError(f"predict mode must be 'predict' or 'proba_argmax', got {mode!r}")


_SAID: set[tuple[str, str, str]] = set()


def class_scores(estimator: BaseEstimator, X: np.ndarray, n_classes: int) -> tuple[np.ndarray | None, str]:
    """Per-class scores [N, n_classes] for ROC AUC, and where they came from.

    `predict_proba` when the estimator has it (SVC only with probability=True), else
    `decision_function` (a binary 1-D margin d becomes the columns [-d, d]), else (None, "none"); one
    that fails with a ValueError counts as absent (NearestCentroid at one image per class has no
    within-class variance to scale its scores by, while its predictions need none).
    Columns follow the label indices 0..n_classes-1; a class the estimator never saw (absent from
    its training subset) gets a constant column, i.e. it cannot be ranked (its AUC is 0.5)."""
    for method in ["predict_proba", "decision_function"]:
        if not hasattr(estimator, method):
            continue
        try:
            raw = np.asarray(getattr(estimator, method)(X), dtype=np.float64)
        except ValueError as err:
            said = (type(estimator).__name__, method, str(err))
            if said not in _SAID:  # once per process, not once per label draw
                _SAID.add(said)
                log.warning("%s.%s failed (%s): no scores from it (said once)", *said)
            continue
        break
    else:
        return None, "none"
    if raw.ndim == 1:
        raw = np.stack([-raw, raw], axis=1)
    columns = np.asarray(estimator.classes_, dtype=np.int64)
    if raw.shape[1] != len(columns):
        raise ValueError(f"{type(estimator).__name__}.{method} gave {raw.shape[1]} columns for "
                         f"{len(columns)} classes")
    scores = np.full((len(raw), n_classes), raw.min() if raw.size else 0.0)
    scores[:, columns] = raw
    return scores, method


def roc_auc_ovr(y_true: np.ndarray, y_score: np.ndarray | None, n_classes: int,
                ) -> tuple[float, list[float | None]]:
    """One-vs-rest ROC AUC per class and their unweighted (macro) mean.

    A class absent from `y_true` has no positives (or, with a single class present, no negatives):
    its AUC is undefined, reported as None and left out of the mean. The mean is NaN when no class has
    an AUC (one class in the test set) or when there are no scores (`y_score` None: the classifier
    gives no predict_proba or decision_function). Any monotone scores work (probabilities, margins,
    logits): each class is scored on its own column, so rows need not sum to 1."""
    from sklearn.metrics import roc_auc_score

    per_class: list[float | None] = [None] * n_classes
    if y_score is not None:
        present = np.unique(y_true)
        if len(present) > 1:
            for c in present:
                per_class[int(c)] = float(roc_auc_score(y_true == c, y_score[:, int(c)]))
    values = [v for v in per_class if v is not None]
    return (float(np.mean(values)) if values else float("nan")), per_class


def score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, y_score: np.ndarray | None = None,
          ) -> dict[str, Any]:
    """Test-set metrics of one fit over the classes that have test images: a class without any has no
    recall (None, not 0) and is left out of balanced accuracy and macro-F1; `y_score` [N, n_classes]
    are the per-class scores for ROC AUC (None: roc_auc is NaN)."""
    labels = np.arange(n_classes)
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    auc, per_class_auc = roc_auc_ovr(y_true, y_score, n_classes)
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
        "roc_auc": auc,
        "per_class_recall": [float(r) if c in set(y_true.tolist()) else None for c, r in zip(labels, recall)],
        "per_class_roc_auc": per_class_auc,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def class_coverage_fields(train_labels: np.ndarray, test_labels: np.ndarray, classes: Sequence[str]) -> dict:
    """The classes a fit could not score (no test image) or cannot predict (no training image),
    recorded with every fit and warned about."""
    fields = {"classes_without_test_images": [c for i, c in enumerate(classes) if i not in set(test_labels.tolist())],
              "classes_not_in_training": [c for i, c in enumerate(classes)
                                          if i in set(test_labels.tolist()) and i not in set(train_labels.tolist())]}
    if fields["classes_without_test_images"]:
        log.warning("class(es) %s have no test image: not scored", fields["classes_without_test_images"])
    if fields["classes_not_in_training"]:
        log.warning("test class(es) %s have no training image: they cannot be predicted",
                    fields["classes_not_in_training"])
    return fields


def run_budget(train: Embeddings, test: Embeddings, budget: int | str, seeds: Sequence[int],
               classifiers: Mapping[str, Mapping[str, Any]], preprocessing: Sequence[str],
               min_class_size: int | None = None, estimator_packages: Sequence[str] = (),
               ) -> Iterator[tuple[str, int, dict[str, Any], np.ndarray]]:
    """Fit every classifier for every seed at one label budget.

    `min_class_size` (> 1) restricts the evaluation to the classes with at least that many labeled
    images (the "250+" variant, `restrict_classes`). Yields (classifier name, seed, result record,
    test predictions as indices into record["classes"]); the test set is `restrict_classes`' one.
    `estimator_packages`: the config's evaluation.estimator_packages."""
    for name, spec in classifiers.items():  # a refused entry fails before the first fit
        resolve_estimator(spec["estimator"], estimator_packages, f"evaluation.classifiers.{name}.estimator")
    all_classes = list(train.classes)
    train, test = restrict_classes(train, test, min_class_size)
    n_classes = len(train.classes)
    for seed in seeds:
        index = budget_subset(train.labels, train.classes, budget, seed, all_classes)
        subset = train.subset(index)
        fronts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        for name, spec in classifiers.items():
            X, X_test, pre_seconds = preprocessed(classifier_steps(spec, preprocessing), subset, test, seed, fronts)
            t0 = time.perf_counter()
            estimator = build_classifier(spec, seed, estimator_packages,
                                         f"evaluation.classifiers.{name}.estimator").fit(X, subset.labels)
            y_pred = predict(estimator, X_test, spec.get("predict", "predict"))
            y_score, score_source = class_scores(estimator, X_test, n_classes)
            seconds = time.perf_counter() - t0 + pre_seconds
            record = {
                "classifier": name,
                "budget": str(budget),
                "seed": seed,
                "min_class_size": int(min_class_size or 1),
                "n_train": int(len(index)),
                "n_test": int(len(test.labels)),
                "n_classes": n_classes,
                "pool_class_counts": np.bincount(train.labels, minlength=n_classes).tolist(),
                **score(test.labels, y_pred, n_classes, y_score),
                "roc_auc_scores": score_source,
                **class_coverage_fields(subset.labels, test.labels, train.classes),
                "classes": list(train.classes),
                "train_images": subset.images.tolist(),
                "fit_seconds": seconds,
                **estimator_details(estimator),
            }
            log.info("%s budget=%s seed=%d n_train=%d balanced_accuracy=%.4f (%.2f s)",
                     name, budget, seed, len(index), record["balanced_accuracy"], seconds)
            yield name, seed, record, y_pred


def estimator_details(estimator: BaseEstimator) -> dict[str, Any]:
    """Fitted quantities worth keeping in the per-fit record (k actually used, early-stopping epoch)."""
    details = {}
    for attr, key in [("n_neighbors_", "n_neighbors"), ("best_epoch_", "best_epoch"), ("n_fit_", "n_fit"),
                      ("n_val_", "n_val")]:
        if hasattr(estimator, attr):
            details[key] = int(getattr(estimator, attr))
    return details
