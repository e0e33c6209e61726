"""The paper's figures from the tables: balanced accuracy against labels per class (Fig. 1, 2, per
dataset) and the confusion matrix with per-class accuracy (Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from medssl.report.tables import DL_ARM, SUPERVISED, benchmarks


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def budget_positions(summary: pd.DataFrame) -> pd.Series:
    """x positions on the log axis: the numeric budget, and 'all' one step beyond the largest."""
    numeric = summary.loc[summary["budget"] != "all", "budget_per_class"]
    top = numeric.max() if len(numeric) else 1
    all_x = max(top * 2.5, summary.loc[summary["budget"] == "all", "budget_per_class"].max()
                if (summary["budget"] == "all").any() else 0)
    return summary["budget_per_class"].where(summary["budget"] != "all", all_x).astype(float)


def _budget_axis(ax, data: pd.DataFrame, top_axis: bool = False) -> None:
    """Log x axis labelled with the budgets (1 ... 1000, 'all'); optionally a top axis with the
    absolute number of labeled training images at each budget (mean over seeds)."""
    ticks = data.sort_values("x").drop_duplicates("budget")
    ax.set_xscale("log")
    ax.set_xticks(ticks["x"])
    ax.set_xticklabels(ticks["budget"])
    ax.minorticks_off()
    if top_axis:
        top = ax.secondary_xaxis("top")
        top.set_xticks(ticks["x"])
        top.set_xticklabels([f"{n:.0f}" for n in ticks["n_train_mean"]], fontsize=6, rotation=45)
        top.minorticks_off()
        top.set_xlabel("labeled training images", fontsize=8)


def interval_band(ax, line: pd.DataFrame, metric: str, color, alpha: float) -> None:
    """The band of a curve: the summary's 95 % t-interval of the mean over the label draws
    (none where a budget has a single draw)."""
    mean, half = line[f"{metric}_mean"], line[f"{metric}_ci95"].fillna(0)
    ax.fill_between(line["x"], mean - half, mean + half, color=color, alpha=alpha, lw=0)


def _line(ax, line: pd.DataFrame, **style) -> None:
    line = line.sort_values("x")
    ax.plot(line["x"], line["balanced_accuracy_mean"], marker="o", ms=3.5, label=line["arm"].iloc[0], **style)
    interval_band(ax, line, "balanced_accuracy", style.get("color"), 0.15)


def _benchmark_lines(ax, marks: Mapping[str, float | None]) -> None:
    if marks.get("literature") is not None:
        ax.axhline(marks["literature"], color="grey", ls="--", lw=1, label="literature benchmark")
    if marks.get("dl") is not None:
        ax.axhline(marks["dl"], color="black", ls="-.", lw=1, label="DL benchmark")


def _dl_line(ax, line: pd.DataFrame, untrained: str | None) -> None:
    """The DL baseline's curve; one that did not train is drawn faint and labelled as such."""
    if untrained:
        line = line.assign(arm=line["arm"] + " (did not train: no benchmark)")
        _line(ax, line, color="grey", ls=":", lw=1.2)
    else:
        _line(ax, line, color="black", ls="-", lw=1.8)


def _mark_not_learned(ax, not_learned: Mapping[str, str] | None, methods) -> None:
    """Red note on a panel for each SSL method that did not beat random_init (see medssl.report.health)."""
    notes = [f"{m}: {v}" for m, v in (not_learned or {}).items() if m in set(methods)]
    if notes:
        ax.text(0.02, 0.98, "did not beat random init:\n" + "\n".join(notes), transform=ax.transAxes,
                va="top", ha="left", fontsize=7, color="#b00020",
                bbox={"facecolor": "white", "edgecolor": "#b00020", "alpha": 0.85})


