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
from sklearn.base import BaseEstimator
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score)

from medssl.checks import resolve_estimator
from medssl.evaluate.budgets import Embeddings, budget_subset, restrict_classes
from medssl.evaluate.preprocessing import classifier_steps, preprocessed

log = logging.getLogger(__name__)



def build_classifier(spec: Mapping[str, Any], random_state: int, packages: Sequence[str] = (),
                     key: str = "estimator") -> BaseEstimator:
    """An estimator from a config entry {estimator: dotted.path, params: {...} (default none)}; the fit's
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
