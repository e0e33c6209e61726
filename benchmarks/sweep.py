"""Classical-classifier sweep on ISIC-sized synthetic embeddings: the pipeline's way against the paper's.

Data: a labeled pool of 17,731 x 384 and a test set of 7,600 with the ISIC 2019 class counts of the
paper's splits (8 classes, NV 9,012 ... DF 167), Gaussian class clusters, written as the pair of
.npz files that the embedding stage writes.

  pipeline    one `fit_classifiers` job: one process that calls medssl.evaluate.fit_sweep.run_sweep, which
              spreads the (budget, seed) tasks, largest first, over `--jobs` worker processes (the
              job's threads), one BLAS thread each; one PowerTransformer -> PCA per labeled subset,
              shared by SVM, kNN and LR.
  sequential  one loop in one process, as sparsam's reproduce_results.py: for every budget, seed and
              classifier a fresh sklearn Pipeline([PowerTransformer(), PCA(), classifier]) on the same
              subset (medssl.evaluate.budgets.sample_budget), BLAS free to use every core.

Both runs use the classifier entries of config/paper.yaml (SVC with probability and argmax of the
probabilities, kNN with k = 5 x classes, LR) and the same seeds, and the script checks that the
balanced accuracies agree. Writes a JSON with both wall times to --out.

    .venv/bin/python benchmarks/sweep.py --quick          # budgets 1..100, 2 seeds: minutes
    .venv/bin/python benchmarks/sweep.py                  # everything: hours on 2 cores
    .venv/bin/python benchmarks/sweep.py --budgets 1,10,100 --seeds 0,1,2 --jobs 2
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
ISIC_TRAIN = {"MEL": 3165, "NV": 9012, "BCC": 2326, "AK": 607, "BKL": 1837, "DF": 167, "VASC": 177, "SCC": 440}
ISIC_TEST = {"MEL": 1357, "NV": 3863, "BCC": 997, "AK": 260, "BKL": 787, "DF": 72, "VASC": 76, "SCC": 188}
ALL_BUDGETS = ["1", "5", "10", "25", "50", "100", "250", "500", "1000", "all"]

def make_embeddings(folder: Path, dim: int = 384, seed: int = 0) -> tuple[Path, Path]:
    """Class means on a sphere plus a shared random covariance; overlap so that accuracy rises with
    the budget instead of saturating at 1."""
    from medssl.evaluate.budgets import Embeddings

    rng = np.random.default_rng(seed)
    classes = list(ISIC_TRAIN)
    means = rng.normal(size=(len(classes), dim)) * 0.35
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    paths = []
    for split, counts in [("labeled_train", ISIC_TRAIN), ("test", ISIC_TEST)]:
        labels = np.concatenate([np.full(counts[c], k) for k, c in enumerate(classes)])
        x = (means[labels] + rng.normal(size=(len(labels), dim)) @ mix).astype(np.float32)
        x = np.abs(x) ** 1.2 * np.sign(x)  # a little non-Gaussian, as features after a ReLU/GELU net
        images = np.asarray([f"{split}/{i:06d}.png" for i in range(len(labels))])
        path = folder / f"{split}.npz"
        Embeddings(x.astype(np.float32), images, labels.astype(np.int64), classes).save(path)
        paths.append(path)
    return paths[0], paths[1]


# Faster stand-ins for the paper's SVC(probability=True), measured beside it (--classifiers).
FAST = {
    "svm_noprob": {"estimator": "sklearn.svm.SVC", "predict": "predict",
                   "params": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "class_weight": "balanced",
                              "break_ties": True, "cache_size": 2000}},
    "linear_svm": {"estimator": "sklearn.svm.LinearSVC", "predict": "predict",
                   "params": {"C": 0.01, "class_weight": "balanced", "dual": False, "max_iter": 5000}},
}


def paper_classifiers(names: list[str] | None = None) -> dict:
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    available = {**{k: config["evaluation"]["classifiers"][k] for k in ["svm", "knn", "logreg"]}, **FAST}
    names = names or ["svm", "knn", "logreg"]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise SystemExit(f"--classifiers: unknown {unknown}; choose from {sorted(available)}")
    return {k: available[k] for k in names}


def _pipeline_job(train_path: str, test_path: str, budgets: list[str], seeds: list[int], classifiers: dict,
                  jobs: int) -> dict:
    """One fit_classifiers job: a fresh process that runs the whole sweep with `jobs` workers."""
    from medssl.evaluate.fit_sweep import run_sweep
    from medssl.runtime import limit_threads

    limit_threads(1)
    scores, fit_seconds, per_budget, cpu_seconds = {}, {}, {}, {}
    for budget, name, seed, record, _ in run_sweep(train_path, test_path, budgets, seeds, classifiers,
                                                   ["power_transform", "pca"], workers=jobs):
        key = f"{budget}/{seed}/{name}"
        scores[key], fit_seconds[key] = record["balanced_accuracy"], record["fit_seconds"]
        cpu_seconds[key] = record["fit_cpu_seconds"]
        per_budget[budget] = per_budget.get(budget, 0.0) + record["fit_seconds"]
        print(f"  pipeline {key}: {record['fit_seconds']:.1f} s, CPU {record['fit_cpu_seconds']:.1f} s "
              f"(n_train {record['n_train']})", flush=True)
    return {"scores": scores, "fit_seconds": fit_seconds, "per_budget": per_budget, "cpu_seconds": cpu_seconds}


def run_pipeline(train: Path, test: Path, budgets: list[str], seeds: list[int], classifiers: dict,
                 jobs: int) -> tuple[float, dict, dict, dict]:
    ctx = multiprocessing.get_context("spawn")
    t0, cpu0 = time.perf_counter(), children_cpu()
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        out = pool.submit(_pipeline_job, str(train), str(test), budgets, seeds, classifiers, jobs).result()
    per_budget = {b: round(v, 2) for b, v in out["per_budget"].items()}
    out["total_cpu"] = children_cpu() - cpu0
    return time.perf_counter() - t0, out["scores"], per_budget, out


def _sequential(train_path: str, test_path: str, budgets: list[str], seeds: list[int], classifiers: dict) -> dict:
    t0 = time.perf_counter()
    from sklearn.decomposition import PCA
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PowerTransformer

    from medssl.evaluate.budgets import Embeddings, sample_budget
    from medssl.evaluate.classify import build_classifier, predict

    train, test = Embeddings.load(train_path), Embeddings.load(test_path)
    scores, per_budget, fit_seconds, cpu_seconds = {}, {}, {}, {}
    for budget in budgets:
        tb = time.perf_counter()
        for seed in seeds:
            index = sample_budget(train.labels, budget, seed)
            for name, spec in classifiers.items():
                tf, cf = time.perf_counter(), time.process_time()
                pipe = Pipeline([("power", PowerTransformer()), ("pca", PCA(random_state=seed)),
                                 ("clf", build_classifier(spec, random_state=seed))])
                pipe.fit(train.features[index], train.labels[index])
                y_pred = predict(pipe, test.features, spec.get("predict", "predict"))
                scores[f"{budget}/{seed}/{name}"] = float(balanced_accuracy_score(test.labels, y_pred))
                fit_seconds[f"{budget}/{seed}/{name}"] = time.perf_counter() - tf
                cpu_seconds[f"{budget}/{seed}/{name}"] = time.process_time() - cf
                print(f"  sequential {budget}/{seed}/{name}: {fit_seconds[f'{budget}/{seed}/{name}']:.1f} s "
                      f"(n_train {len(index)})", flush=True)
        per_budget[budget] = round(time.perf_counter() - tb, 2)
        print(f"  sequential budget {budget}: {per_budget[budget]:.1f} s", flush=True)
    return {"seconds": time.perf_counter() - t0, "scores": scores, "per_budget": per_budget,
            "fit_seconds": fit_seconds, "cpu_seconds": cpu_seconds}


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process, their children included: the
    work done, whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sequential(train: Path, test: Path, budgets: list[str], seeds: list[int], classifiers: dict):
    """In a fresh process too, so that both timings include the same start-up and imports."""
    ctx = multiprocessing.get_context("spawn")
    t0, cpu0 = time.perf_counter(), children_cpu()
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        out = pool.submit(_sequential, str(train), str(test), budgets, seeds, classifiers).result()
    out["total_cpu"] = children_cpu() - cpu0
    return time.perf_counter() - t0, out["scores"], out["per_budget"], out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", help=f"comma separated, default {','.join(ALL_BUDGETS)}")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma separated (default 0,1,2,3,4)")
    parser.add_argument("--quick", action="store_true", help="budgets 1..100 and seeds 0,1")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="parallel fit jobs of the pipeline (= snakemake --cores); default: CPU count")
    parser.add_argument("--classifiers", help="comma separated: svm,knn,logreg (default; the paper's) "
                        f"and faster stand-ins {','.join(FAST)}")
    parser.add_argument("--mode", choices=["both", "pipeline", "sequential"], default="both")
    parser.add_argument("--data", type=Path, help="folder for the synthetic .npz pair (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "sweep.json")
    args = parser.parse_args(argv)
    budgets = (args.budgets.split(",") if args.budgets else
               ["1", "5", "10", "25", "50", "100"] if args.quick else ALL_BUDGETS)
    seeds = [int(s) for s in ("0,1" if args.quick and args.seeds == "0,1,2,3,4" else args.seeds).split(",")]
    classifiers = paper_classifiers(args.classifiers.split(",") if args.classifiers else None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        train, test = make_embeddings(folder)
        print(f"synthetic ISIC-sized embeddings in {folder}; budgets {budgets}, seeds {seeds}, "
              f"{args.jobs} jobs", flush=True)
        result = {"budgets": budgets, "seeds": seeds, "classifiers": list(classifiers), "jobs": args.jobs,
                  "n_fits": len(budgets) * len(seeds) * len(classifiers), "cpu_count": os.cpu_count()}
        runs = {}
        if args.mode in ("both", "pipeline"):
            seconds, scores, per, out = run_pipeline(train, test, budgets, seeds, classifiers, args.jobs)
            runs["pipeline"] = scores
            result["pipeline_seconds"], result["pipeline_per_budget_fit_seconds"] = round(seconds, 1), per
            result["pipeline_cpu_seconds"] = round(out["total_cpu"], 1)
            result["pipeline_fit_seconds"] = {k: round(v, 3) for k, v in out["fit_seconds"].items()}
            result["pipeline_fit_cpu_seconds"] = {k: round(v, 3) for k, v in out["cpu_seconds"].items()}
            print(f"pipeline (run_budget, {args.jobs} parallel jobs): {seconds:.1f} s", flush=True)
        if args.mode in ("both", "sequential"):
            seconds, scores, per, out = run_sequential(train, test, budgets, seeds, classifiers)
            runs["sequential"] = scores
            result["sequential_seconds"], result["sequential_per_budget_seconds"] = round(seconds, 1), per
            result["sequential_cpu_seconds"] = round(out["total_cpu"], 1)
            result["sequential_fit_seconds"] = {k: round(v, 3) for k, v in out["fit_seconds"].items()}
            result["sequential_fit_cpu_seconds"] = {k: round(v, 3) for k, v in out["cpu_seconds"].items()}
            print(f"sequential loop (fresh Pipeline per fit): {seconds:.1f} s", flush=True)
    if len(runs) == 2:
        a, b = runs["pipeline"], runs["sequential"]
        diff = max(abs(a[k] - b[k]) for k in a)
        result["same_fits"] = sorted(a) == sorted(b)
        result["max_abs_balanced_accuracy_difference"] = diff
        result["speedup"] = round(result["sequential_seconds"] / result["pipeline_seconds"], 2)
        result["cpu_ratio"] = round(result["sequential_cpu_seconds"] / max(result["pipeline_cpu_seconds"], 1e-9), 2)
        print(f"same numbers: {result['same_fits'] and diff < 1e-9} (max |difference| {diff:.2e}); "
              f"speed-up {result['speedup']}x wall, {result['cpu_ratio']}x CPU", flush=True)
    result["balanced_accuracy"] = runs.get("pipeline") or runs.get("sequential")
    result["n_train"] = {b: sum(c if b == "all" else min(c, int(b)) for c in ISIC_TRAIN.values()) for b in budgets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if len(runs) < 2 or (result["same_fits"] and result["max_abs_balanced_accuracy_difference"] < 1e-9) else 1


if __name__ == "__main__":
    sys.exit(main())
