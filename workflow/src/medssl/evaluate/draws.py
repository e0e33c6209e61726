"""Many label draws where they are cheap (``evaluation.draws``).

At every budget of at most ``max_budget`` labels per class the evaluation fits ``n`` labeled subsets
instead of one per ``evaluation.seeds``: the configured seeds first (their fits are the usual per-seed
files), then the seeds ``max(seeds) + 1, max(seeds) + 2, ...`` until there are ``n``. A draw is a seed
of `medssl.evaluate.budgets.sample_budget`, so its subset depends only on the labels, the budget and that seed:
every method and classifier sees the same subsets, and the draws are nested across budgets as the
seeds are. The further draws are fit with ``classifiers`` only (default: every configured one) in the
same fit job, and written per budget and classifier to one file, ``draws_<n>.json`` (their records,
as a seed's JSON, without test predictions). Budgets above ``max_budget`` keep ``evaluation.seeds``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

FILE = "draws_{n}.json"


def settings(evaluation: Mapping[str, Any]) -> dict | None:
    """``evaluation.draws`` resolved: n, max_budget, the drawn ``budgets`` (evaluation.budgets of at most
    max_budget), ``classifiers`` and the further ``seeds``; None without the key. Raises ValueError
    naming the key for a value that cannot work (checked when Snakemake plans)."""
    cfg = evaluation.get("draws")
    if not cfg:
        return None
    seeds = [int(s) for s in evaluation["seeds"]]
    n, max_budget = int(cfg["n"]), int(cfg["max_budget"])
    if n < len(seeds):
        raise ValueError(f"evaluation.draws.n: {n} is fewer than the {len(seeds)} evaluation.seeds "
                         f"(the seeds are the first draws)")
    budgets = [str(b) for b in evaluation["budgets"] if str(b) != "all" and int(b) <= max_budget]
    if not budgets:
        raise ValueError(f"evaluation.draws.max_budget: {max_budget} is below every evaluation.budgets entry "
                         f"{[str(b) for b in evaluation['budgets']]}: nothing would be drawn")
    classifiers = list(cfg.get("classifiers") or evaluation["classifiers"])
    unknown = [c for c in classifiers if c not in evaluation["classifiers"]]
    if unknown:
        raise ValueError(f"evaluation.draws.classifiers: {unknown} not in evaluation.classifiers "
                         f"{sorted(evaluation['classifiers'])}")
    return {"n": n, "max_budget": max_budget, "budgets": budgets, "classifiers": classifiers,
            "seeds": further_seeds(seeds, n)}


def further_seeds(seeds: Sequence[int], n: int) -> list[int]:
    """The draws after the configured seeds: max(seeds) + 1, ... up to n draws in all."""
    start = max(int(s) for s in seeds) + 1
    return list(range(start, start + max(0, n - len(seeds))))


def outputs(draws: Mapping | None, folder: str) -> list[str]:
    """The draws files of one fit job: ``<folder>/budget_<b>/<classifier>/draws_<n>.json`` (none when
    the configured seeds are all the draws). ``n`` is in the name, so a new n reruns the job."""
    if not draws or not draws["seeds"]:
        return []
    return [f"{folder}/budget_{b}/{c}/{FILE.format(n=draws['n'])}" for b in draws["budgets"]
            for c in draws["classifiers"]]


def write(path: str | Path, records: Sequence[dict], fields: Mapping[str, Any]) -> None:
    """One budget x classifier's further draws, ordered by seed, each record with ``fields``
    (dataset, variant, method) as in a seed's JSON."""
    from medssl.runtime import write_json

    records = sorted(records, key=lambda r: r["seed"])
    write_json({**fields, "budget": records[0]["budget"] if records else None,
                "seeds": [r["seed"] for r in records], "draws": [{**fields, **r} for r in records]}, path)


def fit_records(path: str | Path) -> Iterator[dict]:
    """The fit records of a results/fits file: a seed's JSON is one, a draws file holds several."""
    with open(path) as fh:
        rec = json.load(fh)
    yield from rec["draws"] if "draws" in rec else [rec]
