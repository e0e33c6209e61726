"""Aggregation of the per-fit records into tables (the figures: medssl.report.figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from medssl.evaluate.draws import fit_records
from medssl.report.health import dl_baseline_untrained
from medssl.report.statistics import add_holm, paired_t

METRICS = ["balanced_accuracy", "accuracy", "macro_f1", "roc_auc"]
KEYS = ["dataset", "variant", "min_class_size", "method", "classifier", "budget"]
# results/tables/metrics.csv, one row per fit:
#   dataset, variant (classes_all | classes_min<N>), min_class_size (1 = every class), method (an SSL
#   method, or "supervised" for the DL baseline), classifier ("finetune" for the DL baseline), arm (the
#   plotted name), budget (maximum labeled images per class, or "all"), budget_per_class (numeric;
#   'all' = size of the largest class), seed (the label draw: one of evaluation.seeds, or a further draw of
#   evaluation.draws, see medssl.evaluate.draws), n_train (labeled images of the subset, validation part
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
    """One row per fit (columns: TABLE_COLUMNS, documented above); a draws file (`medssl.evaluate.draws`)
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
    unless that baseline did not train (``dl_untrained`` says why; see medssl.report.health)."""
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
