"""Is the SSL working? One row per dataset x method: the final collapse signals of its pretraining
(``results/ssl/<dataset>/<method>/health.json``) and its gap to the same backbone untrained
(``random_init``) at every compared budget (``evaluation.health``: every budget of at least
``min_budget`` labels per class, and ``all``), with a verdict.

Verdicts: ``collapsed`` (the pretraining's own end-of-run check failed, kept with
``collapse.action: warn``), ``no better than untrained`` (at one compared budget or more, SSL +
classifier did not beat random_init + the same classifier by more than ``evaluation.health.margin``,
for one of the compared classifiers; the reason names them), ``learned`` (beats it at every compared
budget with every compared classifier); ``untrained reference`` for random_init itself and
``not compared`` when the config has no random_init method.

Each method is also compared with the reference its own training started from (``start``): random_init,
or, for an SSL method whose backbone is ``pretrained: true``, the frozen-pretrained arm of that backbone
(a method of kind ``pretrained`` whose model is ``backbone.name``) when the config has one. The verdict
is then on the gap to that start (``<clf>_start_*`` columns; ``no better than its pretrained start``);
the gap to random_init stays in its own columns. The frozen arm itself is the ``pretrained reference``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from medssl.settings import SupervisedConfig

LEARNED = "learned"
NO_BETTER = "no better than untrained"
COLLAPSED = "collapsed"
REFERENCE = "untrained reference"
PRETRAINED_REFERENCE = "pretrained reference"
NO_BETTER_THAN_START = "no better than its pretrained start"
NOT_COMPARED = "not compared"
# The signals of health.json copied into the table (absent ones stay empty).
SIGNALS = ("embedding_std_ratio", "effective_rank", "teacher_entropy_ratio", "sinkhorn_teacher_entropy_ratio",
           "kl_teacher_student")
DEFAULTS = {"min_budget": 10, "budgets": None, "classifiers": ["svm", "logreg"], "margin": 0.0}


def settings(evaluation: Mapping) -> dict:
    """``evaluation.health`` with its defaults; the compared budgets resolved against
    ``evaluation.budgets`` and the classifiers restricted to the configured ones (an unknown name is an
    error)."""
    cfg = {**DEFAULTS, **(evaluation.get("health") or {})}
    cfg["budgets"] = compared_budgets([str(b) for b in evaluation["budgets"]], int(cfg["min_budget"]),
                                      cfg["budgets"])
    if not (evaluation.get("health") or {}).get("classifiers"):
        cfg["classifiers"] = [c for c in DEFAULTS["classifiers"] if c in evaluation["classifiers"]] or \
            [next(iter(evaluation["classifiers"]))]
    unknown = [c for c in cfg["classifiers"] if c not in evaluation["classifiers"]]
    if unknown:
        raise ValueError(f"evaluation.health.classifiers: {unknown} not in evaluation.classifiers "
                         f"{sorted(evaluation['classifiers'])}")
    cfg["margin"] = float(cfg["margin"])
    return cfg


def compared_budgets(budgets: Sequence[str], min_budget: int = 10, wanted: Sequence | None = None) -> list[str]:
    """``wanted`` if given (each must be one of ``budgets``), else every budget of at least
    ``min_budget`` labels per class and 'all'; when none qualifies, the largest budget (a config
    that only evaluates 1-5 labels per class is still compared somewhere)."""
    budgets = [str(b) for b in budgets]
    if wanted is not None:
        missing = [str(b) for b in wanted if str(b) not in budgets]
        if missing or not wanted:
            raise ValueError(f"evaluation.health.budgets: {missing or 'empty'} not in evaluation.budgets {budgets}")
        return [str(b) for b in wanted]
    chosen = [b for b in budgets if b == "all" or int(b) >= min_budget]
    if chosen:
        return chosen
    return [max(budgets, key=lambda b: math.inf if b == "all" else int(b))]


def read_health(path: str | Path | None) -> dict | None:
    if path is None or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def _means(summary: pd.DataFrame, dataset: str, method: str, classifier: str, variant: str) -> dict[str, float]:
    rows = summary[(summary["dataset"] == dataset) & (summary["variant"] == variant)
                   & (summary["method"] == method) & (summary["classifier"] == classifier)]
    return dict(zip(rows["budget"].astype(str), rows["balanced_accuracy_mean"].astype(float)))


def start_reference(methods: Mapping[str, Mapping], backbone: Mapping | None) -> str | None:
    """The frozen-pretrained arm that the SSL methods start from: with ``backbone.pretrained`` true,
    the first method of kind ``pretrained`` whose model (default ``backbone.name``) is that backbone."""
    if not backbone or not backbone.get("pretrained"):
        return None
    return next((name for name, m in methods.items() if m["kind"] == "pretrained"
                 and (m.get("model") or backbone["name"]) == backbone["name"] and not m.get("weights")), None)


def _gap_columns(row: dict, summary: pd.DataFrame, dataset: str, method: str, reference: str | None,
                 classifiers: Sequence[str], budgets: Sequence[str], variant: str, prefix: str) -> dict:
    """``row[<clf>_<prefix>worst_gap / worst_budget / gap_<b>]``; returns the gaps per classifier."""
    gaps: dict[str, dict[str, float]] = {}
    for clf in classifiers:
        ours = _means(summary, dataset, method, clf, variant)
        ref = _means(summary, dataset, reference, clf, variant) if reference else {}
        gaps[clf] = {b: ours.get(b, math.nan) - ref.get(b, math.nan) for b in budgets}
        worst = min(budgets, key=lambda b: -math.inf if math.isnan(gaps[clf][b]) else gaps[clf][b])
        row[f"{clf}_{prefix}worst_gap"], row[f"{clf}_{prefix}worst_budget"] = gaps[clf][worst], worst
        row.update({f"{clf}_{prefix}gap_{b}": gaps[clf][b] for b in budgets})
    return gaps


def health_table(summary: pd.DataFrame, methods: Mapping[str, Mapping], health: Mapping[tuple[str, str], dict | None],
                 cfg: Mapping, variant: str = "classes_all", backbone: Mapping | None = None) -> pd.DataFrame:
    """One row per dataset x method of ``summary`` (methods in config order; the DL baseline is not
    an SSL method and is left out). ``health`` maps (dataset, method) to its health.json (or None);
    ``backbone`` is the config's (its ``pretrained`` decides each SSL method's start, see the module).

    Per classifier: the worst gap to random_init over the compared budgets and where it was
    (``<clf>_worst_gap``, ``<clf>_worst_budget``), then the gap at each budget (``<clf>_gap_<budget>``);
    the same to the method's ``start`` (``<clf>_start_worst_gap``, ..., ``<clf>_start_gap_<budget>``)."""
    reference = next((name for name, m in methods.items() if m["kind"] == "random_init"), None)
    pretrained_start = start_reference(methods, backbone)
    budgets, classifiers, margin = list(cfg["budgets"]), list(cfg["classifiers"]), float(cfg["margin"])
    rows = []
    for dataset in dict.fromkeys(summary["dataset"]):
        present = set(summary.loc[summary["dataset"] == dataset, "method"])
        for method, spec in methods.items():
            if method not in present:
                continue
            h = health.get((dataset, method)) or {}
            signals = h.get("signals") or {}
            start = pretrained_start if pretrained_start and spec["kind"] not in (
                "random_init", "pretrained", "published") else reference
            row = {"dataset": dataset, "method": method, "kind": spec["kind"], "start": start or "",
                   "budgets": " ".join(budgets), "pretraining_check": h.get("verdict", ""),
                   "warned": bool(h.get("warned", False)), **{s: signals.get(s, math.nan) for s in SIGNALS}}
            gaps = _gap_columns(row, summary, dataset, method, reference, classifiers, budgets, variant, "")
            start_gaps = _gap_columns(row, summary, dataset, method, start, classifiers, budgets, variant, "start_")
            row["verdict"], row["reason"], row["failed_budgets"] = _verdict(
                spec["kind"], h, gaps if start == reference else start_gaps, margin, start,
                pretrained=start is not None and start == pretrained_start)
            rows.append(row)
    columns = ["dataset", "method", "kind", "start", "verdict", "reason", "failed_budgets", "budgets",
               *[f"{c}_worst_{k}" for c in classifiers for k in ("gap", "budget")],
               *[f"{c}_gap_{b}" for c in classifiers for b in budgets],
               *[f"{c}_start_worst_{k}" for c in classifiers for k in ("gap", "budget")],
               *[f"{c}_start_gap_{b}" for c in classifiers for b in budgets],
               "pretraining_check", "warned", *SIGNALS]
    return pd.DataFrame(rows, columns=columns)


