"""Every budget x seed x classifier of one dataset x variant x method, in one job.

A fresh Python process pays 2-6 s of imports (sklearn, pandas, torch for the linear probe) before
its first fit; at small budgets that is more than the fits themselves. So one job does the whole
sweep of an embedding pair, as (budget, seed) tasks, largest first, spread over `workers`
processes that each load the embeddings and pay the imports once. Every task runs
`classify.run_budget` for one seed, so the numbers are exactly those of separate jobs. The further
label draws of `evaluation.draws` (`medssl.evaluate.draws`) are tasks of the same job, after the seeds', with
the draws' classifiers only.
"""
from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from medssl.evaluate.budgets import Embeddings, parse_budget
from medssl.evaluate.classify import run_budget
from medssl.runtime import limit_threads

Result = tuple[str, str, int, dict[str, Any], np.ndarray]  # budget, classifier, seed, record, y_pred

_PAIR: tuple[Embeddings, Embeddings] | None = None


def task_order(budgets: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """(budget, seed) tasks, the largest budgets first so that the long fits start early."""
    size = {b: parse_budget(b) for b in budgets}
    ordered = sorted(budgets, key=lambda b: -(np.inf if size[b] is None else size[b]))
    return [(b, s) for b in ordered for s in seeds]


def _init_worker(train_path: str, test_path: str) -> None:
    global _PAIR
    limit_threads(1)
    _PAIR = Embeddings.load(train_path), Embeddings.load(test_path)


def _run_task(budget: str, seed: int, classifiers: Mapping[str, Any], preprocessing: Sequence[str],
              min_class_size: int | None, estimator_packages: Sequence[str]) -> list[Result]:
    train, test = _PAIR
    results, cpu = [], time.process_time()
    for name, s, record, y_pred in run_budget(train, test, budget, [seed], classifiers, preprocessing, min_class_size,
                                             estimator_packages):
        # CPU seconds of this fit in its worker (the shared preprocessing counts with the first
        # classifier): unlike fit_seconds, it does not grow when other jobs share the machine.
        record["fit_cpu_seconds"], cpu = time.process_time() - cpu, time.process_time()
        results.append((budget, name, s, record, y_pred))
    return results


def sweep_tasks(budgets: Sequence[str], seeds: Sequence[int], classifiers: Mapping[str, Any],
                draws: Mapping[str, Any] | None = None) -> list[tuple[str, int, dict]]:
    """(budget, seed, classifiers) of every task: each budget x seed with every classifier, then the
    further draws (`medssl.evaluate.draws.settings`: its budgets x seeds) with the draws' classifiers."""
    tasks = [(b, s, dict(classifiers)) for b, s in task_order([str(b) for b in budgets], list(seeds))]
    if draws and draws["seeds"]:
        chosen = {name: classifiers[name] for name in draws["classifiers"]}
        tasks += [(b, s, chosen) for b, s in task_order(draws["budgets"], draws["seeds"])]
    return tasks


def run_sweep(train_path: str, test_path: str, budgets: Sequence[str], seeds: Sequence[int],
              classifiers: Mapping[str, Any], preprocessing: Sequence[str],
              min_class_size: int | None = None, workers: int = 1,
              estimator_packages: Sequence[str] = (), draws: Mapping[str, Any] | None = None) -> Iterator[Result]:
    """Yield (budget, classifier, seed, record, test predictions) for every fit, in completion order;
    `draws`: `medssl.evaluate.draws.settings` (its further seeds are fit after the configured ones).

    workers == 1 runs in this process (BLAS limited to one thread by the caller); more start that
    many spawned processes with one BLAS thread each."""
    tasks = sweep_tasks(budgets, seeds, classifiers, draws)
    args = (list(preprocessing), min_class_size, list(estimator_packages))
    if workers <= 1:
        _init_worker(str(train_path), str(test_path))
        for budget, seed, chosen in tasks:
            yield from _run_task(budget, seed, chosen, *args)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold OpenMP/torch threads
    # A spawned worker re-runs the parent's __main__ file unless it has none; under Snakemake that is the
    # job script, which only works with the `snakemake` object Snakemake injected. The workers need
    # nothing from it (the tasks live in this module), so the script is hidden from them.
    main = sys.modules["__main__"]
    script = main.__dict__.pop("__file__", None)
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker,
                                 initargs=(str(train_path), str(test_path))) as pool:
            futures = [pool.submit(_run_task, budget, seed, chosen, *args) for budget, seed, chosen in tasks]
            for future in futures:  # submission order = largest first; results kept in that order
                yield from future.result()
    finally:
        if script is not None:
            main.__file__ = script