def plot_balanced_accuracy(summary: pd.DataFrame, dataset: str, title: str | None = None,
                           literature: float | None = None, dl_benchmark: float | None = None,
                           variant: str = "classes_all", dl_untrained: str | None = None,
                           not_learned: Mapping[str, str] | None = None):
    """Every arm of one dataset (all methods x classifiers, and the DL baseline): balanced accuracy
    against labeled images per class, band = 95 % t-interval of the mean over the label draws.
    ``not_learned`` (method -> verdict) marks SSL methods that did not beat random_init. Returns the matplotlib figure."""
    import seaborn as sns

    plt = _pyplot()
    data = summary[(summary["dataset"] == dataset) & (summary.get("variant", variant) == variant)].copy()
    data["x"] = budget_positions(data)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    methods = [m for m in dict.fromkeys(data["method"]) if m != SUPERVISED]
    classifiers = [c for c in dict.fromkeys(data["classifier"]) if c != "finetune"]
    palette = dict(zip(classifiers, sns.color_palette("colorblind", len(classifiers))))
    styles = dict(zip(methods, ["-", "--", ":", (0, (5, 1, 1, 1))] * 4))
    for (method, classifier), line in data.groupby(["method", "classifier"], sort=False):
        if method == SUPERVISED:
            _dl_line(ax, line, dl_untrained)
        elif classifier == "finetune":  # the ImageNet-initialised supervised baseline, dash-dotted
            _line(ax, line, color="black", ls="-.", lw=1.8)
        else:
            _line(ax, line, color=palette[classifier], ls=styles[method])
    _benchmark_lines(ax, {"literature": literature, "dl": dl_benchmark})
    _mark_not_learned(ax, not_learned, methods)
    if len(data):
        ax.axhline(1.0 / int(data["n_classes"].iloc[0]), color="lightgrey", lw=0.8, zorder=0)
    _budget_axis(ax, data)
    ax.set_xlabel("maximum labeled images per class")
    ax.set_ylabel("balanced accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title or dataset)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right", ncol=2)
    fig.tight_layout()
    return fig