def _verdict(kind: str, h: dict, gaps: Mapping[str, Mapping[str, float]], margin: float,
             reference: str | None, pretrained: bool = False) -> tuple[str, str, str]:
    if kind == "random_init":
        return REFERENCE, "the backbone every SSL method has to beat", ""
    if kind == "pretrained":
        return PRETRAINED_REFERENCE, "a frozen off-the-shelf pretrained model: the features SSL has to beat", ""
    if h.get("verdict") == "collapsed":
        failed = ", ".join(f"{f['signal']}={f['value']:.3g}" for f in h.get("failed", []))
        return COLLAPSED, f"pretraining ended collapsed ({failed})", ""
    if reference is None:
        return NOT_COMPARED, "no random_init method in the config", ""
    worse = {clf: {b: g for b, g in per.items() if not g > margin} for clf, per in gaps.items()}
    failed = sorted({b for per in worse.values() for b in per}, key=lambda b: math.inf if b == "all" else int(b))
    if failed:
        detail = "; ".join(f"{clf} " + ", ".join(f"{b} ({'no result' if math.isnan(g) else f'{g:+.3f}'})"
                                                 for b, g in per.items())
                           for clf, per in worse.items() if per)
        return (NO_BETTER_THAN_START if pretrained else NO_BETTER,
                f"gap to {reference} <= {margin:g} at: {detail}", " ".join(failed))
    worst = ", ".join(f"{clf} {min(per.values()):+.3f} at {min(per, key=per.get)}" for clf, per in gaps.items())
    return LEARNED, f"beats {reference} at every budget ({' '.join(next(iter(gaps.values())))}); worst: {worst}", ""


