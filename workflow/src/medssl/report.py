"""Aggregation of the per-fit records into tables, and the paper's figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from medssl.draws import fit_records
from medssl.statistics import add_holm, paired_t
from medssl.health import dl_baseline_untrained

METRICS = ["balanced_accuracy", "accuracy", "macro_f1", "roc_auc"]
KEYS = ["dataset", "variant", "min_class_size", "method", "classifier", "budget"]
# results/tables/metrics.csv, one row per fit:
#   dataset, variant (classes_all | classes_min<N>), min_class_size (1 = every class), method (an SSL
#   method, or "supervised" for the DL baseline), classifier ("finetune" for the DL baseline), arm (the
#   plotted name), budget (maximum labeled images per class, or "all"), budget_per_class (numeric;
#   'all' = size of the largest class), seed (the label draw: one of evaluation.seeds, or a further draw of
#   evaluation.draws, see medssl.draws), n_train (labeled images of the subset, validation part
#   included for early-stopped arms), n_test, n_classes, the metrics on the test set (roc_auc: one-vs-rest
#   macro over the classes in the test set; empty for a classifier without scores or a record that
#   predates it), fit_seconds.
TABLE_COLUMNS = ["dataset", "variant", "min_class_size", "method", "classifier", "arm", "budget",
                 "budget_per_class", "seed", "n_train", "n_test", "n_classes", *METRICS, "fit_seconds",
                 "classes_not_scored"]  # classes without test images (';'-separated): not in the metrics
SUPERVISED = "supervised"
DL_ARM = "DL baseline"


def read_fit(path: str | Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def budget_per_class(budget: str, pool_class_counts: Sequence[int]) -> int:
    """Numeric x position of a budget: 'all' becomes the size of the largest class."""
    return int(max(pool_class_counts)) if str(budget) == "all" else int(budget)


def collect_metrics(paths: Iterable[str | Path], arm_labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per fit (columns: TABLE_COLUMNS, documented above); a draws file (`medssl.draws`)
    gives a row per label draw."""
    rows = []
    for rec in (r for path in paths for r in fit_records(path)):
        rows.append({
            **{k: rec[k] for k in ["dataset", "method", "classifier", "seed", "n_train", "n_test", "n_classes",
                                    *METRICS[:3], "fit_seconds"]},
            "roc_auc": rec.get("roc_auc", float("nan")),
            "variant": rec.get("variant", "classes_all"),
            "min_class_size": int(rec.get("min_class_size") or 1),
            "arm": arm_label(rec["method"], rec["classifier"], arm_labels),
            "budget": str(rec["budget"]),
            "budget_per_class": budget_per_class(rec["budget"], rec["pool_class_counts"]),
            "classes_not_scored": ";".join(rec.get("classes_without_test_images", [])),
        })
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return df.sort_values(["dataset", "min_class_size", "method", "classifier", "budget_per_class", "seed"],
                          kind="stable").reset_index(drop=True)


def pool_pretraining_seeds(metrics: pd.DataFrame, methods: Mapping[str, Mapping],
                           arm_labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Rows of the instances of a method with ``pretrain_seeds`` (config entries with ``family`` and
    ``pretrain_seed``, made by the workflow) renamed to their method, with a ``pretrain_seed``
    column (empty for methods pretrained once), so every summary over seeds pools pretraining and
    label-draw seeds: its std and CI include the pretraining variance."""
    out = metrics.copy()
    family = {name: entry.get("family", name) for name, entry in methods.items()}
    seed = {name: entry.get("pretrain_seed") for name, entry in methods.items()}
    out.insert(out.columns.get_loc("seed"), "pretrain_seed", out["method"].map(seed).astype("Int64"))
    out["method"] = out["method"].map(lambda m: family.get(m, m))
    out["arm"] = [arm_label(m, c, arm_labels) for m, c in zip(out["method"], out["classifier"])]
    return out


def arm_label(method: str, classifier: str, labels: Mapping[str, str] | None = None) -> str:
    if method == SUPERVISED:
        return DL_ARM
    if method == f"{SUPERVISED}_imagenet":
        return f"{DL_ARM} (ImageNet init)"
    labels = labels or {}
    return f"{method} + {labels.get(classifier, classifier)}"


def ci95(x: pd.Series) -> float:
    """Half-width of the 95 % t-interval of the mean over the label draws (seeds); NaN for one."""
    n = x.count()
    return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and the 95 % t-interval of the mean (``_ci95``: its half-width) of each metric over the
    label draws (seeds; ``n_seeds`` of them) per dataset x variant x arm x budget."""
    grouped = df.groupby(KEYS + ["arm", "budget_per_class"], sort=False)
    out = grouped.agg(n_seeds=("seed", "count"), n_classes=("n_classes", "first"), n_train_mean=("n_train", "mean"))
    for metric in METRICS:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=1)
        out[f"{metric}_ci95"] = grouped[metric].agg(ci95)
    return out.reset_index()