def plot_label_efficiency(summary: pd.DataFrame, datasets: Mapping[str, Mapping], method: str,
                          variants: Mapping[str, str], title: str | None = None,
                          supervised_cfg: Mapping | None = None, not_learned: Mapping[str, Mapping[str, str]] | None = None):
    """The paper's Fig. 1 (variants = classes_all) / Fig. 2 (classes_min<N>): one panel per dataset,
    balanced accuracy (mean, band = 95 % t-interval of the mean over the label draws) of every
    classifier on the SSL `method`'s embeddings and of the DL baseline against the maximum labeled images per class (log axis, then 'all'),
    the literature benchmark (dashed) and the DL benchmark (dash-dotted), and on a top axis the
    number of labeled training images."""
    import seaborn as sns

    plt = _pyplot()
    names = [d for d in datasets if d in variants]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.4), squeeze=False)
    for ax, dataset in zip(axes[0], names):
        variant = variants[dataset]
        data = summary[(summary["dataset"] == dataset) & (summary["variant"] == variant)
                       & summary["method"].isin([method, SUPERVISED])].copy()
        data["x"] = budget_positions(data)
        classifiers = [c for c in dict.fromkeys(data.loc[data["method"] == method, "classifier"])]
        palette = dict(zip(classifiers, sns.color_palette("colorblind", len(classifiers))))
        marks = benchmarks(datasets[dataset], variant, data, supervised_cfg)
        for (m, classifier), line in data.groupby(["method", "classifier"], sort=False):
            if m == SUPERVISED:
                _dl_line(ax, line, marks["dl_untrained"])
            else:
                _line(ax, line, color=palette[classifier])
        _benchmark_lines(ax, marks)
        _mark_not_learned(ax, (not_learned or {}).get(dataset), [method])
        ssl = data[data["method"] == method]
        _budget_axis(ax, ssl if len(ssl) else data, top_axis=True)
        ax.set_xlabel("maximum labeled training images per class")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        n_classes = int(data["n_classes"].iloc[0]) if len(data) else 0
        label = datasets[dataset].get("title") or dataset
        ax.set_title(f"{label}\n{n_classes} classes" + ("" if variant == "classes_all" else
                                                          f" (>= {variant.removeprefix('classes_min')} images)"),
                     fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("balanced accuracy")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def mean_confusion(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised confusion matrices averaged over seeds: (mean, std); the row of a class
    without test images is NaN (not scored), not 0."""
    mats = []
    for rec in records:
        cm = np.asarray(rec["confusion_matrix"], dtype=float)
        rows = cm.sum(axis=1, keepdims=True)
        mats.append(np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0))
    stack = np.stack(mats)
    return stack.mean(axis=0), stack.std(axis=0)


def per_class_accuracy(records: Sequence[dict], classes: Sequence[str]) -> np.ndarray:
    """Mean over seeds of the per-class recall (= per-class accuracy), in the order of `classes`."""
    out = []
    for rec in records:
        recall = dict(zip(rec["classes"], rec["per_class_recall"]))
        out.append([recall.get(c, np.nan) for c in classes])
    return np.nanmean(np.asarray(out, dtype=float), axis=0)


def plot_confusion_matrix(records: Sequence[dict], title: str | None = None,
                          baseline: Sequence[dict] | None = None,
                          literature_per_class: Mapping[str, float] | None = None,
                          ours_label: str = "ours",
                          intervals: Mapping[str, Mapping[str, tuple[float, float]]] | None = None):
    """The paper's Fig. 3: mean +- std (over seeds) of the row-normalised confusion matrix, classes
    ordered by frequency in the labeled pool, a class-frequency bar panel (linear, labelled) on the
    right, and below, rows of per-class accuracy: ours, the literature's (when given), the DL
    baseline's at the same budget (when given); ``intervals`` {row label: {class: (low, high)}}
    (e.g. `per_class_bootstrap`) are printed under the row's values."""
    plt = _pyplot()

    classes = records[0]["classes"]
    counts = np.asarray(records[0]["pool_class_counts"])
    order = np.argsort(-counts, kind="stable")
    mean, std = mean_confusion(records)
    mean, std = mean[np.ix_(order, order)], std[np.ix_(order, order)]
    names = [classes[i] for i in order]
    rows = [(ours_label, per_class_accuracy(records, names))]
    if literature_per_class:
        rows.append(("literature", np.asarray([literature_per_class.get(c, np.nan) for c in names], float)))
    if baseline:
        rows.append((DL_ARM, per_class_accuracy(baseline, names)))
    n = len(names)
    size = max(5.0, 0.55 * n + 2)
    fig = plt.figure(figsize=(size + 2, size + 0.35 * len(rows) + 0.4))
    grid = fig.add_gridspec(2, 2, width_ratios=[n, 3], height_ratios=[n, 0.9 * len(rows) + 0.4],
                            wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(grid[0, 0])
    bar = fig.add_subplot(grid[0, 1], sharey=ax)
    acc = fig.add_subplot(grid[1, 0], sharex=ax)
    ax.imshow(mean, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(n):
        for j in range(n):
            if np.isnan(mean[i, j]) and i == j:  # no test images: not scored
                ax.text(j, i, "–", ha="center", va="center", fontsize=6)
            elif mean[i, j] >= 0.005 or i == j:
                ax.text(j, i, f"{mean[i, j]:.2f}\n±{std[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if mean[i, j] > 0.5 else "black")
    ax.set_yticks(range(n), names, fontsize=7)
    ax.tick_params(axis="x", labelbottom=False)
    ax.set_ylabel("true")
    ax.set_title(title or "", fontsize=9)
    bar.barh(range(n), counts[order], color="grey")
    bar.set_xlim(0, max(1, counts.max()) * 1.05)  # linear: near-balanced classes look balanced
    bar.tick_params(axis="x", labelsize=6, rotation=90)
    bar.set_ylim(n - 0.5, -0.5)
    bar.tick_params(axis="y", labelleft=False)
    bar.set_xlabel("labeled images", fontsize=7)
    strip = np.vstack([r for _, r in rows])
    acc.imshow(np.nan_to_num(strip, nan=0.0), cmap="Greens", vmin=0, vmax=1, aspect="auto")
    intervals = intervals or {}
    for i, (label, _) in enumerate(rows):
        for j in range(n):
            value = strip[i, j]
            text = "–" if np.isnan(value) else f"{value:.2f}"
            low, high = intervals.get(label, {}).get(names[j], (np.nan, np.nan))
            if not np.isnan(value) and not np.isnan(low):
                text += f"\n[{low:.2f}, {high:.2f}]"
            acc.text(j, i, text, ha="center", va="center", fontsize=5 if "\n" in text else 6,
                     color="white" if value > 0.6 else "black")
    acc.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    acc.set_xticks(range(n), names, rotation=90, fontsize=7)
    acc.set_xlabel("predicted (per-class accuracy below)")
    return fig


def save_figure(fig, png: str | Path, pdf: str | Path) -> None:
    from medssl.runtime import atomic_path

    for path, fmt in [(png, "png"), (pdf, "pdf")]:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