def did_not_learn(table: pd.DataFrame, dataset: str, method: str) -> str | None:
    """The verdict of a method that did not learn on a dataset, with the budgets where it did not
    (for the figures), else None."""
    rows = table[(table["dataset"] == dataset) & (table["method"] == method)]
    if not len(rows) or rows["verdict"].iloc[0] in (LEARNED, REFERENCE, PRETRAINED_REFERENCE, NOT_COMPARED):
        return None
    failed = rows["failed_budgets"].iloc[0] if "failed_budgets" in rows else ""
    failed = "" if pd.isna(failed) else str(failed)
    return str(rows["verdict"].iloc[0]) + (f" at {failed.replace(' ', ', ')}" if failed else "")


def dl_baseline_untrained(supervised_cfg: Mapping | None, mean_balanced_accuracy: float, n_classes: int) -> str | None:
    """Why this run's DL baseline is no benchmark (it ran fewer than ``benchmark_min_epochs`` epochs,
    or its balanced accuracy at 'all' is within ``benchmark_min_above_chance`` of chance), else None.
    ``supervised_cfg``: the config's ``baselines.supervised`` (:class:`medssl.settings.SupervisedConfig`)."""
    cfg = SupervisedConfig.from_dict(supervised_cfg or {})
    if cfg.epochs < cfg.benchmark_min_epochs:
        return (f"trained only {cfg.epochs} epoch(s) (< baselines.supervised.benchmark_min_epochs = "
                f"{cfg.benchmark_min_epochs})")
    chance = 1.0 / max(int(n_classes), 1)
    if not mean_balanced_accuracy > chance + cfg.benchmark_min_above_chance:
        return (f"balanced accuracy {mean_balanced_accuracy:.3f} is within "
                f"baselines.supervised.benchmark_min_above_chance = {cfg.benchmark_min_above_chance:g} "
                f"of chance ({chance:.3f})")
    return None
