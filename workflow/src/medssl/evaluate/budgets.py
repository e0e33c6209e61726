"""Embeddings of a split and the label budgets drawn from them: the labeled subset of a (budget, seed),
the "250+" class restriction, the early-stopping holdout and class weights, identical for every arm."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


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


def restrict_classes(train: "Embeddings", test: "Embeddings", min_class_size: int | None,
                     ) -> tuple["Embeddings", "Embeddings"]:
    """The "250+" variant (docs/papers.md#the-250-variant): keep the classes with at least `min_class_size` images in
    the labeled pool (>= as the original code; the paper text says "more than"), and drop every other
    class from the labeled pool and the test set. The SSL pool is not touched (it is unlabeled).

    Kept classes keep their configured order; labels are re-indexed to 0..k-1. Returns the inputs
    unchanged for None or 1. The budget draw stays identical for the kept classes: `sample_budget`
    seeds each class by its label index, so call it *before* re-indexing -- `variant_pool` does."""
    if not min_class_size or min_class_size <= 1:
        return train, test
    counts = np.bincount(train.labels, minlength=len(train.classes))
    kept = np.flatnonzero(counts >= min_class_size)
    if len(kept) < 2:
        raise ValueError(f"min_class_size={min_class_size}: only {len(kept)} class(es) have that many labeled "
                         f"images (counts {dict(zip(train.classes, counts.tolist()))}); need at least 2")
    remap = np.full(len(train.classes), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    classes = [train.classes[i] for i in kept]

    def restrict(e: "Embeddings") -> "Embeddings":
        keep = np.isin(e.labels, kept)
        return Embeddings(e.features[keep], e.images[keep], remap[e.labels[keep]], classes)

    return restrict(train), restrict(test)


def budget_subset(labels: np.ndarray, classes: Sequence[str], budget: int | str, seed: int,
                  all_classes: Sequence[str] | None = None) -> np.ndarray:
    """Indices of the labeled subset for (budget, seed), identical for every arm of every rule.

    `labels` index `classes`; when these are a restricted class list (the "250+" variant), pass the
    full configured list as `all_classes`: each class is then drawn with the generator of its index in
    the full list, so a kept class gets exactly the images it gets in the full evaluation."""
    if all_classes is not None:
        position = np.asarray([list(all_classes).index(c) for c in classes], dtype=np.int64)
        labels = position[labels]
    return sample_budget(labels, budget, seed)


def holdout_split(labels: np.ndarray, fraction: float, seed: int, min_per_class: int = 3,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices for early stopping: `fraction` of each class (at least one image,
    rounded) held out, stratified and seeded -- the paper's 70/30 split of the label budget.

    Classes with fewer than `min_per_class` images give all of them to the fit part (a budget of
    1-2 per class cannot spare a validation image). When no class can, the validation part is
    empty and the caller trains for a fixed number of epochs without early stopping."""
    fit, val = [], []
    for cls in np.unique(labels):
        members = np.random.default_rng([seed, int(cls), 7]).permutation(np.flatnonzero(labels == cls))
        n_val = max(1, int(round(fraction * len(members)))) if len(members) >= min_per_class else 0
        val.append(members[:n_val])
        fit.append(members[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val)).astype(np.int64)


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Cross-entropy weights w_c proportional to 1/count_c, normalised to sum to the number of classes
    present (the original's weighting); classes absent from `labels` get weight 0."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return w * (counts > 0).sum() / w.sum()