def benchmarks(dataset_cfg: Mapping, variant: str, summary: pd.DataFrame | None = None,
               supervised_cfg: Mapping | None = None) -> dict[str, float | None]:
    """The horizontal lines of a panel: the literature benchmark and the DL benchmark.

    Values come from the dataset's config (min_class_benchmarks for a classes_min<N> variant); a
    missing DL benchmark falls back to this run's DL baseline at budget 'all' (mean over seeds),
    unless that baseline did not train (``dl_untrained`` says why; see medssl.health)."""
    if variant == "classes_all":
        lit, dl = dataset_cfg.get("literature_benchmark"), dataset_cfg.get("dl_benchmark")
    else:
        extra = dataset_cfg.get("min_class_benchmarks") or {}
        lit, dl = extra.get("literature"), extra.get("dl")
    measured, untrained = None, None
    if summary is not None:
        rows = summary[(summary["variant"] == variant) & (summary["method"] == SUPERVISED)
                       & (summary["budget"] == "all")]
        if len(rows):
            measured = float(rows["balanced_accuracy_mean"].iloc[0])
            untrained = dl_baseline_untrained(supervised_cfg, measured, int(rows["n_classes"].iloc[0]))
    return {"literature": lit, "dl": dl if dl is not None else (None if untrained else measured),
            "dl_measured": measured, "dl_configured": dl, "dl_untrained": untrained}


def label_efficiency(summary: pd.DataFrame, datasets: Mapping[str, Mapping],
                     supervised_cfg: Mapping | None = None) -> pd.DataFrame:
    """Per dataset x variant x arm and benchmark (literature, the configured DL benchmark, this run's
    DL baseline): the smallest budget whose mean balanced accuracy reaches it (empty when none does),
    with the images per class and in all at it. A DL baseline that did not train is no benchmark:
    its rows say why in ``note`` and reach nothing."""
    rows = []
    for (dataset, variant), data in summary.groupby(["dataset", "variant"], sort=False):
        marks = benchmarks(datasets.get(dataset, {}), variant, data, supervised_cfg)
        named = {"literature": marks["literature"], "dl_benchmark": marks["dl_configured"],
                 "dl_benchmark_this_run": marks["dl_measured"]}
        for (method, classifier, arm), line in data.groupby(["method", "classifier", "arm"], sort=False):
            line = line.sort_values("budget_per_class")
            for name, value in named.items():
                if value is None or (isinstance(value, float) and np.isnan(value)):
                    continue
                note = ""
                if name == "dl_benchmark_this_run" and marks["dl_untrained"]:
                    note = f"not a benchmark: the DL baseline {marks['dl_untrained']}"
                hit = line[line["balanced_accuracy_mean"] >= value] if not note else line.iloc[:0]
                first = hit.iloc[0] if len(hit) else None
                rows.append({
                    "dataset": dataset, "variant": variant, "method": method, "classifier": classifier, "arm": arm,
                    "benchmark": name, "benchmark_value": value, "note": note,
                    "budget_reached": first["budget"] if first is not None else None,
                    "budget_per_class_reached": first["budget_per_class"] if first is not None else None,
                    "n_train_reached": first["n_train_mean"] if first is not None else None,
                    "best_mean": line["balanced_accuracy_mean"].max(),
                    "best_budget": line.loc[line["balanced_accuracy_mean"].idxmax(), "budget"],
                })
    return pd.DataFrame(rows, columns=["dataset", "variant", "method", "classifier", "arm", "benchmark",
                                       "benchmark_value", "note", "budget_reached", "budget_per_class_reached",
                                       "n_train_reached", "best_mean", "best_budget"])


