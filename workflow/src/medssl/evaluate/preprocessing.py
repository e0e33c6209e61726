"""The feature preprocessing fit on each labeled subset before a classifier: the config's
``evaluation.preprocessing`` (the paper's PowerTransformer -> PCA), or a classifier's own list of steps
(``evaluation.classifiers.<x>.preprocess``), e.g. ``[center, l2_normalize]`` for nearest centroid."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from medssl.evaluate.power_transform import YeoJohnson

if TYPE_CHECKING:
    from medssl.evaluate.budgets import Embeddings

__all__ = ["build_preprocessor", "classifier_steps", "preprocessed"]


def build_preprocessor(steps: Sequence[str], random_state: int):
    """The paper's front end is PowerTransformer (Yeo-Johnson, standardised; `YeoJohnson`, the same
    numbers, fit faster) -> PCA (all components).
    ``center`` subtracts the labeled subset's mean (no scaling); ``center, l2_normalize`` is the
    few-shot nearest-centroid front end (centred, L2-normalised embeddings)."""
    make = {
        "power_transform": lambda: YeoJohnson(),
        "standardize": lambda: StandardScaler(),
        "center": lambda: StandardScaler(with_std=False),
        "pca": lambda: PCA(random_state=random_state),
        "l2_normalize": lambda: Normalizer(),
    }
    unknown = [s for s in steps if s not in make]
    if unknown:
        raise ValueError(f"evaluation.preprocessing: unknown step(s) {unknown}; choose from {sorted(make)}")
    return make_pipeline(*(make[s]() for s in steps)) if steps else None


def classifier_steps(spec: Mapping[str, Any], preprocessing: Sequence[str]) -> tuple[str, ...]:
    """A classifier's preprocessing: ``preprocess`` true (default) = evaluation.preprocessing, false =
    none, a list = its own steps (e.g. ``[center, l2_normalize]`` for nearest centroid)."""
    own = spec.get("preprocess", True)
    if own is True:
        return tuple(preprocessing)
    return tuple(own) if own else ()


def preprocessed(steps: tuple[str, ...], subset: Embeddings, test: Embeddings, seed: int,
                 fronts: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(train, test features, seconds) after ``steps`` fit on the labeled subset; each distinct list
    of steps is fit once per subset (``fronts``), and its seconds are counted with every fit using it."""
    if not steps:
        return subset.features, test.features, 0.0
    if steps not in fronts:
        t0 = time.perf_counter()
        pre = build_preprocessor(list(steps), random_state=seed)
        fronts[steps] = (pre.fit_transform(subset.features), pre.transform(test.features), time.perf_counter() - t0)
    return fronts[steps]
