"""Statistics of the evaluation: multiple-comparison correction of the per-budget paired tests,
and bootstrap intervals over test images."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error) of a family of p-values; NaNs stay NaN and
    are not counted in the family."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def add_holm(paired: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Holm-adjusted per-budget p-values: one family per dataset x variant (its budgets; the pooled
    row, whose budget x seed pairs are not independent, is left out and gets NaN)."""
    paired = paired.copy()
    per_budget = paired[paired["budget"] != "pooled"]
    for column in ["p_value", "t_test_p"]:
        adjusted = pd.Series(np.nan, index=paired.index)
        for _, family in per_budget.groupby(["dataset", "variant"], sort=False):
            adjusted[family.index] = holm(family[column].to_numpy())
        paired[f"{column}_holm"] = adjusted
    return paired.reindex(columns=list(columns))


def paired_t(diff: np.ndarray) -> float:
    """Two-sided paired t-test of the differences (NaN below 2 pairs or without variance)."""
    if len(diff) < 2 or np.all(diff == diff[0]):
        return float("nan")
    return float(stats.ttest_1samp(diff, 0.0).pvalue)


def per_class_bootstrap(predictions: Sequence[pd.DataFrame], classes: Sequence[str], n_boot: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval over test images of the per-class accuracy averaged over fits
    (seeds): every fit is scored on the same test images, so each replicate resamples a class's
    images once (seeded) and scores every fit on that resample. ``predictions``: the fits'
    ``image,label,prediction`` tables. Returns {class: (low, high)}; (nan, nan) without test images."""
    if not predictions:
        return {}
    first = predictions[0]
    images, labels = first["image"].to_numpy(), first["label"].astype(str).to_numpy()
    correct = []
    for frame in predictions:
        frame = frame.set_index("image")
        missing = set(images) - set(frame.index)
        if missing or len(frame) != len(images):
            raise ValueError(f"the fits were scored on different test images (e.g. {sorted(missing)[:3]})")
        frame = frame.loc[images]
        correct.append((frame["label"].astype(str) == frame["prediction"].astype(str)).to_numpy())
    correct = np.stack(correct)  # [fits, images]
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - level) / 2
    out = {}
    for name in classes:
        idx = np.flatnonzero(labels == name)
        if not len(idx):
            out[name] = (float("nan"), float("nan"))
            continue
        draws = idx[rng.integers(0, len(idx), size=(n_boot, len(idx)))]
        accuracy = correct[:, draws].mean(axis=2).mean(axis=0)  # [n_boot]
        low, high = np.percentile(accuracy, [tail, 100 - tail])
        out[name] = (float(low), float(high))
    return out
