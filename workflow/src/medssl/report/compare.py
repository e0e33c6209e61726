"""Method comparison in the style of Chattopadhyay et al. (SmallDataSSL, ICIP 2023).

- `comparison_table`: method x dataset at one label budget (default 'all', the paper's setting),
  accuracy / macro-F1 / ROC AUC as mean and std over seeds, for each evaluation (classifier) and the
  supervised baselines; `format_comparison` lays it out like the paper's table ("0.912 ± 0.010").
- `plot_method_curves`: label-efficiency curves with every SSL method on one panel per dataset (one
  row of panels per classifier), the untrained backbone (`random_init`) drawn as the reference line
  and the supervised baselines in black.
Both read `summary.csv` (`medssl.report.tables.summarize`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    import pandas as pd

# pandas, medssl.report.tables and medssl.report.figures are imported where used: `comparison_settings` runs at plan time.

TABLE_METRICS = {"accuracy": "Acc", "macro_f1": "F1", "roc_auc": "AUC"}
BASELINE_CLASSIFIER = "finetune"  # the classifier name of the supervised baselines' records


def comparison_table(summary: pd.DataFrame, budget: str | int = "all", variant: str = "classes_all",
                     classifiers: Sequence[str] | None = None, metrics: Sequence[str] = tuple(TABLE_METRICS),
                     ) -> pd.DataFrame:
    """Tidy numeric table: one row per dataset x method x classifier at `budget` (the supervised
    baselines, classifier 'finetune', always included), with n_seeds and <metric>_mean / _std."""
    missing = [f"{m}_mean" for m in metrics if f"{m}_mean" not in summary]
    if missing:
        raise ValueError(f"summary has no column(s) {missing}: re-run aggregate_metrics")
    rows = summary[(summary["budget"].astype(str) == str(budget)) & (summary["variant"] == variant)]
    if classifiers is not None:
        rows = rows[rows["classifier"].isin([*classifiers, BASELINE_CLASSIFIER])]
    columns = ["dataset", "method", "classifier", "arm", "budget", "n_seeds",
               *[f"{m}_{stat}" for m in metrics for stat in ("mean", "std")]]
    return rows[columns].reset_index(drop=True)


def _cell(mean: float, std: float, digits: int) -> str:
    import pandas as pd

    if pd.isna(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_comparison(table: pd.DataFrame, datasets: Mapping[str, Mapping] | Sequence[str],
                      classifier_labels: Mapping[str, str] | None = None, metrics: Mapping[str, str] = TABLE_METRICS,
                      digits: int = 3) -> pd.DataFrame:
    """The paper's layout: rows (evaluation, method), columns '<dataset title> <Acc|F1|AUC>', cells
    'mean ± std' over seeds ('n/a' where a metric is undefined, e.g. AUC without scores; '–' where the
    arm did not run on that dataset). Row order: classifiers, then methods, in table order."""
    import pandas as pd

    titles = {d: (datasets[d].get("title") or d) if isinstance(datasets, Mapping) else d for d in datasets}
    labels = {BASELINE_CLASSIFIER: "supervised (end to end)", **(classifier_labels or {})}
    out = []
    for (classifier, method), group in table.groupby(["classifier", "method"], sort=False):
        row = {"evaluation": labels.get(classifier, classifier), "method": method}
        by_dataset = group.set_index("dataset")
        for dataset, title in titles.items():
            for metric, short in metrics.items():
                row[f"{title} {short}"] = (_cell(by_dataset.at[dataset, f"{metric}_mean"],
                                                 by_dataset.at[dataset, f"{metric}_std"], digits)
                                           if dataset in by_dataset.index else "–")
        out.append(row)
    frame = pd.DataFrame(out, columns=["evaluation", "method", *[f"{t} {s}" for t in titles.values()
                                                                 for s in metrics.values()]])
    order = {c: i for i, c in enumerate(dict.fromkeys([*(classifier_labels or {}).values(), *frame["evaluation"]]))}
    return frame.sort_values("evaluation", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def plot_method_curves(summary: pd.DataFrame, datasets: Mapping[str, Mapping], classifiers: Mapping[str, str],
                       reference: Sequence[str] = ("random_init",), variant: str = "classes_all",
                       metric: str = "balanced_accuracy", pretrained: Sequence[str] = ()):
    """Grid of panels, rows = classifiers (name -> label), columns = datasets: `metric` (mean, band =
    95 % t-interval of the mean over the label draws) against labeled images per class for every
    method on that classifier; methods in `reference` grey dashed, the frozen pretrained models in `pretrained` grey dash-dotted, the
    supervised baselines (classifier 'finetune') black; chance level light grey. One shared legend.
    Returns the matplotlib figure."""
    import seaborn as sns

    from medssl.report.figures import _budget_axis, _pyplot, budget_positions, interval_band

    plt = _pyplot()
    data = summary[(summary["variant"] == variant) & summary["dataset"].isin(list(datasets))].copy()
    reference = [*reference, *(m for m in pretrained if m not in reference)]
    methods = [m for m in dict.fromkeys(data.loc[data["classifier"] != BASELINE_CLASSIFIER, "method"])
               if m not in reference]
    colors = dict(zip(methods, sns.color_palette("colorblind", max(len(methods), 1))))
    baselines = list(dict.fromkeys(data.loc[data["classifier"] == BASELINE_CLASSIFIER, "method"]))
    names = list(datasets)
    fig, axes = plt.subplots(len(classifiers), len(names), figsize=(4.2 * len(names), 3.4 * len(classifiers)),
                             squeeze=False, sharey=True)
    handles = {}
    for r, (classifier, label) in enumerate(classifiers.items()):
        for c, dataset in enumerate(names):
            ax = axes[r][c]
            panel = data[(data["dataset"] == dataset)
                         & ((data["classifier"] == classifier) | (data["classifier"] == BASELINE_CLASSIFIER))]
            if panel.empty:
                ax.set_axis_off()
                continue
            panel = panel.assign(x=budget_positions(panel))
            for method, line in panel.groupby("method", sort=False):
                if method in baselines:
                    style = {"color": "black", "ls": ["-", "-.", ":"][baselines.index(method) % 3], "lw": 1.6}
                elif method in reference:
                    style = {"color": "grey", "ls": "-." if method in pretrained else "--", "lw": 1.4}
                else:
                    style = {"color": colors[method], "ls": "-", "lw": 1.4}
                line = line.sort_values("x")
                handles[method], = ax.plot(line["x"], line[f"{metric}_mean"], marker="o", ms=3, label=method, **style)
                interval_band(ax, line, metric, style["color"], 0.12)
            ax.axhline(1.0 / int(panel["n_classes"].iloc[0]), color="lightgrey", lw=0.8, zorder=0)
            _budget_axis(ax, panel)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(datasets[dataset].get("title") or dataset, fontsize=9)
            if r == len(classifiers) - 1:
                ax.set_xlabel("maximum labeled images per class")
            if c == 0:
                ax.set_ylabel(f"{label}\n{metric.replace('_', ' ')}")
    order = [m for m in [*methods, *reference, *baselines] if m in handles]
    fig.legend([handles[m] for m in order], [_legend_label(m, reference, baselines, pretrained) for m in order],
               loc="lower center", ncol=min(len(order), 3 * len(names)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.12 if len(names) == 1 else 0.06) if len(classifiers) > 1 else 0.1, 1, 1))
    return fig


def _legend_label(method: str, reference: Sequence[str], baselines: Sequence[str],
                  pretrained: Sequence[str] = ()) -> str:
    if method in pretrained:
        return f"{method} (frozen pretrained)"
    if method in reference:
        return f"{method} (untrained reference)"
    if method in baselines:
        return f"{method} (end to end)"
    return method


def reference_methods(methods: Mapping[str, Mapping]) -> list[str]:
    """The config's untrained-backbone methods (kind random_init): the curves' reference lines."""
    return [name for name, spec in methods.items() if spec.get("kind") == "random_init"]


def pretrained_methods(methods: Mapping[str, Mapping]) -> list[str]:
    """The config's frozen off-the-shelf models (kind pretrained): reference lines of their own."""
    return [name for name, spec in methods.items() if spec.get("kind") == "pretrained"]


def comparison_settings(config: Mapping, labels: Mapping[str, str]) -> dict:
    """figures.comparison of a validated config (the schema's defaults: budget 'all', 3 digits), its
    classifiers (default every one) with their ``labels``, and the variant compared (classes_all)."""
    settings = config["figures"]["comparison"]
    all_classifiers = config["evaluation"]["classifiers"]
    chosen = settings.get("classifiers") or list(all_classifiers)
    unknown = sorted(set(chosen) - set(all_classifiers))
    if unknown:
        raise ValueError(f"figures.comparison.classifiers: {unknown} not in evaluation.classifiers "
                         f"{sorted(all_classifiers)}")
    budget = str(settings["budget"])
    budgets = [str(b) for b in config["evaluation"]["budgets"]]
    if budget not in budgets:
        raise ValueError(f"figures.comparison.budget: {budget!r} is not one of evaluation.budgets {budgets}")
    return {
        "budget": budget,
        "classifiers": {name: labels[name] for name in chosen},
        "variant": "classes_all",
        "digits": settings["digits"],
    }