def paired_comparison(df: pd.DataFrame, method: str, classifier: str) -> pd.DataFrame:
    """SSL arm (method + classifier) against the DL baseline on the same subsets (same seed), per
    dataset x variant x budget, and pooled over budgets ("pooled": pairs = budget x seed).

    Two-sided Wilcoxon signed-rank test of the balanced-accuracy differences (exact for small n; with
    5 seeds the smallest possible p is 0.0625) and a paired t-test, per budget Holm-adjusted over
    the dataset's budgets (`add_holm`); the pooled row treats nested budget x seed pairs as
    independent and is descriptive only. With several pretrainings the SSL value of a label draw is
    the mean over them."""
    ssl = df[(df["method"] == method) & (df["classifier"] == classifier)]
    dl = df[df["method"] == SUPERVISED]
    keys = ["dataset", "variant", "budget", "seed"]
    # several pretrainings (pretrain_seed): their mean per label draw is the paired unit
    ssl = ssl.groupby([*keys, "arm", "budget_per_class"], as_index=False, sort=False)["balanced_accuracy"].mean()
    pairs = ssl.merge(dl, on=keys, suffixes=("_ssl", "_dl"))
    rows = []
    if pairs.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    pairs["diff"] = pairs["balanced_accuracy_ssl"] - pairs["balanced_accuracy_dl"]
    for (dataset, variant), group in pairs.groupby(["dataset", "variant"], sort=False):
        per_budget = [(b, g) for b, g in group.groupby("budget", sort=False)]
        per_budget.sort(key=lambda bg: bg[1]["budget_per_class_ssl"].iloc[0])
        for budget, g in [*per_budget, ("pooled", group)]:
            statistic, p = _wilcoxon(g["diff"].to_numpy())
            rows.append({
                "dataset": dataset, "variant": variant, "budget": budget, "ssl_arm": g["arm_ssl"].iloc[0],
                "n_pairs": len(g), "ssl_mean": g["balanced_accuracy_ssl"].mean(),
                "dl_mean": g["balanced_accuracy_dl"].mean(), "mean_difference": g["diff"].mean(),
                "ssl_wins": int((g["diff"] > 0).sum()), "wilcoxon_statistic": statistic, "p_value": p,
                "t_test_p": paired_t(g["diff"].to_numpy()),
            })
    return add_holm(pd.DataFrame(rows, columns=PAIRED_COLUMNS[:-2]), PAIRED_COLUMNS)


PAIRED_COLUMNS = ["dataset", "variant", "budget", "ssl_arm", "n_pairs", "ssl_mean", "dl_mean", "mean_difference",
                  "ssl_wins", "wilcoxon_statistic", "p_value", "t_test_p", "p_value_holm", "t_test_p_holm"]


def _wilcoxon(diff: np.ndarray) -> tuple[float, float]:
    if len(diff) < 2 or np.all(diff == 0):
        return float("nan"), float("nan")
    res = stats.wilcoxon(diff, alternative="two-sided", zero_method="wilcox")
    return float(res.statistic), float(res.pvalue)


def add_paired_to_summary(summary: pd.DataFrame, paired: pd.DataFrame, method: str, classifier: str) -> pd.DataFrame:
    """The paired comparison's per-budget difference and p-value on the compared arm's summary rows."""
    cols = {"mean_difference": "vs_dl_mean_difference", "ssl_wins": "vs_dl_wins", "n_pairs": "vs_dl_n_pairs",
            "p_value": "vs_dl_wilcoxon_p"}
    if paired.empty:
        return summary.assign(**{c: np.nan for c in cols.values()})
    right = paired[paired["budget"] != "pooled"][["dataset", "variant", "budget", *cols]].rename(columns=cols)
    right = right.assign(method=method, classifier=classifier)
    return summary.merge(right, on=["dataset", "variant", "method", "classifier", "budget"], how="left")


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
    """Red note on a panel for each SSL method that did not beat random_init (see medssl.health)."""
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
