"""Is the SSL working? One row per dataset x method: the final collapse signals of its pretraining
(``results/ssl/<dataset>/<method>/health.json``) and its gap to the same backbone untrained
(``random_init``) at a mid budget, with a verdict.

Verdicts: ``collapsed`` (the pretraining's own end-of-run check failed, kept with
``collapse.action: warn``), ``no better than untrained`` (SSL + classifier did not beat random_init +
the same classifier by more than ``evaluation.health.margin`` for one of the compared classifiers),
``learned``; ``untrained reference`` for random_init itself and ``not compared`` when the config has no
random_init method.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

LEARNED = "learned"
NO_BETTER = "no better than untrained"
COLLAPSED = "collapsed"
REFERENCE = "untrained reference"
NOT_COMPARED = "not compared"
# The signals of health.json copied into the table (absent ones stay empty).
SIGNALS = ("embedding_std_ratio", "effective_rank", "teacher_entropy_ratio", "sinkhorn_teacher_entropy_ratio",
           "kl_teacher_student")
DEFAULTS = {"budget": None, "classifiers": ["svm", "logreg"], "margin": 0.0}
# the budget the table compares at when evaluation.health.budget is not set
PREFERRED_BUDGET = 25


def settings(evaluation: Mapping) -> dict:
    """``evaluation.health`` with its defaults; the budget resolved against ``evaluation.budgets``
    and the classifiers restricted to the configured ones (an unknown name is an error)."""
    cfg = {**DEFAULTS, **(evaluation.get("health") or {})}
    budgets = [str(b) for b in evaluation["budgets"]]
    cfg["budget"] = pick_budget(budgets, cfg["budget"])
    if not (evaluation.get("health") or {}).get("classifiers"):
        cfg["classifiers"] = [c for c in DEFAULTS["classifiers"] if c in evaluation["classifiers"]] or \
            [next(iter(evaluation["classifiers"]))]
    unknown = [c for c in cfg["classifiers"] if c not in evaluation["classifiers"]]
    if unknown:
        raise ValueError(f"evaluation.health.classifiers: {unknown} not in evaluation.classifiers "
                         f"{sorted(evaluation['classifiers'])}")
    cfg["margin"] = float(cfg["margin"])
    return cfg


def pick_budget(budgets: Sequence[str], wanted=None) -> str:
    """``wanted`` if given (it must be one of ``budgets``), else the numeric budget closest to 25
    (the lower one on a tie), else 'all'."""
    budgets = [str(b) for b in budgets]
    if wanted is not None:
        if str(wanted) not in budgets:
            raise ValueError(f"evaluation.health.budget: {wanted!r} is not one of evaluation.budgets {budgets}")
        return str(wanted)
    numeric = [int(b) for b in budgets if b != "all"]
    if not numeric:
        return "all"
    return str(min(numeric, key=lambda b: (abs(b - PREFERRED_BUDGET), b)))


def read_health(path: str | Path | None) -> dict | None:
    if path is None or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def _mean(summary: pd.DataFrame, dataset: str, method: str, classifier: str, budget: str, variant: str) -> float:
    rows = summary[(summary["dataset"] == dataset) & (summary["variant"] == variant)
                   & (summary["method"] == method) & (summary["classifier"] == classifier)
                   & (summary["budget"].astype(str) == budget)]
    return float(rows["balanced_accuracy_mean"].iloc[0]) if len(rows) else math.nan


def health_table(summary: pd.DataFrame, methods: Mapping[str, Mapping], health: Mapping[tuple[str, str], dict | None],
                 cfg: Mapping, variant: str = "classes_all") -> pd.DataFrame:
    """One row per dataset x method of ``summary`` (methods in config order; the DL baseline is not
    an SSL method and is left out). ``health`` maps (dataset, method) to its health.json (or None)."""
    reference = next((name for name, m in methods.items() if m["kind"] == "random_init"), None)
    budget, classifiers, margin = cfg["budget"], list(cfg["classifiers"]), float(cfg["margin"])
    rows = []
    for dataset in dict.fromkeys(summary["dataset"]):
        present = set(summary.loc[summary["dataset"] == dataset, "method"])
        for method, spec in methods.items():
            if method not in present:
                continue
            h = health.get((dataset, method)) or {}
            signals = h.get("signals") or {}
            row = {"dataset": dataset, "method": method, "kind": spec["kind"], "budget": budget,
                   "pretraining_check": h.get("verdict", ""), "warned": bool(h.get("warned", False)),
                   **{s: signals.get(s, math.nan) for s in SIGNALS}}
            gaps = {}
            for clf in classifiers:
                ours = _mean(summary, dataset, method, clf, budget, variant)
                ref = _mean(summary, dataset, reference, clf, budget, variant) if reference else math.nan
                row[f"{clf}_balanced_accuracy"] = ours
                row[f"{clf}_random_init"] = ref
                row[f"{clf}_gap"] = gaps[clf] = ours - ref
            row["verdict"], row["reason"] = _verdict(spec["kind"], h, gaps, margin, reference)
            rows.append(row)
    columns = ["dataset", "method", "kind", "verdict", "reason", "budget",
               *[f"{c}_{k}" for c in classifiers for k in ("balanced_accuracy", "random_init", "gap")],
               "pretraining_check", "warned", *SIGNALS]
    return pd.DataFrame(rows, columns=columns)


def _verdict(kind: str, h: dict, gaps: Mapping[str, float], margin: float, reference: str | None) -> tuple[str, str]:
    if kind == "random_init":
        return REFERENCE, "the backbone every SSL method has to beat"
    if h.get("verdict") == "collapsed":
        failed = ", ".join(f"{f['signal']}={f['value']:.3g}" for f in h.get("failed", []))
        return COLLAPSED, f"pretraining ended collapsed ({failed})"
    if reference is None:
        return NOT_COMPARED, "no random_init method in the config"
    worse = [f"{clf} {gap:+.3f}" for clf, gap in gaps.items() if not gap > margin]
    if worse:
        return NO_BETTER, f"gap to random_init <= {margin:g}: " + ", ".join(worse)
    return LEARNED, "beats random_init: " + ", ".join(f"{clf} {gap:+.3f}" for clf, gap in gaps.items())


def did_not_learn(table: pd.DataFrame, dataset: str, method: str) -> str | None:
    """The verdict of a method that did not learn on a dataset (for the figures), else None."""
    rows = table[(table["dataset"] == dataset) & (table["method"] == method)]
    if not len(rows) or rows["verdict"].iloc[0] in (LEARNED, REFERENCE, NOT_COMPARED):
        return None
    return str(rows["verdict"].iloc[0])


# The DL baseline as a benchmark: only one that trained counts (baselines.supervised.benchmark_*).
DL_DEFAULTS = {"benchmark_min_epochs": 10, "benchmark_min_above_chance": 0.05}


def dl_baseline_untrained(supervised_cfg: Mapping | None, mean_balanced_accuracy: float, n_classes: int) -> str | None:
    """Why this run's DL baseline is no benchmark (it ran fewer than ``benchmark_min_epochs`` epochs,
    or its balanced accuracy at 'all' is within ``benchmark_min_above_chance`` of chance), else None."""
    cfg = {**DL_DEFAULTS, **(supervised_cfg or {})}
    epochs = cfg.get("epochs")
    if epochs is not None and int(epochs) < int(cfg["benchmark_min_epochs"]):
        return (f"trained only {int(epochs)} epoch(s) (< baselines.supervised.benchmark_min_epochs = "
                f"{int(cfg['benchmark_min_epochs'])})")
    chance = 1.0 / max(int(n_classes), 1)
    if not mean_balanced_accuracy > chance + float(cfg["benchmark_min_above_chance"]):
        return (f"balanced accuracy {mean_balanced_accuracy:.3f} is within "
                f"baselines.supervised.benchmark_min_above_chance = {float(cfg['benchmark_min_above_chance']):g} "
                f"of chance ({chance:.3f})")
    return None
