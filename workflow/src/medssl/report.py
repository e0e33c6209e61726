"""Aggregation of the per-fit records into tables, and the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ["balanced_accuracy", "accuracy", "macro_f1"]
KEYS = ["dataset", "method", "classifier", "budget"]
TABLE_COLUMNS = ["dataset", "method", "classifier", "arm", "budget", "budget_per_class", "seed", "n_train",
                 "n_test", "n_classes", *METRICS, "fit_seconds"]


def read_fit(path: str | Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def budget_per_class(budget: str, pool_class_counts: Sequence[int]) -> int:
    """Numeric x position of a budget: 'all' becomes the size of the largest class."""
    return int(max(pool_class_counts)) if str(budget) == "all" else int(budget)


def collect_metrics(paths: Iterable[str | Path], arm_labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per fit (see TABLE_COLUMNS; documented in results/README in the repository README)."""
    rows = []
    for path in paths:
        rec = read_fit(path)
        rows.append({
            **{k: rec[k] for k in ["dataset", "method", "classifier", "seed", "n_train", "n_test", "n_classes",
                                    *METRICS, "fit_seconds"]},
            "arm": arm_label(rec["method"], rec["classifier"], arm_labels),
            "budget": str(rec["budget"]),
            "budget_per_class": budget_per_class(rec["budget"], rec["pool_class_counts"]),
        })
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return df.sort_values(["dataset", "method", "classifier", "budget_per_class", "seed"],
                          kind="stable").reset_index(drop=True)


def arm_label(method: str, classifier: str, labels: Mapping[str, str] | None = None) -> str:
    labels = labels or {}
    return f"{method} + {labels.get(classifier, classifier)}"


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and a 95 % t-interval of each metric over seeds per dataset x method x classifier x budget."""
    def ci95(x: pd.Series) -> float:
        n = x.count()
        return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")

    grouped = df.groupby(KEYS + ["arm", "budget_per_class"], sort=False)
    out = grouped.agg(n_seeds=("seed", "count"), n_train_mean=("n_train", "mean"))
    for metric in METRICS:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=1)
        out[f"{metric}_ci95"] = grouped[metric].agg(ci95)
    return out.reset_index()


def _budget_axis(ax, budgets: pd.DataFrame) -> None:
    ticks = budgets.drop_duplicates("budget").sort_values("x")
    ax.set_xscale("log")
    ax.set_xticks(ticks["x"])
    ax.set_xticklabels(ticks["budget"])
    ax.minorticks_off()


def budget_positions(summary: pd.DataFrame) -> pd.Series:
    """x positions on the log axis: the numeric budget, and 'all' one step beyond the largest."""
    numeric = summary.loc[summary["budget"] != "all", "budget_per_class"]
    top = numeric.max() if len(numeric) else 1
    all_x = max(top * 2.5, summary.loc[summary["budget"] == "all", "budget_per_class"].max()
                if (summary["budget"] == "all").any() else 0)
    return summary["budget_per_class"].where(summary["budget"] != "all", all_x).astype(float)


def plot_balanced_accuracy(summary: pd.DataFrame, dataset: str, title: str | None = None,
                           literature: float | None = None, dl_benchmark: float | None = None):
    """Balanced accuracy against labeled images per class: one line per method x classifier,
    band = +-1 std over seeds. Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = summary[summary["dataset"] == dataset].copy()
    data["x"] = budget_positions(data)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    methods = list(dict.fromkeys(data["method"]))
    classifiers = list(dict.fromkeys(data["classifier"]))
    palette = dict(zip(classifiers, sns.color_palette("colorblind", len(classifiers))))
    styles = dict(zip(methods, ["-", "--", ":", "-."] * 4))
    for (method, classifier), line in data.groupby(["method", "classifier"], sort=False):
        line = line.sort_values("x")
        mean, std = line["balanced_accuracy_mean"], line["balanced_accuracy_std"].fillna(0)
        ax.plot(line["x"], mean, styles[method], marker="o", ms=4, color=palette[classifier],
                label=line["arm"].iloc[0])
        ax.fill_between(line["x"], mean - std, mean + std, color=palette[classifier], alpha=0.15, lw=0)
    if literature is not None:
        ax.axhline(literature, color="grey", ls="--", lw=1, label="literature benchmark")
    if dl_benchmark is not None:
        ax.axhline(dl_benchmark, color="black", ls="-.", lw=1, label="DL benchmark")
    n_classes = int(data["n_classes"].iloc[0]) if "n_classes" in data else None
    if n_classes:
        ax.axhline(1.0 / n_classes, color="lightgrey", lw=0.8, zorder=0)
    _budget_axis(ax, data)
    ax.set_xlabel("maximum labeled images per class")
    ax.set_ylabel("balanced accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or dataset)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def mean_confusion(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised confusion matrices averaged over seeds: (mean, std)."""
    mats = []
    for rec in records:
        cm = np.asarray(rec["confusion_matrix"], dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        mats.append(np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0))
    stack = np.stack(mats)
    return stack.mean(axis=0), stack.std(axis=0)


def plot_confusion_matrix(records: Sequence[dict], title: str | None = None):
    """Mean +- std (over seeds) of the row-normalised confusion matrix, classes ordered by
    frequency in the labeled pool, with a class-frequency bar panel (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = records[0]["classes"]
    counts = np.asarray(records[0]["pool_class_counts"])
    order = np.argsort(-counts, kind="stable")
    mean, std = mean_confusion(records)
    mean, std = mean[np.ix_(order, order)], std[np.ix_(order, order)]
    names = [classes[i] for i in order]
    n = len(names)
    size = max(5.0, 0.55 * n + 2)
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(size + 2, size), gridspec_kw={"width_ratios": [n, 3]})
    im = ax.imshow(mean, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if mean[i, j] >= 0.005 or i == j:
                ax.text(j, i, f"{mean[i, j]:.2f}\n±{std[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if mean[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "")
    bar.barh(range(n), counts[order], color="grey")
    bar.set_xscale("log")
    bar.set_ylim(n - 0.5, -0.5)
    bar.set_yticks([])
    bar.set_xlabel("labeled images")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    return fig


def save_figure(fig, png: str | Path, pdf: str | Path) -> None:
    from medssl.runtime import atomic_path

    for path, fmt in [(png, "png"), (pdf, "pdf")]:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150)
